"""Reading botocore's errors: one line for a user, and the error code for decisions."""

from __future__ import annotations

from typing import Any

MISSING_CODES = frozenset({"404", "NoSuchKey", "NoSuchBucket", "NotFound", "ResourceNotFoundException"})


def error_code(exc: BaseException) -> str:
    """The AWS error code (``NoSuchKey``, ``403``...) or "" for a non-AWS error."""
    resp: Any = getattr(exc, "response", None)
    return str(resp.get("Error", {}).get("Code", "")) if isinstance(resp, dict) else ""


def is_missing(exc: BaseException) -> bool:
    """True when the call failed because the thing is not there (a 404 of any service)."""
    return error_code(exc) in MISSING_CODES


def aws_error(exc: BaseException) -> str:
    """One line from a botocore error: ``Code: Message``."""
    resp: Any = getattr(exc, "response", None)
    if isinstance(resp, dict) and "Error" in resp:
        err = resp["Error"]
        return f"{err.get('Code', 'Error')}: {err.get('Message', '')}".strip()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (ClientError, BotoCoreError)


#: What an AWS call raises when AWS (or the network to it) says no: catch this, never bare Exception.
AWS_ERRORS = _aws_errors()

"""The one edge where a failure becomes a message and an exit code, for every command.

Known failures print one `Error: ...` line (user text printed literally, never
as rich markup) and exit 1 (it ran and failed) or 2 (bad usage or config).
A programming bug is not dressed up as an AWS error: it says "internal error"
and how to see the traceback (`--debug` or `IMGPROC_DEBUG=1`).
"""

from __future__ import annotations

import os
import sys
import traceback

from rich.markup import escape

from cli.console import ExitCode, err_console
from cli.errors import CliError
from core.errors import ConfigError, ImgprocError

_debug = False


def set_debug(on: bool) -> None:
    global _debug
    _debug = on


def debug_enabled() -> bool:
    return _debug or os.environ.get("IMGPROC_DEBUG", "") not in ("", "0")


def outcome(exc: BaseException) -> tuple[str | None, int]:
    """The message (None: print nothing) and exit code for ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return None, ExitCode.INTERRUPTED  # the user knows: no message, like any Unix tool
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        return None, ExitCode.OK
    if isinstance(exc, CliError):
        return exc.message, exc.exit_code
    if isinstance(exc, ConfigError):
        return str(exc), ExitCode.USAGE
    if isinstance(exc, ImgprocError):
        return str(exc), ExitCode.FAILED
    if type(exc).__module__.startswith("botocore"):
        return _botocore(exc)
    return f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", ExitCode.FAILED


def _botocore(exc: BaseException) -> tuple[str, int]:
    from botocore.exceptions import (
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    from cli.aws.errors import aws_error

    if isinstance(exc, NoRegionError):
        return "no AWS region: pass --region, set AWS_REGION, or add region to [aws] in imgproc.toml", ExitCode.USAGE
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ("no AWS credentials: pass --profile, set AWS_PROFILE, or set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY", ExitCode.USAGE)
    if isinstance(exc, ProfileNotFound):
        return str(exc), ExitCode.USAGE
    if isinstance(exc, EndpointConnectionError):
        return f"cannot reach the AWS endpoint: {exc}", ExitCode.FAILED
    return f"AWS error: {aws_error(exc)}", ExitCode.FAILED


def report(exc: BaseException) -> int:
    """Print the failure once on stderr and return the exit code."""
    message, code = outcome(exc)
    if debug_enabled() and not isinstance(exc, (KeyboardInterrupt, BrokenPipeError)):
        traceback.print_exception(exc, file=sys.stderr)
    if message:
        err_console().print(f"[bold red]Error:[/] {escape(' '.join(message.split()))}", soft_wrap=True)
    return int(code)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass

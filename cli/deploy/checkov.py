"""Telling checkov, next to a resource, which of its checks do not apply and why."""

from __future__ import annotations

from typing import Any

#: Why an SQS queue passes CKV_AWS_27 (queue encrypted) although checkov reports it.
SSE_SQS = "encrypted at rest with SSE-SQS (SqsManagedSseEnabled); checkov only recognises a KMS key"


def checkov_skip(**reasons: str) -> dict[str, Any]:
    """A resource's ``Metadata`` telling checkov which of its checks do not apply, each with the reason."""
    return {"checkov": {"skip": [{"id": check, "comment": why} for check, why in reasons.items()]}}

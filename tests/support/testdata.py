"""Test data helpers: captured events, a Lambda context, the environment for `imgproc` subprocesses."""

from __future__ import annotations

import json
import os
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REGION = "us-east-1"


class LambdaContext:
    """The attributes of the Lambda context object our handlers read."""

    function_name = "imgproc-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:imgproc-test"
    aws_request_id = "6f1c1e7e-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/imgproc-test"
    log_stream_name = "2026/11/26/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def load_event(name: str) -> dict:
    """A captured event JSON from tests/fixtures/events/."""
    return json.loads((FIXTURES / "events" / name).read_text(encoding="utf-8"))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for running `imgproc` as a subprocess in tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(extra)
    return env

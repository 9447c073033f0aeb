"""Failures that only the command line can have (the engine's are in core/errors.py).

Each class carries the exit code the CLI's one error edge (cli/edge.py) uses,
and a one-line message that is safe to print.
"""

from __future__ import annotations

from typing import NoReturn

from cli.console import ExitCode


class CliError(Exception):
    """A failure of a command, reported as one `Error: ...` line."""

    exit_code: int = ExitCode.FAILED
    #: True when trying again later could succeed (throttling, a 5xx).
    transient: bool = False

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = int(exit_code)

    def __str__(self) -> str:
        return self.message


class WorkerDied(CliError):
    """A `process` worker died while rendering a file (out-of-memory kill, codec crash).

    Reported per file (its ``type`` in the summary); the pool replaces the worker and the run goes on.
    """


class UsageError(CliError):
    """A bad option, a missing folder or file, an option the target does not allow."""

    exit_code = ExitCode.USAGE


class PackageError(CliError):
    """The Lambda package cannot be built or fails its checks."""


class DeployError(CliError):
    """A CloudFormation or AWS call needed by deploy/status/push/destroy failed."""


class WaitTimedOut(DeployError):
    """An AWS wait (a change set, a stack operation) passed its deadline."""


class LogTargetNotFound(CliError):
    """The stack, its LogGroupName output or the log group does not exist."""

    exit_code = ExitCode.USAGE


class LogsUnavailable(CliError):
    """CloudWatch Logs refused or failed a read (permissions, throttling, network)."""


class TransientLogsError(LogsUnavailable):
    """A read that may work later: throttled, a 5xx, or a dropped connection."""

    transient = True


class Throttled(TransientLogsError):
    """FilterLogEvents still throttled after botocore's own retries."""


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    """Stop the command with one `Error: message` line (printed literally) and exit ``code``."""
    raise CliError(message, code)

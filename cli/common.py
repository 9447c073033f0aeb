"""What every command shares: exit codes, the error line, config loading."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from core.errors import ImgprocError
from core.recipe import Config, find_config


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the command ran, but something it was asked to do failed
    USAGE = 2  # bad option, missing folder, bad config
    INTERRUPTED = 130  # Ctrl-C


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Presets file. Default: ./imgproc.toml if present, else the built-in presets.",
        show_default=False, dir_okay=False,
    ),
]


def human_bytes(n: Any) -> str:
    """1536 -> "1.5 KB"; "?" when the size is unknown."""
    if not isinstance(n, (int, float)):
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def err_console() -> Console:
    return Console(stderr=True, highlight=False)


def fail(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """Print one `Error: ...` line on stderr and exit with ``code``."""
    err_console().print(f"[bold red]Error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(int(code))


def load_config(path: Path | None) -> Config:
    """The presets file for this run, or exit 2 with the parser's one-line message."""
    try:
        return find_config(path, Path.cwd())
    except ImgprocError as exc:
        fail(str(exc), ExitCode.USAGE)

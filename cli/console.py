"""What every command shares for output: exit codes, consoles, sizes, the presets file."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Any

from rich.console import Console

from core.recipe import Config, find_config


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the command ran, but something it was asked to do failed
    USAGE = 2  # bad option, missing folder, bad config
    INTERRUPTED = 130  # Ctrl-C


def human_bytes(n: Any) -> str:
    """1536 -> "1.5 KiB"; "?" when the size is unknown. Binary units everywhere."""
    if not isinstance(n, (int, float)) or isinstance(n, bool):
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def err_console() -> Console:
    """Progress and errors go to stderr, so stdout stays for results."""
    return Console(stderr=True, highlight=False)


def load_config(path: Path | None) -> Config:
    """The presets file for this run (a ConfigError becomes exit 2 at the edge)."""
    return find_config(path, Path.cwd())

"""Codec warnings, caught while one image renders and handed back with its name.

Pillow reports oddities of a file with ``warnings.warn`` ("Corrupt EXIF
data"), and libtiff writes its complaints straight to file descriptor 2.
Left alone they reach the terminal or the function's log as bare lines that
name no file, once per occurrence. ``Captured`` collects both while one image
renders, so the caller can show them once, next to the file they concern.

Redirecting descriptor 2 is process-wide: the engine renders one image at a
time per process (``process`` workers, the Lambda handlers), and core itself
never writes to stderr, so nothing else is caught by mistake.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import warnings
from types import TracebackType
from typing import IO

from core.errors import ImgprocError

MAX_LINES = 20  # a hostile file can make a codec complain once per row
MAX_CAPTURED_BYTES = 64 * 1024
# libtiff names the stream Pillow opened it as, not the user's file.
_LIBTIFF_STREAM = re.compile(r"^tempfile\.tif:\s*")


class Captured:
    """Context manager: warnings raised and stderr written inside it, as ``lines``.

    Each line names ``name`` and appears once, with a count when it repeated.
    An ImgprocError leaving the block carries the lines in its ``warnings``.
    """

    def __init__(self, name: str):
        self.name = name
        self.lines: tuple[str, ...] = ()
        self._warnings = warnings.catch_warnings(record=True)
        self._caught: list[warnings.WarningMessage] = []
        self._saved_fd: int | None = None
        self._sink: IO[bytes] | None = None

    def __enter__(self) -> Captured:
        self._caught = self._warnings.__enter__()
        warnings.simplefilter("always")  # every occurrence; duplicates are merged below
        self._redirect_stderr()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        written = self._restore_stderr()
        self._warnings.__exit__(exc_type, exc, tb)
        texts = [str(w.message) for w in self._caught] + written
        self.lines = _merge(self.name, texts)
        if isinstance(exc, ImgprocError):
            exc.warnings = self.lines

    def _redirect_stderr(self) -> None:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError, AttributeError):
            return  # no descriptor 2 to protect (a daemon, a closed stderr)
        sink = tempfile.TemporaryFile()
        os.dup2(sink.fileno(), 2)
        self._sink = sink
        self._saved_fd = saved

    def _restore_stderr(self) -> list[str]:
        if self._saved_fd is None or self._sink is None:
            return []
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        os.dup2(self._saved_fd, 2)
        os.close(self._saved_fd)
        self._saved_fd = None
        with self._sink as sink:
            sink.seek(0)
            text = sink.read(MAX_CAPTURED_BYTES).decode("utf-8", "replace")
        self._sink = None
        return [_LIBTIFF_STREAM.sub("", line).strip() for line in text.splitlines()]


def _merge(name: str, texts: list[str]) -> tuple[str, ...]:
    """One line per distinct message, in first-seen order, counted when repeated."""
    counts: dict[str, int] = {}
    for text in texts:
        text = " ".join(text.split())
        if text:
            counts[text] = counts.get(text, 0) + 1
    lines = [f"{name}: {text}" + (f" ({n} times)" if n > 1 else "") for text, n in counts.items()]
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"{name}: ... and {len(lines) - MAX_LINES} more kinds of warning"]
    return tuple(lines)

"""Every failure imgproc can report, one class each.

Each message is a single line that is safe to show a user or write to a log:
it names the file or key and the limit, never image bytes or credentials.
The CLI maps these classes to exit codes; the Lambda handler logs them as
structured JSON and decides from ``transient`` whether a retry can help.
"""

from __future__ import annotations


class ImgprocError(Exception):
    """Base class: a failure with a one-line, user-safe message."""

    #: True when trying again later could succeed (throttling, a 5xx).
    transient: bool = False
    #: Codec warnings about the same file, one line each (see core.diagnostics).
    warnings: tuple[str, ...] = ()

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        """The name used in JSON summaries and log records."""
        return type(self).__name__

    def __str__(self) -> str:
        return self.message


# --- configuration ------------------------------------------------------------


class ConfigError(ImgprocError):
    """imgproc.toml (or another settings source) is malformed or out of range."""


class UnknownPreset(ConfigError):
    """A preset name was asked for that the configuration does not define."""


class CodecUnavailable(ImgprocError):
    """The output format's encoder is not compiled into this Pillow build."""


# --- refusing a source before doing work ------------------------------------


class RefusedSource(ImgprocError):
    """Base for sources refused by a limit; a retry cannot fix these."""


class SourceTooLarge(RefusedSource):
    """The source file is bigger than the byte limit."""


class TooManyPixels(RefusedSource):
    """The image header declares more pixels than allowed (decompression bomb)."""


class UnsupportedFormat(RefusedSource):
    """The source decodes as a format outside the input allow-list."""


class TooManyFrames(RefusedSource):
    """An animation has more frames than allowed."""


class NotAnImage(RefusedSource):
    """The source is not a recognisable image at all."""


class CorruptImage(RefusedSource):
    """The source looks like an image but cannot be decoded."""


class TooManyScans(RefusedSource):
    """A progressive JPEG has more scans than allowed (each scan is another pass over every block)."""


class ImageTimeout(ImgprocError):
    """Rendering one image took longer than its time limit (limits.max_seconds or the function's deadline)."""


class MemoryBudgetExceeded(RefusedSource):
    """Decoding the source would need more memory than limits.max_memory_mb (estimated from its header)."""


class NotRegularFile(RefusedSource):
    """The source is a FIFO, a device, a socket or a folder: only regular files are read (a FIFO would block forever)."""


class OutsideSource(RefusedSource):
    """The source is a symlink that leads outside the source folder; it is not followed."""


# --- producing an output ----------------------------------------------------


class OutputTooLarge(ImgprocError):
    """A rendition would exceed the maximum output dimension."""


class ByteBudgetExceeded(ImgprocError):
    """Even the lowest allowed quality does not fit the rendition's max_bytes."""


class OutputCollision(ImgprocError):
    """Two sources would write the same output file (e.g. a.jpg and a.png)."""


class UnsafeOutput(ImgprocError):
    """An output path would land inside the source folder (or leave the output folder): inputs are never modified."""


# --- storage -----------------------------------------------------------------


class StorageError(ImgprocError):
    """Reading or writing a source or rendition failed."""


class TransientStorageError(StorageError):
    """A storage call failed in a way a retry may fix (throttling, a 5xx)."""

    transient = True


class WriteConflict(StorageError):
    """A conditional write lost: the output was created or replaced by another writer since it was examined."""


class SourceChanged(TransientStorageError):
    """The source was replaced between its HeadObject and the download (a retry checks the new one)."""

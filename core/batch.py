"""Processing a local folder: discovery, the incremental plan, and one file's work.

The CLI drives these functions (and draws progress); they print nothing.
A manifest in the output folder records, per source, its size, mtime and the
recipe hash it was rendered with, so a rerun skips what is already up to date.
"""

from __future__ import annotations

import json
import os
import stat as stat_mode
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from core.errors import (
    ImgprocError,
    NotRegularFile,
    OutputCollision,
    OutsideSource,
    SourceTooLarge,
    StorageError,
    UnsafeOutput,
)
from core.naming import local_output_path
from core.pipeline import render
from core.recipe import Limits, Rendition, recipe_hash
from core.storage import atomic_write

IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".tif", ".tiff", ".bmp", ".avif",
    ".heic", ".heif", ".hif", ".mpo",  # iPhone photos; stereo and multi-picture camera JPEGs
})
MANIFEST_NAME = ".imgproc-manifest.json"
# source path -> {"size", "mtime_ns", "recipe", "outputs"}: JSON read back from the output folder,
# so each field is compared, never trusted to have a type.
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Job:
    relative: str  # source path relative to SRC, '/'-separated
    outputs: tuple[str, ...]  # output paths relative to OUT, one per rendition, same order


@dataclass(frozen=True)
class Collision:
    """``relative`` wants ``output``, which ``owner`` writes: ``relative`` is not rendered."""

    relative: str
    owner: str
    output: str
    stat: tuple[int, int] | None
    message: str


@dataclass(frozen=True)
class Plan:
    jobs: tuple[Job, ...]
    unchanged: tuple[str, ...]  # up to date for this recipe: skipped
    not_images: tuple[str, ...]  # extension is not an image format: skipped
    collisions: tuple[Collision, ...]  # failures, reported once per unchanged pair
    recipe: str
    acknowledged: tuple[Collision, ...] = ()  # the same collisions a previous run reported: skipped, warned
    unsafe: tuple[tuple[str, str], ...] = ()  # (relative source, message): an output would touch SRC; failures


@dataclass(frozen=True)
class OutputRecord:
    path: str  # relative to OUT
    rendition: str
    format: str
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class FileResult:
    relative: str
    source_bytes: int = 0
    outputs: tuple[OutputRecord, ...] = ()
    error: str | None = None
    error_type: str | None = None
    stat: tuple[int, int] | None = None  # (size, mtime_ns) of the source as rendered
    warnings: tuple[str, ...] = ()  # codec warnings about this source, once each

    @property
    def ok(self) -> bool:
        return self.error is None


def discover(src: Path, exclude: Path | None = None) -> tuple[list[str], list[str]]:
    """Every file under ``src`` (recursively, sorted): (images, others) as relative paths.

    Hidden files and folders are ignored, and so is ``exclude`` (the output
    folder when the user put it inside SRC). Folder symlinks are not followed.
    """
    images: list[str] = []
    others: list[str] = []
    excluded = exclude.resolve() if exclude else None
    for root, dirs, files in os.walk(src):
        root_path = Path(root)
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and (excluded is None or (root_path / d).resolve() != excluded)
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            rel = (root_path / name).relative_to(src).as_posix()
            (images if Path(name).suffix.lower() in IMAGE_EXTENSIONS else others).append(rel)
    return images, others


def load_manifest(out: Path) -> Manifest:
    try:
        data = json.loads((out / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def save_manifest(out: Path, entries: Manifest) -> None:
    doc = {"version": 1, "entries": dict(sorted(entries.items()))}
    atomic_write(out / MANIFEST_NAME, json.dumps(doc, indent=1).encode())


def _stat(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns), or None when the path cannot be examined (run_job then says why)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


_KINDS = ((stat_mode.S_ISFIFO, "a FIFO"), (stat_mode.S_ISCHR, "a character device"),
          (stat_mode.S_ISBLK, "a block device"), (stat_mode.S_ISSOCK, "a socket"), (stat_mode.S_ISDIR, "a folder"))


def _kind(st_mode: int) -> str:
    return next((name for test, name in _KINDS if test(st_mode)), "not a regular file")


def read_source(src: Path, relative: str, limits: Limits) -> tuple[bytes, tuple[int, int]]:
    """The bytes of one source and its (size, mtime_ns); only a regular file inside SRC, never past the byte limit.

    A FIFO would block the read forever and ``/dev/zero`` never ends, so the
    file type is checked before it is opened and again on the open descriptor
    (opened non-blocking: opening a FIFO must not wait for a writer). A
    symlink to a file inside SRC is followed like the file itself; one that
    leads outside SRC is refused, so a folder from elsewhere cannot publish
    files it only points at.
    """
    path = src / relative
    st = os.stat(path)  # follows a symlink; FileNotFoundError for a dangling one
    link = f" (symlink to {os.readlink(path)})" if path.is_symlink() else ""
    if not stat_mode.S_ISREG(st.st_mode):
        raise NotRegularFile(f"{relative}: {_kind(st.st_mode)}{link}, not a regular file; not read")
    real = path.resolve()
    if not real.is_relative_to(src.resolve()):
        raise OutsideSource(f"{relative}: symlink to {real}, outside the source folder; not followed")
    limits.check_source_size(st.st_size, relative)  # before reading it into memory
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        opened = os.fstat(fh.fileno())
        if not stat_mode.S_ISREG(opened.st_mode):  # replaced since the check above
            raise NotRegularFile(f"{relative}: {_kind(opened.st_mode)}, not a regular file; not read")
        data = fh.read(limits.max_source_bytes + 1)
    if len(data) > limits.max_source_bytes:
        raise SourceTooLarge(f"{relative}: more than the {limits.max_source_bytes:,}-byte limit (it grew while read)")
    return data, (opened.st_size, opened.st_mtime_ns)


def _up_to_date(entry: dict[str, Any] | None, stat: tuple[int, int] | None, recipe: str, outputs: tuple[str, ...], out: Path) -> bool:
    if not entry or stat is None:
        return False
    same_source = (entry.get("size"), entry.get("mtime_ns")) == stat and entry.get("recipe") == recipe
    return same_source and list(entry.get("outputs", [])) == list(outputs) and all(
        (out / p).is_file() for p in outputs
    )


def plan(src: Path, out: Path, renditions: tuple[Rendition, ...], manifest: Manifest, force: bool,
         naming: str = "stem") -> Plan:
    """Decide what to render: skip up-to-date sources, flag output collisions.

    An output belongs to the source that wrote it (the manifest says which) as long
    as that source exists, else to the first source in sorted order: ``cat.gif``
    added beside ``cat.jpg`` later never overwrites ``cat-thumb.jpg``. A collision
    fails the run once; while both files stay unchanged, later runs skip it with
    a warning instead of failing forever (``--force`` reports it again).
    """
    images, others = discover(src, exclude=out)
    recipe = recipe_hash(renditions)
    present = set(images)
    owner: dict[str, str] = {  # output path -> the source that writes it
        o: rel for rel, entry in manifest.items() if rel in present and not entry.get("collides_with")
        for o in entry.get("outputs", [])
    }
    jobs: list[Job] = []
    unchanged: list[str] = []
    collisions: list[Collision] = []
    acknowledged: list[Collision] = []
    unsafe: list[tuple[str, str]] = []
    guard = _OutputGuard(src, out)
    for rel in images:
        outputs = tuple(local_output_path(rel, r, naming) for r in renditions)
        problem = next(filter(None, (guard.problem(o) for o in outputs)), None)
        if problem:
            unsafe.append((rel, str(UnsafeOutput(f"{rel}: {problem}; not rendered (inputs are never modified)"))))
            continue
        stat = _stat(src / rel)
        clash = next((o for o in outputs if owner.get(o, rel) != rel), None)
        if clash:
            entry = manifest.get(rel) or {}
            seen = (not force and stat is not None and entry.get("collides_with") == owner[clash]
                    and (entry.get("size"), entry.get("mtime_ns")) == stat and entry.get("recipe") == recipe)
            message = str(OutputCollision(
                f"{rel}: output {clash} is written from {owner[clash]}, which keeps it; {rel} is not rendered "
                f"(set [output] naming = \"extension\" in imgproc.toml to render both)"))
            (acknowledged if seen else collisions).append(Collision(rel, owner[clash], clash, stat, message))
            continue
        owner.update((o, rel) for o in outputs)
        if not force and _up_to_date(manifest.get(rel), stat, recipe, outputs, out):
            unchanged.append(rel)
        else:
            jobs.append(Job(rel, outputs))
    return Plan(tuple(jobs), tuple(unchanged), tuple(others), tuple(collisions), recipe, tuple(acknowledged),
                tuple(unsafe))


class _OutputGuard:
    """Every layout keeps inputs safe: with SRC inside OUT, ``OUT/photos/x-thumb.jpg`` may be
    ``SRC/x-thumb.jpg`` (a sub-folder named like SRC), and a symlinked folder in OUT may lead anywhere."""

    def __init__(self, src: Path, out: Path):
        self.src, self.out = src.resolve(), out.resolve()
        self.out_in_src = self.out.is_relative_to(self.src)  # then OUT is excluded from the inputs
        self._folders: dict[Path, Path] = {}

    def problem(self, relative_output: str) -> str | None:
        # Only the folder is resolved (once each): the file itself is replaced by rename, so a
        # symlink in its place is replaced, never written through.
        folder = (self.out / relative_output).parent
        if folder not in self._folders:
            self._folders[folder] = folder.resolve()
        target = self._folders[folder] / PurePosixPath(relative_output).name
        if not target.is_relative_to(self.out):
            return f"output {relative_output} leads outside the output folder (to {target})"
        if not self.out_in_src and target.is_relative_to(self.src):
            return f"output {relative_output} would be written inside the source folder (as {target})"
        return None


def run_job(src: Path, out: Path, job: Job, renditions: tuple[Rendition, ...], limits: Limits) -> FileResult:
    """Render one source and write its outputs atomically; failures become a result, not a raise."""
    try:
        data, stat = read_source(src, job.relative, limits)
        result = render(data, renditions, limits, name=job.relative)
        paths = dict(zip((r.label for r in renditions), job.outputs, strict=True))
        records = []
        for output in result.outputs:
            rel_out = paths[output.rendition.label]
            atomic_write(out / rel_out, output.data)
            records.append(OutputRecord(rel_out, output.rendition.name, output.rendition.format,
                                        output.width, output.height, output.bytes))
        # A rendition that failed on its own fails the file, and the others are still written.
        errors = [f.error for f in result.failures]
        return FileResult(job.relative, len(data), tuple(records), stat=stat, warnings=result.warnings,
                          error="; ".join(map(str, errors)) or None, error_type=errors[0].kind if errors else None)
    except ImgprocError as exc:
        return FileResult(job.relative, error=str(exc), error_type=exc.kind, warnings=exc.warnings)
    except OSError as exc:
        err = StorageError(f"{job.relative}: {exc.strerror or exc}")
        return FileResult(job.relative, error=str(err), error_type=err.kind)
    except Exception as exc:  # noqa: BLE001 - last resort: a bug must cost one file, not the whole run
        return FileResult(job.relative, error=f"{job.relative}: internal error: {type(exc).__name__}: {exc}",
                          error_type="InternalError")


def collision_entry(collision: Collision, recipe: str) -> dict[str, object]:
    """Remembers a reported collision, so an unchanged pair is not failed again on every run."""
    size, mtime_ns = collision.stat or (0, 0)
    return {"size": size, "mtime_ns": mtime_ns, "recipe": recipe, "outputs": [], "collides_with": collision.owner}


def manifest_entry(result: FileResult, recipe: str) -> dict[str, object]:
    size, mtime_ns = result.stat or (0, 0)
    return {"size": size, "mtime_ns": mtime_ns, "recipe": recipe, "outputs": [o.path for o in result.outputs]}

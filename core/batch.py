"""Processing a local folder: discovery, the incremental plan, and one file's work.

The CLI drives these functions (and draws progress); they print nothing.
A manifest in the output folder records, per source, its size, mtime and the
recipe hash it was rendered with, so a rerun skips what is already up to date.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ImgprocError, OutputCollision, StorageError
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
class Plan:
    jobs: tuple[Job, ...]
    unchanged: tuple[str, ...]  # up to date for this recipe: skipped
    not_images: tuple[str, ...]  # extension is not an image format: skipped
    collisions: tuple[tuple[str, str], ...]  # (relative source, message): failures
    recipe: str


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


def _stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _up_to_date(entry: dict[str, Any] | None, stat: tuple[int, int], recipe: str, outputs: tuple[str, ...], out: Path) -> bool:
    if not entry:
        return False
    same_source = (entry.get("size"), entry.get("mtime_ns")) == stat and entry.get("recipe") == recipe
    return same_source and list(entry.get("outputs", [])) == list(outputs) and all(
        (out / p).is_file() for p in outputs
    )


def plan(src: Path, out: Path, renditions: tuple[Rendition, ...], manifest: Manifest, force: bool) -> Plan:
    """Decide what to render: skip up-to-date sources, flag output collisions."""
    images, others = discover(src, exclude=out)
    recipe = recipe_hash(renditions)
    owner: dict[str, str] = {}  # output path -> the source that writes it
    jobs: list[Job] = []
    unchanged: list[str] = []
    collisions: list[tuple[str, str]] = []
    for rel in images:
        outputs = tuple(local_output_path(rel, r) for r in renditions)
        clash = next((o for o in outputs if o in owner), None)
        if clash:
            collisions.append((rel, str(OutputCollision(f"{rel}: output {clash} is also written from {owner[clash]}"))))
            continue
        owner.update((o, rel) for o in outputs)
        if not force and _up_to_date(manifest.get(rel), _stat(src / rel), recipe, outputs, out):
            unchanged.append(rel)
        else:
            jobs.append(Job(rel, outputs))
    return Plan(tuple(jobs), tuple(unchanged), tuple(others), tuple(collisions), recipe)


def run_job(src: Path, out: Path, job: Job, renditions: tuple[Rendition, ...], limits: Limits) -> FileResult:
    """Render one source and write its outputs atomically; failures become a result, not a raise."""
    path = src / job.relative
    try:
        stat = _stat(path)
        limits.check_source_size(stat[0], job.relative)  # before reading it into memory
        data = path.read_bytes()
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


def manifest_entry(result: FileResult, recipe: str) -> dict[str, object]:
    size, mtime_ns = result.stat or (0, 0)
    return {"size": size, "mtime_ns": mtime_ns, "recipe": recipe, "outputs": [o.path for o in result.outputs]}

"""Render one stored source into stored renditions: the handler's (and the API's) unit of work.

Pure orchestration over injected storage (``core.storage``): check the source
with HeadObject before downloading it, skip work already done, render with
``core.pipeline.render``, write each rendition with its Content-Type, a long
Cache-Control and metadata naming the source, then optionally label it.
The result is the JSON log record of the team contract (without timestamp and
request id, which the caller adds).

Example::

    job = Job.create(config.select(["thumb"]), config.limits, output_prefix="")
    record = process_object(S3Bucket(s3, "in"), "uploads/cat 1.jpg", S3Bucket(s3, "out"), job)
    record["outcome"], record["renditions"][0]["output_key"]
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, unquote

from core.errors import ImgprocError, OutputCollision, StorageError, TransientStorageError, WriteConflict
from core.naming import s3_output_key
from core.recipe import Limits, Rendition, recipe_hash
from core.storage import ABSENT, ObjectInfo, Storage

if TYPE_CHECKING:  # core.pipeline imports Pillow: this module loads it on first use only
    from core.pipeline import Output

CACHE_CONTROL = "public, max-age=31536000, immutable"
# The source key, percent-encoded (S3 metadata is ASCII): the rendition's owner. A rendition
# is only ever replaced from the source it names (a same-stem source must not overwrite it).
META_SOURCE_KEY = "imgproc-source-key"
META_SOURCE_ETAG = "imgproc-source-etag"
META_RECIPE = "imgproc-recipe"  # the recipe hash of the rendition set rendered together
META_RENDITION_RECIPE = "imgproc-rendition-recipe"  # this rendition's own recipe hash
IMGPROC_METADATA = (META_SOURCE_KEY, META_SOURCE_ETAG, META_RECIPE, META_RENDITION_RECIPE)

REKOGNITION_MAX_BYTES = 5 * 1024 * 1024  # DetectLabels with image bytes
MAX_TAGS = 10  # S3's per-object limit


@dataclass(frozen=True)
class Label:
    name: str
    confidence: float
    parents: tuple[str, ...] = ()


class Labeler(Protocol):
    """Image labels (Rekognition in Lambda) plus tagging the written renditions."""

    def detect(self, image: bytes) -> list[Label]: ...
    def tag(self, key: str, tags: dict[str, str]) -> None: ...


@dataclass(frozen=True)
class Job:
    """What to make of every source: renditions, limits, where outputs go."""

    renditions: tuple[Rendition, ...]
    limits: Limits
    output_prefix: str = ""
    recipe: str = field(default="")
    naming: str = "stem"  # [output] naming (core.naming)

    @classmethod
    def create(cls, renditions: tuple[Rendition, ...], limits: Limits, output_prefix: str = "",
               naming: str = "stem") -> Job:
        return cls(tuple(renditions), limits, output_prefix, recipe_hash(tuple(renditions)), naming)

    def output_key(self, source_key: str, r: Rendition) -> str:
        return s3_output_key(self.output_prefix, source_key, r, self.naming)

    def labels_key(self, source_key: str) -> str:
        return f"{self.output_prefix}labels/{source_key}.json"

    def metadata(self, source_key: str, etag: str, r: Rendition | None = None) -> dict[str, str]:
        """What an output records of its making: source key and ETag, the set's and its own recipe."""
        meta = {META_SOURCE_KEY: quote(source_key, safe="/"), META_SOURCE_ETAG: etag, META_RECIPE: self.recipe}
        if r is not None:
            meta[META_RENDITION_RECIPE] = rendition_recipe(r)
        return meta

    def is_current(self, info: ObjectInfo | None, r: Rendition, source_etag: str) -> bool:
        """The output ``info`` was made from this source version with ``r``'s recipe.

        A rendition is judged by its own recipe, so changing one preset re-renders only its
        renditions. Outputs written before renditions recorded their own recipe are judged by
        the set's recipe, as they were then.
        """
        if info is None or info.metadata.get(META_SOURCE_ETAG) != source_etag:
            return False
        own = info.metadata.get(META_RENDITION_RECIPE)
        if own is not None:
            return own == rendition_recipe(r)
        return info.metadata.get(META_RECIPE) == self.recipe


_RENDITION_RECIPES: dict[Rendition, str] = {}


def rendition_recipe(r: Rendition) -> str:
    """``r.recipe_hash()``, computed once per rendition (it hashes the watermark's bytes)."""
    if r not in _RENDITION_RECIPES:
        _RENDITION_RECIPES[r] = r.recipe_hash()
    return _RENDITION_RECIPES[r]


def owned_by(info: ObjectInfo, source_key: str) -> bool:
    """True when the existing output names ``source_key`` as its source."""
    return info.metadata.get(META_SOURCE_KEY) == quote(source_key, safe="/")


def collision(out_key: str, info: ObjectInfo | None, source_key: str) -> OutputCollision:
    """The error for ``source_key`` wanting ``out_key``, which another source (or none we know) wrote."""
    owner = info.metadata.get(META_SOURCE_KEY) if info is not None else None
    who = f"from {unquote(owner)}" if owner else "by something other than imgproc (no source key recorded)"
    return OutputCollision(
        f"{source_key}: output {out_key} was already written {who} and is kept; "
        f"set [output] naming = \"extension\" in imgproc.toml to render both"
    )


def is_imgproc_output(info: ObjectInfo) -> bool:
    """True for objects imgproc wrote (the second half of the loop guard)."""
    return any(k in info.metadata for k in IMGPROC_METADATA)


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def error_dict(exc: BaseException) -> dict[str, Any]:
    """``{"type", "message", "transient"}`` for a log record; never includes bytes."""
    if isinstance(exc, ImgprocError):
        return {"type": exc.kind, "message": exc.message, "transient": exc.transient}
    message = (str(exc).splitlines() or [""])[0][:300]
    return {"type": type(exc).__name__, "message": message, "transient": False}


def new_record(bucket: str, key: str) -> dict[str, Any]:
    """The log record skeleton, in the contract's field order."""
    return {
        "level": "INFO", "event": "image", "bucket": bucket, "key": key, "outcome": "ok",
        "source": {}, "renditions": [], "bytes_in": 0, "bytes_out": 0,
        "ms": {"download": 0.0, "decode": 0.0, "transform": 0.0, "encode": 0.0, "upload": 0.0, "total": 0.0},
    }


def skipped(record: dict[str, Any], reason: str, level: str = "INFO") -> dict[str, Any]:
    record.update(outcome="skipped", reason=reason, level=level)
    return record


def failed(record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    record.update(outcome="failed", level="ERROR", error=error_dict(exc))
    return record


def process_object(
    source: Storage,
    key: str,
    output: Storage,
    job: Job,
    *,
    bucket: str = "",
    labeler: Labeler | None = None,
) -> dict[str, Any]:
    """Make every rendition of ``key``; never raises for a per-image failure.

    Returns the log record: ``outcome`` is "ok" (written or already up to date
    per rendition), "skipped" (with ``reason``) or "failed" (with ``error``).
    """
    started = time.perf_counter()
    record = new_record(bucket, key)
    try:
        _process(source, key, output, job, record, labeler)
    except Exception as exc:  # noqa: BLE001 - last resort: one image's failure must not stop the others
        failed(record, exc)
        if isinstance(exc, ImgprocError) and exc.warnings:
            record["warnings"] = list(exc.warnings)
    record["ms"]["total"] = _ms(started)
    return record


def _process(source: Storage, key: str, output: Storage, job: Job, record: dict[str, Any],
             labeler: Labeler | None) -> None:
    ms = record["ms"]
    t = time.perf_counter()
    info = source.head(key)
    if info is None:
        skipped(record, "source object not found (deleted since the event?)", "WARNING")
        return
    record["source"] = {"bytes": info.size, "etag": info.etag}
    if is_imgproc_output(info):
        skipped(record, "object carries imgproc output metadata (loop guard)", "WARNING")
        return
    job.limits.check_source_size(info.size, key)  # before downloading a byte

    # An output another source wrote is never replaced (same-stem sources: cat.jpg, cat.png).
    existing = {r.label: _head_output(output, job.output_key(key, r)) for r in job.renditions}
    taken = {label: collision(o.key, o, key) for label, o in existing.items()
             if o is not None and not owned_by(o, key)}
    # Idempotency: each of our outputs is judged by its source ETag and its own recipe.
    current = {r.label for r in job.renditions
               if r.label not in taken and job.is_current(existing[r.label], r, info.etag)}
    ms["download"] = round(ms["download"] + _ms(t), 2)
    # Only what is missing or stale, and ours to write, is rendered: a preset change or a lost
    # output costs that rendition alone, and nothing is rendered twice for the same recipe.
    stale = tuple(r for r in job.renditions if r.label not in current and r.label not in taken)
    if taken and not stale:
        raise next(iter(taken.values()))  # nothing of ours to write: do not download the source
    if job.renditions and len(current) == len(job.renditions):
        for r in job.renditions:
            o = existing[r.label]
            record["renditions"].append(_rendition_entry(r, job.output_key(key, r), o.size if o else 0,
                                                         None, None, 0.0, "unchanged"))
        skipped(record, "already processed: outputs carry the same source ETag and recipe")
        return

    t = time.perf_counter()
    # Pinned to the ETag and size limit checked above: the object may be replaced since.
    data = [source.read(key, etag=info.etag, max_bytes=job.limits.max_source_bytes)]
    ms["download"] += _ms(t)
    record["bytes_in"] = len(data[0])

    from core.pipeline import render  # Pillow is imported on first use, not with this module

    # Hand over the only reference: render() drops the encoded bytes once they are
    # decoded, which keeps them out of the peak (the first resize).
    result = render(data.pop(), stale, job.limits, name=key)
    src = result.source
    record["source"] = {"bytes": src.bytes, "width": src.width, "height": src.height,
                        "format": src.format, "etag": info.etag}
    ms["decode"] = result.ms_decode
    if result.warnings:
        record["warnings"] = list(result.warnings)

    metadata = job.metadata(key, info.etag)
    written = []
    made = {o.rendition.label: o for o in result.outputs}
    failures = {f.rendition.label: f.error for f in result.failures}
    failures.update(taken)
    for r in job.renditions:
        out_key = job.output_key(key, r)
        if r.label in current:
            o = existing[r.label]
            record["renditions"].append(_rendition_entry(r, out_key, o.size if o else 0, None, None, 0.0,
                                                         "unchanged"))
            continue
        if r.label in failures:  # the others are still written; the record fails below
            entry = _rendition_entry(r, out_key, 0, None, None, 0.0, "failed")
            record["renditions"].append({**entry, "error": error_dict(failures[r.label])})
            continue
        out = made[r.label]
        ms["transform"] += out.ms_transform
        ms["encode"] += out.ms_encode
        t = time.perf_counter()
        previous = existing[r.label]
        try:
            outcome = _write_owned(output, out_key, out.data, r, job.metadata(key, info.etag, r), key,
                                   ABSENT if previous is None else previous.etag)
        except OutputCollision as exc:
            entry = _rendition_entry(r, out_key, 0, None, None, 0.0, "failed")
            record["renditions"].append({**entry, "error": error_dict(exc)})
            failures[r.label] = exc
            continue
        upload = _ms(t)
        ms["upload"] += upload
        if outcome == "written":
            written.append(out_key)
        record["bytes_out"] += out.bytes
        record["renditions"].append(_rendition_entry(
            r, out_key, out.bytes, out.width, out.height,
            round(out.ms_transform + out.ms_encode + upload, 2), outcome))
    for stage in ("download", "transform", "encode", "upload"):
        ms[stage] = round(ms[stage], 2)

    if labeler is not None:
        t = time.perf_counter()
        record["labels"] = _label(labeler, key, info.etag, result.outputs, output, job, written, metadata)
        ms["labels"] = _ms(t)
    if failures:
        raise next(iter(failures.values()))


def _write_owned(output: Storage, out_key: str, data: bytes, r: Rendition, metadata: dict[str, str],
                 key: str, expect: str) -> str:
    """Write a rendition only over what was examined: a new key (IfNoneMatch) or our own version (IfMatch).

    S3 checks the condition atomically with the PUT, so two same-stem sources
    racing for one key cannot both win. A lost race is fine when the winner is
    this same source (a duplicate event): "unchanged"; otherwise OutputCollision.
    """
    try:
        output.write(out_key, data, r.content_type, metadata, CACHE_CONTROL, expect=expect)
        return "written"
    except WriteConflict:
        now = _head_output(output, out_key)
        if now is not None and owned_by(now, key):
            return "unchanged"
        raise collision(out_key, now, key) from None


def _head_output(output: Storage, key: str) -> ObjectInfo | None:
    """The existing output, or None when absent or when we may not look.

    Without s3:ListBucket on the output bucket S3 answers a HEAD of a missing key
    with 403, not 404; the check is only an optimisation, so the image is
    rendered and written (a real permission problem then shows on the PUT).
    """
    try:
        return output.head(key)
    except TransientStorageError:
        raise
    except StorageError:
        return None


def _rendition_entry(r: Rendition, out_key: str, size: int, width: int | None, height: int | None,
                     ms: float, outcome: str) -> dict[str, Any]:
    return {"name": r.name, "format": r.format, "output_key": out_key, "bytes": size,
            "width": width, "height": height, "ms": ms, "outcome": outcome}


def _label(labeler: Labeler, key: str, etag: str, outputs: Sequence[Output], output: Storage, job: Job,
           written: list[str], metadata: dict[str, str]) -> dict[str, Any]:
    """DetectLabels on the largest JPEG/PNG rendition under 5 MB; failures are reported, not raised."""
    candidates = [o for o in outputs if o.rendition.format in ("jpeg", "png") and o.bytes <= REKOGNITION_MAX_BYTES]
    if not candidates:
        return {"outcome": "skipped", "reason": "no JPEG or PNG rendition under 5 MB to label"}
    image = max(candidates, key=lambda o: o.width * o.height)
    try:
        labels = sorted(labeler.detect(image.data), key=lambda lab: -lab.confidence)
    except Exception as exc:  # noqa: BLE001 - the labeler's (botocore's) errors: labels are optional, reported
        return {"outcome": "failed", "error": error_dict(exc)}
    sidecar_key = job.labels_key(key)
    doc = {
        "source_key": key, "source_etag": etag, "recipe": job.recipe, "image": image.rendition.label,
        "labels": [{"name": lab.name, "confidence": round(lab.confidence, 2), "parents": list(lab.parents)}
                   for lab in labels],
    }
    result: dict[str, Any] = {"outcome": "ok", "count": len(labels), "sidecar_key": sidecar_key,
                              "names": [lab.name for lab in labels[:MAX_TAGS]]}
    try:
        output.write(sidecar_key, json.dumps(doc, indent=2, ensure_ascii=False).encode(), "application/json",
                     metadata, CACHE_CONTROL.replace(", immutable", ""))
        tags = label_tags(labels)
        for out_key in written:
            labeler.tag(out_key, tags)
    except Exception as exc:  # noqa: BLE001 - as above: a failed sidecar or tag is reported, outputs stay
        result.update(outcome="failed", error=error_dict(exc))
    return result


_TAG_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@")


def label_tags(labels: list[Label]) -> dict[str, str]:
    """The top labels as S3 object tags: ``{"Dog": "98.7"}`` (at most 10, S3's limit)."""
    tags: dict[str, str] = {}
    for lab in labels:
        name = "".join(c for c in lab.name if c in _TAG_CHARS).strip()[:128]
        if name and name not in tags and not name.lower().startswith("aws:"):
            tags[name] = f"{lab.confidence:.1f}"
        if len(tags) == MAX_TAGS:
            break
    return tags

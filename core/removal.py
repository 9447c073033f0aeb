"""Deletes follow sources: remove the renditions (and labels sidecar) made from a deleted source.

An output key does not name its source alone: ``uploads/a.jpg`` and ``uploads/a.png``
both make ``thumb/uploads/a.jpg``. So each candidate output is removed only when its
own metadata names the deleted key; one made from another source (or not by imgproc)
stays. A source uploaded again before the delete event arrives keeps its renditions.

Example::

    record = remove_renditions(S3Bucket(s3, "in"), "uploads/a.jpg", S3Bucket(s3, "out"), job, bucket="in")
    record["outcome"], [r["outcome"] for r in record["renditions"]]   # "ok", ["removed", "kept", ...]
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from core.jobs import META_SOURCE_KEY, Job, error_dict, new_record, skipped
from core.storage import ObjectInfo, Storage


def remove_renditions(source: Storage, key: str, output: Storage, job: Job, *, bucket: str = "") -> dict[str, Any]:
    """The log record of removing ``key``'s outputs; never raises for a per-object failure."""
    started = time.perf_counter()
    record = new_record(bucket, key)
    record["event"] = "removed"
    try:
        if source.head(key) is not None:
            skipped(record, "source exists again (uploaded after the delete): renditions kept")
        else:
            _remove(key, output, job, record)
    except Exception as exc:  # noqa: BLE001 - one source's failure must not stop the others
        record.update(outcome="failed", level="ERROR", error=error_dict(exc))
    record["ms"]["total"] = round((time.perf_counter() - started) * 1000, 2)
    return record


def _remove(key: str, output: Storage, job: Job, record: dict[str, Any]) -> None:
    recorded = quote(key, safe="/")
    targets = [(r.name, r.format, job.output_key(key, r)) for r in job.renditions]
    targets.append(("labels", "json", job.labels_key(key)))
    for name, fmt, out_key in dict.fromkeys(targets):
        info = output.head(out_key)
        outcome = _outcome(info, recorded)
        if outcome == "removed":
            output.delete(out_key)
        if info is not None:
            record["renditions"].append({"name": name, "format": fmt, "output_key": out_key,
                                         "bytes": info.size, "outcome": outcome})
    if not any(r["outcome"] == "removed" for r in record["renditions"]):
        skipped(record, "no rendition made from this source")


def _outcome(info: ObjectInfo | None, recorded_key: str) -> str:
    if info is None:
        return "absent"
    if info.metadata.get(META_SOURCE_KEY) != recorded_key:
        return "kept"  # made from another source with the same stem, or not by imgproc
    return "removed"

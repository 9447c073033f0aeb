"""The gallery of a deployed stack's buckets: sources in the input bucket, renditions in the output
bucket, every image linked through a presigned GET URL (the buckets stay private).

Renditions are found where the function writes them (core.naming.s3_output_key),
so no listing is parsed by guesswork. Widths and heights are read from the
first bytes of each object (a ranged GET: headers only, never the whole file
unless its header is further in), a few at a time.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from cli.aws.errors import AWS_ERRORS
from cli.gallery.model import Failure, Gallery, Rendition, Source
from core.naming import s3_output_key
from core.recipe import Rendition as Recipe

HEADER_BYTES = 64 * 1024  # enough for the header of every format the function writes
MAX_PRESIGN_SECONDS = 7 * 86400  # SigV4 presigned URLs live at most 7 days
_SIDEWAYS = {5, 6, 7, 8}


@dataclass(frozen=True)
class Buckets:
    input_bucket: str
    output_bucket: str
    input_prefix: str
    output_prefix: str
    triggers: Callable[[str], bool]  # does this input key start the function?
    naming: str = "stem"  # [output] naming of imgproc.toml, as the function uses it (core.naming)


def _listing(s3, bucket: str, prefix: str) -> dict[str, int]:
    """{key: size} of every object under ``prefix``."""
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update((o["Key"], int(o.get("Size", 0))) for o in page.get("Contents", []))
    return found


def _parse(data: bytes) -> tuple[str, int, int] | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if img.getexif().get(0x0112) in _SIDEWAYS:
                width, height = height, width
            return (img.format or "?").lower(), width, height
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def image_header(s3, bucket: str, key: str, size: int) -> tuple[str, int, int] | None:
    """(format, width, height) of an object from its first bytes, upright; None when unreadable."""
    try:
        head = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}")["Body"].read()
        found = _parse(head)
        if found is None and size > len(head):  # header further in (a large EXIF/XMP block): read it all
            found = _parse(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        return found
    except AWS_ERRORS:
        return None


def _presign(s3, bucket: str, key: str, expires: int) -> str:
    return str(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires))


def from_buckets(s3, where: Buckets, recipes: Iterable[Recipe], expires: int,
                 logged_failures: Mapping[str, str] | None = None, jobs: int = 8,
                 title: str = "imgproc gallery", note: str = "") -> Gallery:
    """Every triggering source with the renditions found for it; sources with none are failures."""
    recipes = tuple(recipes)
    sources = {k: v for k, v in _listing(s3, where.input_bucket, where.input_prefix).items() if where.triggers(k)}
    outputs = _listing(s3, where.output_bucket, where.output_prefix) if where.output_bucket else {}
    wanted = [(where.input_bucket, key, size) for key, size in sources.items()]
    wanted += [(where.output_bucket, okey, outputs[okey]) for key in sources for r in recipes
               if (okey := s3_output_key(where.output_prefix, key, r, where.naming)) in outputs]
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        headers = dict(zip([(b, k) for b, k, _ in wanted], pool.map(lambda w: image_header(s3, *w), wanted),
                           strict=True))
    gallery_sources, failures = [], []
    logged = logged_failures or {}
    for key, size in sorted(sources.items()):
        renditions = []
        for r in recipes:
            okey = s3_output_key(where.output_prefix, key, r, where.naming)
            header = headers.get((where.output_bucket, okey))
            if header is not None:
                fmt, width, height = header
                url = _presign(s3, where.output_bucket, okey, expires)
                renditions.append(Rendition(r.name, fmt, width, height, outputs[okey], url))
        if not renditions:
            failures.append(Failure(key, logged.get(key) or "no renditions (still processing, or failed: "
                                    "see `imgproc logs`)"))
            continue
        source = Source(key, size, tuple(renditions))
        if (found := headers.get((where.input_bucket, key))) is not None:
            source = Source(key, size, tuple(renditions), found[1], found[2], found[0])
        gallery_sources.append(source)
    return Gallery(title, tuple(gallery_sources), tuple(failures), note)

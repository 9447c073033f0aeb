"""The Lambda handler's settings: environment variables -> one frozen value.

Every variable is declared once in ``VARIABLES`` (name, default, meaning).
``parse_settings`` validates them at cold start and raises ``ConfigError`` with
one line naming the variable; ``check_loop`` refuses a configuration whose
outputs would land where the function is triggered.

Example::

    settings = parse_settings({"IMGPROC_OUTPUT_BUCKET": "photos-out"}, base_dir=Path("/var/task"))
    settings.output_bucket, settings.presets, settings.config_path
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ConfigError

if TYPE_CHECKING:  # at run time only dataclasses.replace touches Limits: keep the import light
    from core.recipe import Limits

# name -> (default, one-line meaning). The README table is generated from this.
VARIABLES: dict[str, tuple[str | None, str]] = {
    "IMGPROC_OUTPUT_BUCKET": (None, "bucket the renditions are written to (required)"),
    "IMGPROC_INPUT_BUCKET": ("", "the watched bucket; with the prefixes below it lets the loop guard refuse overlaps"),
    "IMGPROC_INPUT_PREFIX": ("", "only keys under this prefix are processed"),
    "IMGPROC_OUTPUT_PREFIX": ("", "prepended to every output key; empty or ending in '/'"),
    "IMGPROC_PRESETS": ("", "comma-separated preset names; empty = every preset of the presets file"),
    "IMGPROC_MAX_SOURCE_BYTES": ("", "override limits.max_source_bytes"),
    "IMGPROC_MAX_PIXELS": ("", "override limits.max_pixels"),
    "IMGPROC_REKOGNITION": ("off", "'on' to store Rekognition labels as a sidecar and as tags"),
    "IMGPROC_CONFIG": ("imgproc.toml", "presets file, relative to the package root; built-in presets if absent"),
    "IMGPROC_ON_DELETE": ("keep", "'remove': a deleted source's renditions and labels sidecar are removed too"),
}
ON_DELETE = ("keep", "remove")

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PRESET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_ON = ("on", "true", "1", "yes")
_OFF = ("off", "false", "0", "no", "")
_LIMIT_RANGES = {"IMGPROC_MAX_SOURCE_BYTES": (1, 5 << 30), "IMGPROC_MAX_PIXELS": (1, 1 << 31)}
# Set by the Lambda runtime: the function's configured memory in MB.
FUNCTION_MEMORY = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
# What the runtime, boto3, Pillow and the encoded source and outputs take
# besides the decoded working set (a 24 MP photo peaks under 100 MiB in all).
RUNTIME_HEADROOM_MB = 256


@dataclass(frozen=True)
class HandlerSettings:
    output_bucket: str
    input_bucket: str = ""
    input_prefix: str = ""
    output_prefix: str = ""
    presets: tuple[str, ...] = ()  # empty: every preset
    max_source_bytes: int | None = None
    max_pixels: int | None = None
    rekognition: bool = False
    config_path: Path | None = None
    function_memory_mb: int | None = None  # None outside Lambda
    on_delete: str = "keep"  # "remove": ObjectRemoved events remove the source's renditions

    def limits(self, base: Limits) -> Limits:
        """The presets file's limits with the environment's overrides applied.

        The memory budget is the smaller of ``limits.max_memory_mb`` and what the
        function's memory leaves after ``RUNTIME_HEADROOM_MB``: a source the
        function cannot hold is refused from its header instead of killing it.
        """
        memory_mb = base.max_memory_mb
        if self.function_memory_mb is not None:
            fits = max(16, self.function_memory_mb - RUNTIME_HEADROOM_MB)
            memory_mb = min(base.max_memory_mb, fits)
        return replace(
            base,
            max_source_bytes=base.max_source_bytes if self.max_source_bytes is None else self.max_source_bytes,
            max_pixels=base.max_pixels if self.max_pixels is None else self.max_pixels,
            max_memory_mb=memory_mb,
        )

    def output_prefixes(self, rendition_names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """Every key prefix an output (or a labels sidecar) can start with."""
        return tuple(f"{self.output_prefix}{name}/" for name in (*rendition_names, "labels"))

    def is_output_key(self, bucket: str, key: str, rendition_names: tuple[str, ...] | list[str]) -> bool:
        """True when ``bucket/key`` is a place this function writes to."""
        return bucket == self.output_bucket and key.startswith(self.output_prefixes(rendition_names))

    def in_scope(self, bucket: str, key: str) -> bool:
        """True when the key is under the input prefix of the watched bucket."""
        if self.input_bucket and bucket != self.input_bucket:
            return True  # another bucket wired to this function: its own filter applies
        return key.startswith(self.input_prefix)


def _get(env: Mapping[str, str], name: str) -> str:
    default = VARIABLES[name][0] or ""
    return str(env.get(name, default)).strip()


def _int(env: Mapping[str, str], name: str) -> int | None:
    raw = _get(env, name)
    if not raw:
        return None
    lo, hi = _LIMIT_RANGES[name]
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: {value} is out of range {lo}..{hi}")
    return value


def _function_memory(env: Mapping[str, str]) -> int | None:
    raw = str(env.get(FUNCTION_MEMORY, "")).strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{FUNCTION_MEMORY}: expected the function's memory in MB, got {raw!r}") from None


def _bucket(env: Mapping[str, str], name: str, required: bool) -> str:
    value = _get(env, name)
    if not value:
        if required:
            raise ConfigError(f"{name} is not set: name the bucket the renditions are written to")
        return ""
    if not _BUCKET.match(value):
        raise ConfigError(f"{name}: {value!r} is not a valid S3 bucket name")
    return value


def _prefix(env: Mapping[str, str], name: str, must_end_with_slash: bool) -> str:
    value = _get(env, name)
    if value.startswith("/"):
        raise ConfigError(f"{name}: {value!r} must not start with '/' (S3 keys have no leading slash)")
    if must_end_with_slash and value and not value.endswith("/"):
        raise ConfigError(f"{name}: {value!r} must end with '/' (e.g. {value + '/'!r})")
    return value


def parse_settings(env: Mapping[str, str], base_dir: Path) -> HandlerSettings:
    """Validate the ``IMGPROC_*`` variables; ``base_dir`` anchors a relative IMGPROC_CONFIG."""
    presets = tuple(dict.fromkeys(p.strip() for p in _get(env, "IMGPROC_PRESETS").split(",") if p.strip()))
    for name in presets:
        if not _PRESET.match(name):
            raise ConfigError(f"IMGPROC_PRESETS: {name!r} is not a preset name (lowercase letters, digits, '-', '_')")
    rekognition = _get(env, "IMGPROC_REKOGNITION").lower()
    if rekognition not in _ON + _OFF:
        raise ConfigError(f"IMGPROC_REKOGNITION: expected 'on' or 'off', got {rekognition!r}")
    on_delete = _get(env, "IMGPROC_ON_DELETE").lower() or "keep"
    if on_delete not in ON_DELETE:
        raise ConfigError(f"IMGPROC_ON_DELETE: expected 'keep' or 'remove', got {on_delete!r}")
    config = _get(env, "IMGPROC_CONFIG") or "imgproc.toml"
    config_path = Path(config) if Path(config).is_absolute() else base_dir / config
    return HandlerSettings(
        output_bucket=_bucket(env, "IMGPROC_OUTPUT_BUCKET", required=True),
        input_bucket=_bucket(env, "IMGPROC_INPUT_BUCKET", required=False),
        input_prefix=_prefix(env, "IMGPROC_INPUT_PREFIX", must_end_with_slash=False),
        output_prefix=_prefix(env, "IMGPROC_OUTPUT_PREFIX", must_end_with_slash=True),
        presets=presets,
        max_source_bytes=_int(env, "IMGPROC_MAX_SOURCE_BYTES"),
        max_pixels=_int(env, "IMGPROC_MAX_PIXELS"),
        rekognition=rekognition in _ON,
        config_path=config_path,
        function_memory_mb=_function_memory(env),
        on_delete=on_delete,
    )


def check_loop(settings: HandlerSettings, rendition_names: tuple[str, ...] | list[str]) -> None:
    """Refuse to start when an output could trigger the function again.

    With one bucket for input and output, every output prefix
    (``<output prefix><rendition>/`` and ``<output prefix>labels/``) must lie
    outside the input prefix, and the input prefix outside each of them.
    """
    if not settings.input_bucket or settings.input_bucket != settings.output_bucket:
        return
    watched = settings.input_prefix
    for out in settings.output_prefixes(rendition_names):
        if out.startswith(watched) or watched.startswith(out):
            shown = watched or "(the whole bucket)"
            raise ConfigError(
                f"IMGPROC_OUTPUT_BUCKET: outputs under {settings.output_bucket}/{out} would land in the watched "
                f"prefix {shown} and trigger the function again; use another bucket or non-overlapping "
                f"IMGPROC_INPUT_PREFIX / IMGPROC_OUTPUT_PREFIX"
            )

"""Presets, renditions and limits: parsed once from imgproc.toml into frozen values.

A *preset* is a named list of *renditions*; a rendition says how one output
image is made (size, fit, format, quality, filters). Every setting is declared
once below with its default and range; anything else in the file is an error
that names the key and the file.

Example ``imgproc.toml``::

    [limits]
    max_source_bytes = 52428800

    [presets.thumb]
    description = "200 px thumbnail"
    [[presets.thumb.renditions]]
    name = "thumb"
    width = 200
    height = 200
    format = "jpeg"
    quality = 80
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, overload

from core.errors import ConfigError, SourceTooLarge, UnknownPreset

FITS = ("inside", "contain", "cover", "fill")
GRAVITIES = (
    "center", "north", "south", "east", "west",
    "northeast", "northwest", "southeast", "southwest",
)
OUTPUT_FORMATS = ("jpeg", "png", "webp", "avif")
# Output formats that can hold an animation; the others get the first frame.
ANIMATED_FORMATS = ("png", "webp", "avif")
INPUT_FORMATS = ("jpeg", "png", "webp", "gif", "tiff", "bmp", "avif", "heif")  # jpeg includes MPO
EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "avif": "avif"}
CONTENT_TYPES = {
    "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "avif": "image/avif",
}
DEFAULT_QUALITY = {"jpeg": 82, "webp": 80, "avif": 60, "png": 100}

# Top-level tables owned by other parts of imgproc (deploy settings, the API):
# the core parser accepts them as opaque tables and their owners validate them.
FOREIGN_TABLES = ("aws", "deploy", "api")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_COLOUR = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")

CONFIG_FILENAME = "imgproc.toml"

# How a source's name becomes its outputs' names (core/naming.py): "stem" drops the
# source's extension (cat.jpg -> cat-thumb.jpg), "extension" keeps it (cat.jpg-thumb.jpg).
NAMINGS = ("stem", "extension")


@dataclass(frozen=True)
class Watermark:
    """A text or image stamped on the rendition after resizing."""

    text: str | None = None
    image: bytes | None = field(default=None, repr=False)
    position: str = "southeast"
    opacity: float = 0.5
    size: float = 0.2  # fraction of the rendition's width
    margin: int = 16  # pixels from the edge
    color: str = "#ffffff"


@dataclass(frozen=True)
class Rendition:
    """How to make one output image. ``name`` + ``format`` identify it."""

    name: str
    format: str = "jpeg"
    width: int | None = None
    height: int | None = None
    fit: str = "inside"
    gravity: str = "center"
    enlarge: bool = False
    quality: int = DEFAULT_QUALITY["jpeg"]
    strip: bool = True
    keep_icc: bool = True
    background: str = "#ffffff"
    grayscale: bool = False
    blur: float = 0.0
    sharpen: float = 0.0
    watermark: Watermark | None = None
    max_bytes: int | None = None
    min_quality: int = 30
    progressive: bool = False
    optimize: bool = False
    lossless: bool = False
    animated: bool = False

    @property
    def ext(self) -> str:
        return EXTENSIONS[self.format]

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def animates(self) -> bool:
        """True when this rendition keeps every frame of an animated source."""
        return self.animated and self.format in ANIMATED_FORMATS

    @property
    def label(self) -> str:
        """Unique within a preset selection: ``web.webp``."""
        return f"{self.name}.{self.ext}"

    def recipe_hash(self) -> str:
        """A short, stable hash of everything that changes this rendition's bytes."""
        return recipe_hash((self,))


@dataclass(frozen=True)
class Preset:
    name: str
    renditions: tuple[Rendition, ...]
    description: str = ""


@dataclass(frozen=True)
class Limits:
    """Checked before any heavy work; each breach raises a named error."""

    max_source_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 100_000_000
    max_output_dimension: int = 8192
    max_frames: int = 100
    # The decoded working set one source may need (core.memory); with the
    # interpreter and Pillow a process then stays under 900 MiB, inside a
    # 1024 MB Lambda. The handler lowers it to fit a smaller function.
    max_memory_mb: int = 768
    # Progressive JPEGs have ~10 scans; each extra one is another pass over
    # every block, so thousands of repeated scans decode for minutes.
    max_scans: int = 100
    # Wall time one image may take (`imgproc process` kills and replaces its
    # worker; the handler also stops before the function's deadline).
    max_seconds: int = 60
    input_formats: tuple[str, ...] = INPUT_FORMATS

    def check_source_size(self, size: int, name: str) -> None:
        """Refuse an oversized source; callers that know the size (a stat, HeadObject) check before reading."""
        if size > self.max_source_bytes:
            raise SourceTooLarge(f"{name}: {size:,} bytes exceeds the {self.max_source_bytes:,}-byte limit")


@dataclass(frozen=True)
class Config:
    presets: Mapping[str, Preset]
    limits: Limits
    source: str  # where it came from, for error messages
    extra: Mapping[str, Any] = field(default_factory=dict)  # FOREIGN_TABLES, unvalidated
    naming: str = "stem"  # [output] naming, one of NAMINGS

    def select(self, names: list[str] | tuple[str, ...] | None = None) -> tuple[Rendition, ...]:
        """The renditions of the named presets (all presets when ``names`` is empty).

        Raises UnknownPreset for a name the config lacks and ConfigError when two
        selected renditions would write the same output (same name and format).
        """
        names = list(names or self.presets)
        missing = [n for n in names if n not in self.presets]
        if missing:
            known = ", ".join(sorted(self.presets)) or "none"
            raise UnknownPreset(f"unknown preset {missing[0]!r} (known: {known}) in {self.source}")
        chosen: dict[str, Rendition] = {}
        for name in dict.fromkeys(names):
            for r in self.presets[name].renditions:
                if r.label in chosen and chosen[r.label] != r:
                    raise ConfigError(
                        f"rendition {r.label!r} is defined differently by two selected presets in {self.source}"
                    )
                chosen[r.label] = r
        return tuple(chosen.values())


# --- the settings table: every rendition key, its type and its range ----------------

_RANGES: dict[str, tuple[float, float]] = {
    "width": (1, 65535), "height": (1, 65535), "quality": (1, 100), "min_quality": (1, 100),
    "blur": (0, 100), "sharpen": (0, 10), "max_bytes": (100, 1 << 31),
}
_CHOICES: dict[str, tuple[str, ...]] = {"fit": FITS, "gravity": GRAVITIES}
_BOOLS = ("enlarge", "strip", "keep_icc", "grayscale", "progressive", "optimize", "lossless", "animated")
_WATERMARK_KEYS = {f.name for f in fields(Watermark)}
_LIMIT_RANGES: dict[str, tuple[int, int]] = {
    "max_source_bytes": (1, 5 << 30), "max_pixels": (1, 1 << 31),
    "max_output_dimension": (1, 16383), "max_frames": (1, 10000), "max_memory_mb": (16, 1 << 20),
    "max_scans": (1, 100_000), "max_seconds": (1, 86_400),
}


class _Where:
    """Builds error messages that name the key and the file."""

    def __init__(self, source: str):
        self.source = source

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{key}: {problem} in {self.source}")


@overload
def _number(where: _Where, key: str, value: Any, lo: float, hi: float, kind: type[int] = int) -> int: ...
@overload
def _number(where: _Where, key: str, value: Any, lo: float, hi: float, kind: type[float]) -> float: ...
def _number(where: _Where, key: str, value: Any, lo: float, hi: float, kind: type[float] = int) -> float:
    """``value`` as ``kind`` (int, or float for fractions) when it is one and in ``lo..hi``; else a ConfigError."""
    ok_types = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_types):
        raise where.error(key, f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not lo <= value <= hi:
        raise where.error(key, f"{value} is out of range {lo:g}..{hi:g}")
    return kind(value)


def _check_keys(where: _Where, prefix: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    for key in table:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise where.error(f"{prefix}{key}", f"unknown key{hint}")


def _parse_formats(where: _Where, key: str, value: Any) -> list[str]:
    formats = [value] if isinstance(value, str) else value
    if not isinstance(formats, list) or not formats:
        raise where.error(key, "expected a format name or a list of them")
    for fmt in formats:
        if fmt not in OUTPUT_FORMATS:
            raise where.error(key, f"unknown format {fmt!r} (choose from {', '.join(OUTPUT_FORMATS)})")
    return list(dict.fromkeys(formats))


def _parse_quality(where: _Where, key: str, value: Any, formats: list[str]) -> dict[str, int]:
    """``quality = 80`` applies to every format; ``quality = {jpeg = 82, webp = 78}`` per format."""
    if isinstance(value, Mapping):
        _check_keys(where, f"{key}.", value, set(OUTPUT_FORMATS))
        per = {f: _number(where, f"{key}.{f}", q, 1, 100) for f, q in value.items()}
        return {f: per.get(f, DEFAULT_QUALITY[f]) for f in formats}
    q = _number(where, key, value, 1, 100)
    return dict.fromkeys(formats, q)


def _parse_watermark(where: _Where, key: str, table: Any, base_dir: Path | None) -> Watermark:
    if not isinstance(table, Mapping):
        raise where.error(key, "expected a table")
    _check_keys(where, f"{key}.", table, _WATERMARK_KEYS)
    values = dict(table)
    if "image" in values:
        path = Path(values["image"])
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        try:
            values["image"] = path.read_bytes()
        except OSError as exc:
            raise where.error(f"{key}.image", f"cannot read {path} ({exc.strerror})") from None
    if not values.get("text") and not values.get("image"):
        raise where.error(key, "needs `text` or `image`")
    if values.get("position", "southeast") not in GRAVITIES:
        raise where.error(f"{key}.position", f"choose from {', '.join(GRAVITIES)}")
    values["opacity"] = _number(where, f"{key}.opacity", values.get("opacity", 0.5), 0, 1, float)
    values["size"] = _number(where, f"{key}.size", values.get("size", 0.2), 0.01, 1, float)
    values["margin"] = _number(where, f"{key}.margin", values.get("margin", 16), 0, 10000)
    if not _COLOUR.match(str(values.get("color", "#ffffff"))):
        raise where.error(f"{key}.color", "expected #rrggbb or #rrggbbaa")
    return Watermark(**values)


def _parse_rendition(
    where: _Where, key: str, table: Any, limits: Limits, base_dir: Path | None
) -> list[Rendition]:
    """One ``[[presets.X.renditions]]`` entry; a list of formats expands to one rendition each."""
    if not isinstance(table, Mapping):
        raise where.error(key, "expected a table")
    allowed = {f.name for f in fields(Rendition)}
    _check_keys(where, f"{key}.", table, allowed)
    values = dict(table)
    name = values.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise where.error(f"{key}.name", "required: lowercase letters, digits, '-' or '_'")
    formats = _parse_formats(where, f"{key}.format", values.pop("format", "jpeg"))
    raw_quality = values.pop("quality", None)
    if raw_quality is None:
        qualities = {f: DEFAULT_QUALITY[f] for f in formats}
    else:
        qualities = _parse_quality(where, f"{key}.quality", raw_quality, formats)
    for opt, (lo, hi) in _RANGES.items():
        if opt in values:
            kind = float if opt in ("blur", "sharpen") else int
            values[opt] = _number(where, f"{key}.{opt}", values[opt], lo, hi, kind)
    for opt, choices in _CHOICES.items():
        if opt in values and values[opt] not in choices:
            raise where.error(f"{key}.{opt}", f"{values[opt]!r} is not one of {', '.join(choices)}")
    for opt in _BOOLS:
        if opt in values and not isinstance(values[opt], bool):
            raise where.error(f"{key}.{opt}", "expected true or false")
    if "background" in values and not _COLOUR.match(str(values["background"])):
        raise where.error(f"{key}.background", "expected #rrggbb or #rrggbbaa")
    for dim in ("width", "height"):
        if values.get(dim) and values[dim] > limits.max_output_dimension:
            raise where.error(
                f"{key}.{dim}", f"{values[dim]} exceeds limits.max_output_dimension ({limits.max_output_dimension})"
            )
    if values.get("fit") in ("cover", "fill", "contain") and not (values.get("width") and values.get("height")):
        raise where.error(f"{key}.fit", f"fit = {values['fit']!r} needs both width and height")
    if "watermark" in values:
        values["watermark"] = _parse_watermark(where, f"{key}.watermark", values["watermark"], base_dir)
    return [Rendition(format=fmt, quality=qualities[fmt], **values) for fmt in formats]


def _parse_limits(where: _Where, table: Any) -> Limits:
    if not isinstance(table, Mapping):
        raise where.error("limits", "expected a table")
    allowed = {f.name for f in fields(Limits)}
    _check_keys(where, "limits.", table, allowed)
    values: dict[str, Any] = {}
    for key, (lo, hi) in _LIMIT_RANGES.items():
        if key in table:
            values[key] = _number(where, f"limits.{key}", table[key], lo, hi)
    if "input_formats" in table:
        formats = table["input_formats"]
        if not isinstance(formats, list) or not formats:
            raise where.error("limits.input_formats", "expected a non-empty list")
        for fmt in formats:
            if fmt not in INPUT_FORMATS:
                raise where.error("limits.input_formats", f"unknown format {fmt!r} (known: {', '.join(INPUT_FORMATS)})")
        values["input_formats"] = tuple(formats)
    return Limits(**values)


def _parse_output(where: _Where, table: Any) -> str:
    """``[output] naming = "stem" | "extension"``: the same names for `process`, the handler and the API."""
    if not isinstance(table, Mapping):
        raise where.error("output", "expected a table")
    _check_keys(where, "output.", table, {"naming"})
    naming = table.get("naming", "stem")
    if naming not in NAMINGS:
        raise where.error("output.naming", f"{naming!r} is not one of {', '.join(NAMINGS)}")
    return str(naming)


def _parse_presets(where: _Where, table: Any, limits: Limits, base_dir: Path | None) -> dict[str, Preset]:
    if not isinstance(table, Mapping) or not table:
        raise where.error("presets", "expected at least one [presets.NAME] table")
    presets: dict[str, Preset] = {}
    for name, body in table.items():
        key = f"presets.{name}"
        if not _NAME.match(name):
            raise where.error(key, "preset names use lowercase letters, digits, '-' or '_'")
        if not isinstance(body, Mapping):
            raise where.error(key, "expected a table")
        _check_keys(where, f"{key}.", body, {"description", "renditions"})
        entries = body.get("renditions")
        if not isinstance(entries, list) or not entries:
            raise where.error(f"{key}.renditions", "expected at least one [[renditions]] entry")
        renditions: list[Rendition] = []
        for i, entry in enumerate(entries):
            renditions += _parse_rendition(where, f"{key}.renditions[{i}]", entry, limits, base_dir)
        labels = [r.label for r in renditions]
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dupes:
            raise where.error(f"{key}.renditions", f"rendition {dupes[0]!r} is defined twice")
        presets[name] = Preset(name, tuple(renditions), str(body.get("description", "")))
    return presets


def parse_config(data: Mapping[str, Any], source: str, base_dir: Path | None = None) -> Config:
    """Validate a decoded TOML document into a Config.

    ``source`` names the file in every error. Without a ``[presets]`` table the
    built-in presets are used (a file may hold only limits or deploy settings).
    """
    where = _Where(source)
    _check_keys(where, "", data, {"presets", "limits", "output", *FOREIGN_TABLES})
    limits = _parse_limits(where, data.get("limits", {}))
    naming = _parse_output(where, data.get("output", {}))
    if "presets" in data:
        presets = _parse_presets(where, data["presets"], limits, base_dir)
    else:
        presets = dict(builtin_config().presets)
    extra = {k: data[k] for k in FOREIGN_TABLES if k in data}
    for k, v in extra.items():
        if not isinstance(v, Mapping):
            raise where.error(k, "expected a table")
    return Config(presets=presets, limits=limits, source=source, extra=extra, naming=naming)


def parse_toml(text: str, source: str, base_dir: Path | None = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {source}: {exc}") from None
    return parse_config(data, source, base_dir)


def load_config(path: Path) -> Config:
    """Read and validate one imgproc.toml; the file's folder anchors relative paths."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    return parse_toml(text, str(path), path.parent)


def find_config(explicit: Path | None, cwd: Path) -> Config:
    """``--config FILE`` if given, else ``./imgproc.toml`` if present, else the built-ins."""
    if explicit is not None:
        return load_config(explicit)
    candidate = cwd / CONFIG_FILENAME
    if candidate.is_file():
        return load_config(candidate)
    return builtin_config()


_BUILTIN: Config | None = None


def builtin_config() -> Config:
    """The presets shipped inside the package (core/default_presets.toml)."""
    global _BUILTIN
    if _BUILTIN is None:
        text = resources.files("core").joinpath("default_presets.toml").read_text(encoding="utf-8")
        _BUILTIN = parse_toml(text, "built-in presets")
    return _BUILTIN


ENGINE_VERSION = "4"  # bump when the same recipe starts producing different bytes


def recipe_hash(renditions: tuple[Rendition, ...]) -> str:
    """Hash of the renditions rendered together, the engine and Pillow versions.

    Renditions decoded together share one decode and a resize cascade, so the
    set (not only each member) decides the exact bytes.
    """
    import PIL

    def encode(obj: Any) -> Any:
        if isinstance(obj, bytes):
            return hashlib.sha256(obj).hexdigest()
        return repr(obj)

    doc = {
        "engine": ENGINE_VERSION,
        "pillow": PIL.__version__,
        "renditions": [asdict(r) for r in renditions],
    }
    blob = json.dumps(doc, sort_keys=True, default=encode).encode()
    return hashlib.sha256(blob).hexdigest()[:16]

"""The Lambda deployment package: a reproducible zip built from code, never from the venv.

Zip root: lambda_entry.py, lambda_api.py (when present), core/, imgproc.toml
(the presets, normalised) and Pillow from the manylinux wheel for python3.12
and the function's architecture, of exactly the local Pillow version so the
function writes the same bytes as `imgproc process`. boto3 is not bundled.

Entries are sorted and carry fixed timestamps and permissions: the same
sources give the same SHA-256, so an unchanged deploy uploads nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.errors import PackageError
from core.errors import ConfigError
from core.recipe import FOREIGN_TABLES, parse_toml

RUNTIME = "python3.12"
PY_VERSION = "3.12"
CP_TAG = "cp312"
# Lambda architecture -> (wheel platform tags, ELF e_machine, machine name in extension suffixes)
ARCH = {
    "x86_64": (("manylinux2014_x86_64", "manylinux_2_28_x86_64"), 62, "x86_64"),
    "arm64": (("manylinux2014_aarch64", "manylinux_2_28_aarch64"), 183, "aarch64"),
}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
PRESETS_NAME = "imgproc.toml"
ASSETS_DIR = "imgproc-assets"
_SO = re.compile(r"\.so(\.[0-9.]+)?$")
_EXT_TAG = re.compile(r"\.cpython-(\d+)-([a-z0-9_]+)-linux-gnu\.so$")


@dataclass(frozen=True)
class Package:
    """A built package: where it is and what it holds."""

    path: Path
    sha256: str
    size: int
    files: int
    arch: str
    pillow: str

    @property
    def key(self) -> str:
        """Content-addressed artifact key: the same bytes, the same key."""
        return f"imgproc/lambda-{self.sha256[:32]}.zip"


def cache_dir() -> Path:
    """Where downloaded wheels are kept (IMGPROC_CACHE_DIR, else ~/.cache/imgproc)."""
    env = os.environ.get("IMGPROC_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imgproc"


def pillow_version() -> str:
    import PIL

    return PIL.__version__


def pillow_wheel(arch: str, version: str | None = None, cache: Path | None = None) -> Path:
    """The manylinux Pillow wheel for python3.12/arch, downloaded once into the cache."""
    if arch not in ARCH:
        raise PackageError(f"unknown architecture {arch!r} (choose x86_64 or arm64)")
    version = version or pillow_version()
    platforms, _, machine = ARCH[arch]
    folder = (cache or cache_dir()) / "wheels"
    found = _find_wheel(folder, version, machine)
    if found:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", PY_VERSION, "--implementation", "cp",
           "--dest", str(folder)]
    for p in platforms:
        cmd += ["--platform", p]
    cmd.append(f"pillow=={version}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = _find_wheel(folder, version, machine)
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
        raise PackageError(f"cannot download Pillow {version} for {RUNTIME}/{arch}: {last}")
    return found


def _find_wheel(folder: Path, version: str, machine: str) -> Path | None:
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(f"pillow-{version}-{CP_TAG}-{CP_TAG}-*.whl")):
        tags = path.name[:-4].split("-")[-1].split(".")
        if all(t.startswith("manylinux") and t.endswith(machine) for t in tags):
            return path
    return None


# --- the presets file ------------------------------------------------------------


def presets_file(config_path: Path | None) -> tuple[bytes, dict[str, bytes]] | None:
    """The presets file to bundle, normalised, plus the watermark images it names.

    Only `[presets]` and `[limits]` are kept (deploy/aws/api settings change
    nothing inside the function, so changing them must not change the code).
    None when there is no file: the function then uses the built-in presets.
    """
    if config_path is None:
        return None
    try:
        doc = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {config_path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {config_path}: {exc}") from None
    original = parse_toml(config_path.read_text(encoding="utf-8"), str(config_path), config_path.parent)
    doc = {k: v for k, v in doc.items() if k not in FOREIGN_TABLES}
    if not doc:  # only deploy/aws/api settings: the function uses the built-in presets
        return None
    assets: dict[str, bytes] = {}
    for preset in doc.get("presets", {}).values():
        for rendition in preset.get("renditions", []):
            mark = rendition.get("watermark")
            if isinstance(mark, dict) and isinstance(mark.get("image"), str):
                src = Path(mark["image"])
                src = src if src.is_absolute() else config_path.parent / src
                data = src.read_bytes()
                name = f"{ASSETS_DIR}/{hashlib.sha256(data).hexdigest()[:12]}-{src.name}"
                assets[name] = data
                mark["image"] = name
    text = "".join(f"{key} = {_toml_value(value)}\n" for key, value in doc.items())
    # The bundled file must describe exactly the same renditions as the original.
    with tempfile.TemporaryDirectory(prefix="imgproc-assets-") as tmp:
        for name, data in assets.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(data)
        bundled = parse_toml(text, "bundled presets", Path(tmp))
    if bundled.presets != original.presets or bundled.limits != original.limits:
        raise PackageError(f"cannot bundle {config_path}: its normalised copy differs")
    header = f"# Generated by `imgproc package` from {config_path.name}; [deploy]/[aws]/[api] removed.\n"
    return (header + text).encode(), assets


def _toml_value(value: Any) -> str:
    """One TOML value on one line (inline tables/arrays), deterministic."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise PackageError(f"cannot bundle a {type(value).__name__} value from the presets file")


# --- the zip -----------------------------------------------------------------------


def source_files() -> dict[str, bytes]:
    """lambda_entry.py, lambda_api.py (when present) and core/ from the installed code."""
    files: dict[str, bytes] = {}
    for module in ("lambda_entry", "lambda_api"):
        spec = importlib.util.find_spec(module)
        if spec and spec.origin and spec.origin.endswith(".py"):
            files[f"{module}.py"] = Path(spec.origin).read_bytes()
    if "lambda_entry.py" not in files:
        raise PackageError("lambda_entry.py not found next to the installed imgproc code")
    spec = importlib.util.find_spec("core")
    if spec is None or not spec.submodule_search_locations:
        raise PackageError("the core package is not importable")
    root = Path(next(iter(spec.submodule_search_locations)))
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix in (".py", ".toml", ".typed"):
            files[f"core/{rel.as_posix()}"] = path.read_bytes()
    return files


def wheel_files(wheel: Path) -> dict[str, bytes]:
    """Everything in the wheel except its RECORD (which lists hashes of a pip install)."""
    with zipfile.ZipFile(wheel) as zf:
        return {
            info.filename: zf.read(info)
            for info in zf.infolist()
            if not info.is_dir() and not info.filename.endswith(".dist-info/RECORD")
        }


def check_platform(files: dict[str, bytes], arch: str) -> int:
    """Every shared object is a 64-bit little-endian ELF for ``arch``; extension modules for cp312.

    Returns the number of shared objects checked.
    """
    _, machine_id, machine = ARCH[arch]
    count = 0
    for name, data in files.items():
        if not _SO.search(name):
            continue
        count += 1
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise PackageError(f"{name}: not a 64-bit little-endian ELF shared object")
        e_machine = int.from_bytes(data[18:20], "little")
        if e_machine != machine_id:
            raise PackageError(f"{name}: built for ELF machine {e_machine}, not {arch} ({machine_id})")
        tag = _EXT_TAG.search(name)
        if tag and (tag.group(1) != CP_TAG[2:] or tag.group(2) != machine):
            raise PackageError(f"{name}: extension tag cpython-{tag.group(1)}-{tag.group(2)}, "
                               f"expected cpython-{CP_TAG[2:]}-{machine}")
    if count == 0:
        raise PackageError("no shared objects found: Pillow's wheel is missing from the package")
    return count


def write_zip(files: dict[str, bytes], out: Path) -> str:
    """Write a reproducible zip (sorted, fixed time and mode); returns its SHA-256."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (0o100000 | FILE_MODE) << 16
            zf.writestr(info, files[name], compresslevel=6)
    data = buf.getvalue()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return hashlib.sha256(data).hexdigest()


def build(out: Path, arch: str = "x86_64", config_path: Path | None = None, cache: Path | None = None) -> Package:
    """Build, check and write the package; see the module docstring."""
    version = pillow_version()
    files = source_files()
    bundled = presets_file(config_path)
    if bundled is not None:
        text, assets = bundled
        files[PRESETS_NAME] = text
        files.update(assets)
    pillow = wheel_files(pillow_wheel(arch, version, cache))
    clash = sorted(set(pillow) & set(files))
    if clash:
        raise PackageError(f"{clash[0]} is both in the sources and in Pillow's wheel")
    files.update(pillow)
    check_platform(files, arch)
    sha = _cached_zip(files, out, cache)
    return Package(out, sha, out.stat().st_size, len(files), arch, version)


ZIP_FORMAT = "1"  # bump when write_zip changes its output for the same files


def _cached_zip(files: dict[str, bytes], out: Path, cache: Path | None) -> str:
    """write_zip, but reuse the zip already built from exactly these files (compressing is the slow part)."""
    digest = hashlib.sha256(ZIP_FORMAT.encode())
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    cached = (cache or cache_dir()) / "packages" / f"{digest.hexdigest()[:40]}.zip"
    if cached.is_file():
        data = cached.read_bytes()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + f".{os.getpid()}.part")
        tmp.write_bytes(data)
        os.replace(tmp, out)
        return hashlib.sha256(data).hexdigest()
    sha = write_zip(files, out)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in sorted(cached.parent.glob("*.zip"), key=lambda p: p.stat().st_mtime)[:-8]:
            old.unlink(missing_ok=True)  # keep the 8 newest
        tmp = cached.with_name(cached.name + f".{os.getpid()}.part")
        tmp.write_bytes(out.read_bytes())
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only cache only costs speed
    return sha


def default_config_path(explicit: Path | None, cwd: Path) -> Path | None:
    """`--config FILE`, else ./imgproc.toml when present, else None (built-in presets)."""
    if explicit is not None:
        return explicit
    candidate = cwd / PRESETS_NAME
    return candidate if candidate.is_file() else None

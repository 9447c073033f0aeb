"""The Lambda package: manylinux Pillow of the local version, platform tags, reproducible bytes."""

from __future__ import annotations

import hashlib
import importlib.util
import tomllib
import zipfile
from pathlib import Path

import PIL
import pytest

from cli.deploy import package as pkg
from core.recipe import parse_toml

from helpers_deploy import imgproc, ok

PRESETS = """
[presets.small]
description = "Small"
[[presets.small.renditions]]
name = "small"
width = 120
format = ["jpeg", "webp"]
quality = { jpeg = 70, webp = 65 }
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> pkg.Package:
    return pkg.build(tmp_path_factory.mktemp("pkg") / "lambda.zip", "x86_64")


def names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def test_layout_has_the_handler_core_and_pillow_but_no_boto3(built):
    entries = names(built.path)
    assert "lambda_entry.py" in entries and "core/__init__.py" in entries and "core/default_presets.toml" in entries
    assert any(n.startswith("PIL/_imaging.cpython-312-x86_64-linux-gnu") for n in entries)
    assert any(n.startswith("pillow.libs/libjpeg") for n in entries)
    assert not any(n.startswith(("boto3/", "botocore/")) or "__pycache__" in n for n in entries)
    assert "imgproc.toml" not in entries  # no presets file given: the function uses the built-ins
    if importlib.util.find_spec("lambda_api"):
        assert "lambda_api.py" in entries  # the API handler travels in the same package
    with zipfile.ZipFile(built.path) as zf:
        meta = zf.read(f"pillow-{PIL.__version__}.dist-info/METADATA").decode()
    assert f"Version: {PIL.__version__}" in meta  # exactly the local Pillow
    assert built.pillow == PIL.__version__ and built.size == built.path.stat().st_size


def test_every_shared_object_is_x86_64_elf_for_cp312(built):
    with zipfile.ZipFile(built.path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    assert pkg.check_platform(files, "x86_64") > 5
    with pytest.raises(pkg.PackageError, match="not arm64"):
        pkg.check_platform(files, "arm64")


def test_check_platform_rejects_a_wrong_python_tag_and_non_elf():
    elf = b"\x7fELF\x02\x01" + b"\0" * 12 + (62).to_bytes(2, "little")
    with pytest.raises(pkg.PackageError, match="cpython-311-x86_64"):
        pkg.check_platform({"PIL/_imaging.cpython-311-x86_64-linux-gnu.so": elf}, "x86_64")
    with pytest.raises(pkg.PackageError, match="not a 64-bit"):
        pkg.check_platform({"x/lib.so.1": b"MZ" + b"\0" * 30}, "x86_64")
    with pytest.raises(pkg.PackageError, match="no shared objects"):
        pkg.check_platform({"lambda_entry.py": b""}, "x86_64")


def test_arm64_package_carries_aarch64_objects(tmp_path):
    arm = pkg.build(tmp_path / "arm.zip", "arm64")
    entries = names(arm.path)
    assert any(n.startswith("PIL/_imaging.cpython-312-aarch64-linux-gnu") for n in entries)
    with zipfile.ZipFile(arm.path) as zf:
        assert pkg.check_platform({n: zf.read(n) for n in zf.namelist()}, "arm64") > 5


def test_the_same_sources_give_the_same_bytes(built, tmp_path):
    again = pkg.build(tmp_path / "again.zip", "x86_64")
    assert again.sha256 == built.sha256 == hashlib.sha256(again.path.read_bytes()).hexdigest()
    assert again.key == built.key and built.sha256[:32] in built.key
    # Writing (not the build cache) is what is reproducible: two fresh writes, one digest.
    with zipfile.ZipFile(built.path) as zf:
        files = {n: zf.read(n) for n in reversed(zf.namelist())}
    assert pkg.write_zip(files, tmp_path / "w1.zip") == pkg.write_zip(dict(sorted(files.items())),
                                                                       tmp_path / "w2.zip") == built.sha256
    with zipfile.ZipFile(again.path) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_presets_are_bundled_without_deploy_settings(tmp_path):
    config = tmp_path / "imgproc.toml"
    config.write_text(PRESETS + '\n[deploy]\nmemory = 2048\n[aws]\nregion = "eu-west-1"\n', encoding="utf-8")
    first = pkg.build(tmp_path / "a.zip", "x86_64", config)
    with zipfile.ZipFile(first.path) as zf:
        bundled = zf.read("imgproc.toml").decode()
    assert "deploy" not in tomllib.loads(bundled) and "aws" not in tomllib.loads(bundled)
    assert parse_toml(bundled, "bundled").presets == parse_toml(PRESETS, "original").presets
    # A deploy-only change leaves the code unchanged; a preset change does not.
    config.write_text(PRESETS + "\n[deploy]\nmemory = 512\n", encoding="utf-8")
    assert pkg.build(tmp_path / "b.zip", "x86_64", config).sha256 == first.sha256
    config.write_text(PRESETS.replace("width = 120", "width = 121"), encoding="utf-8")
    assert pkg.build(tmp_path / "c.zip", "x86_64", config).sha256 != first.sha256


def test_watermark_images_travel_with_the_presets(tmp_path):
    (tmp_path / "logo.png").write_bytes(b"\x89PNG fake but only bytes matter here")
    config = tmp_path / "imgproc.toml"
    config.write_text(PRESETS.replace('quality = { jpeg = 70, webp = 65 }',
                                      'quality = { jpeg = 70, webp = 65 }\nwatermark = { image = "logo.png" }'),
                      encoding="utf-8")
    built = pkg.build(tmp_path / "w.zip", "x86_64", config)
    with zipfile.ZipFile(built.path) as zf:
        assets = [n for n in zf.namelist() if n.startswith("imgproc-assets/")]
        assert len(assets) == 1 and zf.read(assets[0]) == (tmp_path / "logo.png").read_bytes()
        assert assets[0] in zf.read("imgproc.toml").decode()


def test_package_command_reports_size_and_sha(tmp_path):
    proc = ok(imgproc("package", "-o", "out/lambda.zip", cwd=tmp_path))
    zip_path = tmp_path / "out" / "lambda.zip"
    assert hashlib.sha256(zip_path.read_bytes()).hexdigest() in proc.stdout
    assert "MiB" in proc.stdout and "python3.12/x86_64" in proc.stdout
    assert "Pillow " in proc.stdout and " + pillow-heif " in proc.stdout

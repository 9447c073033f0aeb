"""The Lambda package carries pillow-heif (HEIC input) like Pillow: local version, right platform.

The last test unpacks the x86_64 package and renders a HEIC photo with
python3.12 from nothing but the package, as the function would.
"""

from __future__ import annotations

import glob
import importlib.metadata
import io
import os
import subprocess
import zipfile

import pytest
from PIL import Image

from cli.deploy import package as pkg

pillow_heif = pytest.importorskip("pillow_heif")
HEIF_VERSION = importlib.metadata.version("pillow-heif")
MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}


@pytest.fixture(scope="module", params=["x86_64", "arm64"])
def built(request, tmp_path_factory) -> pkg.Package:
    return pkg.build(tmp_path_factory.mktemp("pkg") / f"{request.param}.zip", request.param)


def test_the_heif_plugin_of_the_local_version_is_bundled_for_the_architecture(built):
    machine = MACHINE[built.arch]
    with zipfile.ZipFile(built.path) as zf:
        entries = zf.namelist()
        meta = zf.read(f"pillow_heif-{HEIF_VERSION}.dist-info/METADATA").decode()
        files = {n: zf.read(n) for n in entries}
    assert f"Version: {HEIF_VERSION}" in meta
    assert built.plugins == (f"pillow-heif {HEIF_VERSION}",)
    assert any(n.startswith(f"_pillow_heif.cpython-312-{machine}-linux-gnu") for n in entries)
    assert any(n.startswith("pillow_heif.libs/libheif") for n in entries)
    assert pkg.check_platform(files, built.arch) > 5  # every .so, Pillow's and the plugin's


def test_a_plugin_object_for_the_other_architecture_is_refused(built):
    with zipfile.ZipFile(built.path) as zf:
        plugin_so = next(n for n in zf.namelist() if n.startswith("_pillow_heif."))
        files = {plugin_so: zf.read(plugin_so)}
    other = "arm64" if built.arch == "x86_64" else "x86_64"
    with pytest.raises(pkg.PackageError, match=f"not {other}"):
        pkg.check_platform(files, other)


def test_a_missing_plugin_is_a_clear_package_error(monkeypatch):
    real = importlib.metadata.version

    def version(dist):
        if dist == "pillow-heif":
            raise importlib.metadata.PackageNotFoundError(dist)
        return real(dist)

    monkeypatch.setattr(importlib.metadata, "version", version)
    with pytest.raises(pkg.PackageError, match=r"pillow-heif is not installed here; install it"):
        pkg.installed_version("pillow-heif")


def _python312() -> str:
    for candidate in [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))), "python3.12"]:
        try:
            subprocess.run([candidate, "-c", "pass"], check=True, capture_output=True)
            return candidate
        except (OSError, subprocess.CalledProcessError):
            continue
    pytest.skip("python3.12 is not installed")


def test_the_packaged_function_decodes_heic_with_python312(tmp_path):
    if os.uname().machine != "x86_64":
        pytest.skip("runs the x86_64 package")
    built = pkg.build(tmp_path / "lambda.zip", "x86_64")
    root = tmp_path / "unzipped"
    with zipfile.ZipFile(built.path) as zf:
        zf.extractall(root)
    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (64, 48), (200, 30, 30))).save(buf, quality=90)
    (tmp_path / "a.heic").write_bytes(buf.getvalue())
    code = (
        "from core.pipeline import render\n"
        "from core.recipe import Limits, Rendition\n"
        f"out = render(open({str(tmp_path / 'a.heic')!r}, 'rb').read(), (Rendition(name='t', width=32),), Limits(), 'a.heic')\n"
        "print(out.source.format, out.outputs[0].width, out.outputs[0].height)\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run([_python312(), "-S", "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["heif", "32", "24"]

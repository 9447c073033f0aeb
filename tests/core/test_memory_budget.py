"""Memory bombs (issue 13 item 5): refused from the header when over the budget, fewer copies when accepted."""

from __future__ import annotations

import io
import json
import random
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from core import lowmem
from core.errors import MemoryBudgetExceeded
from core.pipeline import render
from core.recipe import Limits, Rendition, builtin_config, parse_toml
from core.settings import parse_settings

ROOT = Path(__file__).resolve().parents[2]
WEB = (Rendition("web", "webp", width=1600, height=1600, animated=True),
       Rendition("thumb", "webp", width=200, height=200, animated=True))


def gif_bomb(side: int, frames: int = 40) -> bytes:
    """A few KB of GIF whose logical screen says ``side`` x ``side``: every frame decodes at that size."""
    small = []
    for i in range(frames):
        frame = Image.new("P", (32, 32), i % 2)
        frame.putpalette([0, 0, 0, 255, 255, 255])
        frame.paste(1 - i % 2, (i % 32, 0, i % 32 + 1, 1))
        small.append(frame)
    buf = io.BytesIO()
    small[0].save(buf, format="GIF", save_all=True, append_images=small[1:], duration=80)
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", side, side)
    return bytes(data)


def test_an_animated_gif_bomb_is_refused_from_its_header_naming_the_file():
    data = gif_bomb(10_000)  # 40 frames of 100 MP: 1.8 GB to decode, before the fix 2.4 GB peak
    assert len(data) < 10_000

    with pytest.raises(MemoryBudgetExceeded) as caught:
        render(data, WEB, Limits(), name="uploads/party.gif")

    message = str(caught.value)
    assert message.startswith("uploads/party.gif: ")
    assert "768 MiB memory budget" in message and "40 frames" in message
    assert "\n" not in message


def test_the_same_animation_renders_when_its_frames_fit():
    result = render(gif_bomb(1000, frames=5), WEB, Limits(), name="small.gif")

    assert [(o.width, o.height) for o in result.outputs] == [(1000, 1000), (200, 200)]
    assert Image.open(io.BytesIO(result.outputs[0].data)).n_frames == 5


def test_the_budget_is_a_limits_value_in_imgproc_toml():
    rgba = Image.new("RGBA", (3000, 3000), (10, 200, 30, 128))  # 36 MB decoded
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    tight = parse_toml("[limits]\nmax_memory_mb = 32\n", "imgproc.toml")

    with pytest.raises(MemoryBudgetExceeded, match=r"^logo\.png: .* over the 32 MiB memory budget"):
        render(buf.getvalue(), builtin_config().select(["web"]), tight.limits, name="logo.png")
    outputs = render(buf.getvalue(), builtin_config().select(["web"]), Limits(), name="logo.png").outputs
    assert [(o.width, o.height) for o in outputs] == [(1600, 1600), (1600, 1600)]


def test_the_handler_budget_follows_the_functions_memory():
    env = {"IMGPROC_OUTPUT_BUCKET": "out-bucket"}
    assert parse_settings(env, ROOT).limits(Limits()).max_memory_mb == 768  # not in Lambda: the file's value
    small = parse_settings({**env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"}, ROOT)
    assert small.limits(Limits()).max_memory_mb == 256
    big = parse_settings({**env, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}, ROOT)
    assert big.limits(replace(Limits(), max_memory_mb=2048)).max_memory_mb == 2048


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_banded_alpha_resize_gives_pillows_bytes(mode, monkeypatch):
    monkeypatch.setattr(lowmem, "BAND_BYTES", 50_000)  # many bands, odd heights
    rng = random.Random(5)
    img = Image.frombytes(mode, (1003, 999), rng.randbytes(1003 * 999 * len(mode)))
    box = (13.5, 20.25, 900.7, 990.1)
    expected = img.resize((100, 97), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    assert lowmem.resize(img, (100, 97), Image.Resampling.LANCZOS, box, 3.0).tobytes() == expected.tobytes()


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_banded_high_bit_depth_conversion_gives_the_same_grey(mode, monkeypatch):
    monkeypatch.setattr(lowmem, "BAND_BYTES", 40_000)
    rng = random.Random(6)
    img = Image.new(mode, (301, 203))
    img.putdata([rng.random() if mode == "F" else rng.randrange(65536) for _ in range(301 * 203)])
    if mode == "F":
        expected = img.point(lambda v: v * 255).convert("L")
    else:
        expected = img.convert("I").point(lambda v: v / 257).convert("L")
    assert lowmem.high_bit_to_l(img).tobytes() == expected.tobytes()


PEAK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from core.pipeline import render
from core.recipe import builtin_config
config = builtin_config()
result = render(Path(sys.argv[2]).read_bytes(), config.select(), config.limits, name="bomb")
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_mib": hwm / 1024, "sizes": [[o.width, o.height] for o in result.outputs]}))
"""


def _int32_tiff(path: Path) -> None:
    grad = Image.linear_gradient("L").resize((10_000, 10_000), Image.Resampling.BILINEAR)
    grad.convert("I").point(lambda v: v * 65793).save(path, format="TIFF", compression="tiff_adobe_deflate")


def _rgba_png(path: Path) -> None:
    grad = Image.linear_gradient("L").resize((10_000, 10_000), Image.Resampling.BILINEAR)
    Image.merge("RGBA", (grad, grad, grad.transpose(Image.Transpose.ROTATE_90), grad)).save(path, format="PNG")


@pytest.mark.parametrize("make", [_int32_tiff, _rgba_png], ids=["int32-tiff", "rgba-png"])
def test_100_megapixel_sources_inside_the_limits_render_under_the_budget(make, tmp_path):
    """Before: the int32 TIFF peaked at 1175 MiB, the RGBA PNG at 926 MiB (issue: 1240 / 993 in Lambda)."""
    path = tmp_path / "bomb"
    make(path)
    assert path.stat().st_size < 1_000_000

    proc = subprocess.run([sys.executable, "-c", PEAK, str(ROOT), str(path)],
                          capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(proc.stdout)

    assert sorted(result["sizes"]) == [[200, 200], [1600, 1600], [1600, 1600]]
    assert result["peak_mib"] < Limits().max_memory_mb  # the interpreter and Pillow included

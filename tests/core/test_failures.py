"""Damaged and awkward sources: the right error, nothing lost, nothing on stderr.

- Whatever a damaged file makes a decoder raise is a CorruptImage naming it.
- A rendition over its max_bytes fails alone: the source's other renditions
  are written (locally and through the handler's unit of work), and the error
  names the source.
- tRNS transparency (8- and 16-bit PNG) survives.
- Pillow's and libtiff's warnings come back with the file's name, once each,
  and never reach stderr.
"""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from PIL import Image

from core import batch, errors
from core.jobs import Job, process_object
from core.pipeline import render
from core.recipe import Limits, Rendition
from core.storage import LocalFolder

from imaging import decode, encode, photo

LIMITS = Limits()
PNG_OUT = (Rendition(name="t", format="png"),)


# --- damaged files are CorruptImage ---------------------------------------------


def _tiff_with_a_page_missing_its_width() -> bytes:
    pages = [Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")]
    data = bytearray(encode(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    first = struct.unpack_from("<I", data, 4)[0]
    count = struct.unpack_from("<H", data, first)[0]
    second = struct.unpack_from("<I", data, first + 2 + 12 * count)[0]
    for i in range(struct.unpack_from("<H", data, second)[0]):
        entry = second + 2 + 12 * i
        if struct.unpack_from("<H", data, entry)[0] == 256:  # ImageWidth -> an unknown tag
            struct.pack_into("<H", data, entry, 60000)
    return bytes(data)


def _lzw_tiff_with_garbage_strips() -> bytes:
    data = bytearray(encode(Image.effect_noise((256, 256), 64).convert("RGB"), "TIFF", compression="tiff_lzw"))
    data[2000:6000] = b"\xff" * 4000
    return bytes(data)


@pytest.mark.parametrize("animated", (False, True))
def test_a_tiff_page_without_dimensions_is_a_corrupt_image(animated):
    r = Rendition(name="t", format="webp", animated=animated)
    with pytest.raises(errors.CorruptImage, match=r"^scan\.tif: cannot read its frames \(Missing dimensions\)"):
        render(_tiff_with_a_page_missing_its_width(), (r,), LIMITS, "scan.tif")


def test_corrupt_tiff_is_reported_by_process_as_corrupt_image(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "scan.tif").write_bytes(_tiff_with_a_page_missing_its_width())
    result = batch.run_job(src, out, batch.Job("scan.tif", ("scan-t.png",)), PNG_OUT, LIMITS)
    assert result.error_type == "CorruptImage"
    assert result.error.startswith("scan.tif: ")


def _mutations(seed: int, data: bytes, count: int):
    """Truncations and byte flips of a valid file, reproducibly."""
    rng = random.Random(seed)
    for _ in range(count):
        cut = bytearray(data[: rng.randrange(8, len(data))])
        for _ in range(rng.randrange(0, 8)):
            cut[rng.randrange(len(cut))] = rng.randrange(256)
        yield bytes(cut)


@pytest.mark.parametrize("fmt, params", [
    ("JPEG", {"quality": 90, "progressive": True}), ("PNG", {}), ("WEBP", {"quality": 80}),
    ("TIFF", {"compression": "tiff_lzw"}), ("TIFF", {}), ("GIF", {}), ("BMP", {}),
])
def test_damaged_files_of_every_format_fail_with_an_imgproc_error(fmt, params):
    valid = encode(photo(96, 64, seed=5), fmt, **params)
    for n, data in enumerate(_mutations(hash(fmt) & 0xFFFF, valid, 40)):
        try:
            render(data, PNG_OUT, LIMITS, f"bad{n}")
        except errors.ImgprocError as exc:
            assert str(exc).startswith(f"bad{n}: ")
        # Anything else (TypeError, KeyError, struct.error...) fails the test.


# --- max_bytes fails one rendition, not the source ---------------------------------

TIGHT = Rendition(name="tiny", format="jpeg", max_bytes=100, min_quality=90)
FINE = Rendition(name="web", format="webp", width=64)


def test_a_rendition_over_max_bytes_keeps_the_others():
    result = render(encode(photo(320, 240), "JPEG"), (TIGHT, FINE), LIMITS, "holiday/cat.jpg")
    assert [o.rendition for o in result.outputs] == [FINE]
    assert decode(result.outputs[0].data).size == (64, 48)
    [failure] = result.failures
    assert failure.rendition == TIGHT
    assert isinstance(failure.error, errors.ByteBudgetExceeded)
    assert str(failure.error).startswith("holiday/cat.jpg: rendition tiny.jpg: even quality 90 is over max_bytes 100")


def test_process_writes_the_other_renditions_and_fails_the_file(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    (src / "cat.jpg").write_bytes(encode(photo(320, 240), "JPEG"))
    job = batch.Job("cat.jpg", ("cat-tiny.jpg", "cat-web.webp"))
    result = batch.run_job(src, out, job, (TIGHT, FINE), LIMITS)
    assert not result.ok and result.error_type == "ByteBudgetExceeded"
    assert result.error.startswith("cat.jpg: rendition tiny.jpg")
    assert [o.path for o in result.outputs] == ["cat-web.webp"]
    assert decode((out / "cat-web.webp").read_bytes()).size == (64, 48)
    assert not (out / "cat-tiny.jpg").exists()


def test_the_handler_writes_the_other_renditions_and_logs_the_failure(tmp_path):
    inbox, outbox = LocalFolder(tmp_path / "in"), LocalFolder(tmp_path / "out")
    inbox.write("uploads/cat.jpg", encode(photo(320, 240), "JPEG"), "image/jpeg")
    record = process_object(inbox, "uploads/cat.jpg", outbox, Job.create((TIGHT, FINE), LIMITS))
    assert record["outcome"] == "failed" and record["level"] == "ERROR"
    assert record["error"]["type"] == "ByteBudgetExceeded"
    assert record["error"]["message"].startswith("uploads/cat.jpg: rendition tiny.jpg")
    outcomes = {r["name"]: r["outcome"] for r in record["renditions"]}
    assert outcomes == {"tiny": "failed", "web": "written"}
    assert list(outbox.keys()) == ["web/uploads/cat.webp"]


# --- tRNS transparency -------------------------------------------------------------


def _png(colour_type: int, bit_depth: int, row: bytes, trns: bytes, height: int = 2) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    width = len(row) * 8 // bit_depth // (3 if colour_type == 2 else 1)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\x00" + row for _ in range(height)))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tRNS", trns)
            + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


# Each source: the two left pixels are the transparent key, the two right ones are opaque.
TRNS_SOURCES = {
    "grey16": _png(0, 16, struct.pack(">4H", 0x1234, 0x1234, 0x1235, 0xFFFF), struct.pack(">H", 0x1234)),
    "rgb16": _png(2, 16, struct.pack(">12H", *(0x1010, 0x2020, 0x3030) * 2, *(0xFFFF, 0, 0) * 2),
                  struct.pack(">3H", 0x1010, 0x2020, 0x3030)),
    "grey8": _png(0, 8, bytes((7, 7, 8, 200)), struct.pack(">H", 7)),
    "rgb8": _png(2, 8, bytes((16, 32, 48) * 2 + (255, 0, 0) * 2), struct.pack(">3H", 16, 32, 48)),
}


@pytest.mark.parametrize("source", sorted(TRNS_SOURCES))
def test_trns_transparency_survives(source):
    out = render(TRNS_SOURCES[source], PNG_OUT, LIMITS, f"{source}.png").outputs[0]
    alpha = [a for *_, a in (decode(out.data).convert("RGBA").getpixel((x, 0)) for x in range(4))]
    assert alpha == [0, 0, 255, 255], f"{source}: alpha {alpha}"


def test_a_keyed_png_flattens_onto_the_background_in_jpeg():
    r = Rendition(name="t", format="jpeg", background="#00ff00", quality=95)
    out = decode(render(TRNS_SOURCES["rgb16"], (r,), LIMITS, "k.png").outputs[0].data)
    red, green, _ = out.getpixel((0, 0))
    assert green > 200 and red < 60


# --- warnings: attributed, once, never on stderr -------------------------------------

_BROKEN_EXIF = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00" + b"\x00" * 30


def test_pillow_warnings_come_back_with_the_file_name_once(capfd):
    data = encode(photo(64, 48), "JPEG", exif=_BROKEN_EXIF)
    result = render(data, (Rendition(name="a", format="png"), Rendition(name="b", strip=False)), LIMITS, "trip/b.jpg")
    assert len(result.outputs) == 2
    # Read for the orientation and again for the kept EXIF: still one line.
    assert result.warnings == ("trip/b.jpg: Corrupt EXIF data. Expecting to read 12 bytes but only got 6.",)
    assert capfd.readouterr().err == ""


def test_libtiff_messages_are_captured_and_travel_with_the_error(capfd):
    with pytest.raises(errors.CorruptImage) as caught:
        render(_lzw_tiff_with_garbage_strips(), PNG_OUT, LIMITS, "scans/page.tif")
    # libtiff's own words, without the name of Pillow's in-memory stream
    assert caught.value.warnings == ("scans/page.tif: Using code not yet in table.",)
    assert capfd.readouterr().err == ""


def test_process_and_the_handler_carry_the_warnings(tmp_path, capfd):
    src = tmp_path / "src"
    src.mkdir()
    (src / "b.jpg").write_bytes(encode(photo(64, 48), "JPEG", exif=_BROKEN_EXIF))
    result = batch.run_job(src, tmp_path / "out", batch.Job("b.jpg", ("b-t.png",)), PNG_OUT, LIMITS)
    assert result.ok and result.warnings and result.warnings[0].startswith("b.jpg: Corrupt EXIF data")
    record = process_object(LocalFolder(src), "b.jpg", LocalFolder(tmp_path / "o2"), Job.create(PNG_OUT, LIMITS))
    assert record["outcome"] == "ok" and record["warnings"] == list(result.warnings)
    assert capfd.readouterr().err == ""

"""imgproc.toml parsing: one parser, frozen values, errors that name key and file."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.errors import ConfigError, UnknownPreset
from core.recipe import builtin_config, find_config, load_config, parse_toml, recipe_hash

GOOD = """
[limits]
max_pixels = 50000000

[presets.cards]
description = "square cards"
[[presets.cards.renditions]]
name = "card"
width = 400
height = 400
fit = "cover"
gravity = "north"
format = ["jpeg", "avif"]
quality = { jpeg = 77, avif = 55 }
"""


def parse(text: str):
    return parse_toml(text, "imgproc.toml")


def test_builtin_presets_are_thumb_and_web():
    cfg = builtin_config()
    assert set(cfg.presets) == {"thumb", "web"}
    labels = [r.label for r in cfg.select()]
    assert labels == ["thumb.jpg", "web.jpg", "web.webp"]
    assert {r.width for r in cfg.select(["web"])} == {1600}


def test_a_rendition_with_two_formats_expands_with_per_format_quality():
    cfg = parse(GOOD)
    jpeg, avif = cfg.presets["cards"].renditions
    assert (jpeg.format, jpeg.quality, avif.format, avif.quality) == ("jpeg", 77, "avif", 55)
    assert jpeg.fit == "cover" and jpeg.gravity == "north"
    assert cfg.limits.max_pixels == 50_000_000


def test_values_are_frozen():
    r = builtin_config().select()[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.width = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    "snippet, expected",
    [
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nwidht=10\n", "presets.a.renditions[0].widht: unknown key"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nwidth=0\n", "presets.a.renditions[0].width: 0 is out of range"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nquality=101\n", "presets.a.renditions[0].quality: 101 is out of range"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nformat='gif'\n", "unknown format 'gif'"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nfit='cover'\nwidth=10\n", "needs both width and height"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nfit='zoom'\n", "'zoom' is not one of"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nwatermark={opacity=0.5}\n", "needs `text` or `image`"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='A B'\n", "presets.a.renditions[0].name: required"),
        ("[limits]\nmax_pixels=-1\n", "limits.max_pixels: -1 is out of range"),
        ("[limits]\ninput_formats=['jpeg','psd']\n", "unknown format 'psd'"),
        ("[limtis]\n", "limtis: unknown key"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nwidth=9000\n", "exceeds limits.max_output_dimension"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\n[[presets.a.renditions]]\nname='a'\n", "defined twice"),
        ("[presets.a]\n[[presets.a.renditions]]\nname='a'\nstrip='no'\n", "expected true or false"),
        ("x = [", "invalid TOML in imgproc.toml"),
    ],
)
def test_bad_config_names_the_key_and_the_file(snippet, expected):
    with pytest.raises(ConfigError) as err:
        parse(snippet)
    message = str(err.value)
    assert expected in message
    assert "imgproc.toml" in message
    assert "\n" not in message


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(UnknownPreset, match=r"unknown preset 'huge' \(known: thumb, web\)"):
        builtin_config().select(["huge"])


def test_a_file_without_presets_keeps_the_builtins_but_applies_its_limits():
    cfg = parse("[limits]\nmax_source_bytes = 1000\n")
    assert set(cfg.presets) == {"thumb", "web"}
    assert cfg.limits.max_source_bytes == 1000


def test_foreign_tables_are_passed_through_for_their_owners():
    cfg = parse("[aws]\nregion='eu-west-1'\n[deploy]\nstack='x'\n")
    assert cfg.extra == {"aws": {"region": "eu-west-1"}, "deploy": {"stack": "x"}}


def test_find_config_prefers_explicit_then_cwd_then_builtin(tmp_path: Path):
    assert find_config(None, tmp_path).source == "built-in presets"
    (tmp_path / "imgproc.toml").write_text(GOOD)
    assert set(find_config(None, tmp_path).presets) == {"cards"}
    other = tmp_path / "other.toml"
    other.write_text("[presets.x]\n[[presets.x.renditions]]\nname='x'\n")
    assert set(find_config(other, tmp_path).presets) == {"x"}


def test_missing_config_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")


def test_image_watermark_is_read_relative_to_the_config_file(tmp_path: Path):
    (tmp_path / "mark.png").write_bytes(b"png-bytes")
    (tmp_path / "imgproc.toml").write_text(
        "[presets.a]\n[[presets.a.renditions]]\nname='a'\nwatermark={image='mark.png'}\n"
    )
    r = load_config(tmp_path / "imgproc.toml").select()[0]
    assert r.watermark.image == b"png-bytes"


def test_recipe_hash_changes_with_any_setting():
    r = builtin_config().select(["thumb"])
    changed = (dataclasses.replace(r[0], quality=79),)
    assert recipe_hash(r) == recipe_hash(builtin_config().select(["thumb"]))
    assert recipe_hash(r) != recipe_hash(changed)


def test_the_example_config_in_the_repository_is_valid():
    example = Path(__file__).resolve().parents[2] / "examples" / "imgproc.toml"
    cfg = load_config(example)
    assert set(cfg.presets) == {"thumb", "web", "cards"}
    assert [r.label for r in cfg.select(["web"])] == ["web.jpg", "web.webp", "web.avif"]


def test_a_misspelt_key_gets_a_suggestion():
    with pytest.raises(ConfigError, match=r"qualty: unknown key \(did you mean 'quality'\?\) in imgproc.toml"):
        parse("[presets.a]\n[[presets.a.renditions]]\nname='a'\nqualty=80\n")

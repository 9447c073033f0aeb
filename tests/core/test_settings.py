"""Handler settings from the environment: defaults, one-line errors naming the variable, the loop guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigError
from core.recipe import Limits
from core.settings import check_loop, parse_settings

BASE = Path("/var/task")
NAMES = ("thumb", "web")


def settings(**env):
    return parse_settings({"IMGPROC_OUTPUT_BUCKET": "photos-out", **env}, BASE)


def test_defaults():
    s = settings()
    assert s.output_bucket == "photos-out"
    assert (s.input_bucket, s.input_prefix, s.output_prefix, s.presets) == ("", "", "", ())
    assert s.rekognition is False
    assert s.config_path == BASE / "imgproc.toml"
    assert s.limits(Limits()) == Limits()


def test_every_variable_is_read():
    s = settings(IMGPROC_INPUT_BUCKET="photos-in", IMGPROC_INPUT_PREFIX="uploads/", IMGPROC_OUTPUT_PREFIX="out/",
                 IMGPROC_PRESETS=" thumb, web ,thumb", IMGPROC_MAX_SOURCE_BYTES="1000000", IMGPROC_MAX_PIXELS="24_000_000",
                 IMGPROC_REKOGNITION="ON", IMGPROC_CONFIG="conf/presets.toml")
    assert s.input_bucket == "photos-in" and s.input_prefix == "uploads/" and s.output_prefix == "out/"
    assert s.presets == ("thumb", "web")
    assert s.rekognition is True
    assert s.config_path == BASE / "conf/presets.toml"
    limits = s.limits(Limits(max_frames=7))
    assert (limits.max_source_bytes, limits.max_pixels, limits.max_frames) == (1_000_000, 24_000_000, 7)


def test_absolute_config_path_is_kept():
    assert settings(IMGPROC_CONFIG="/opt/imgproc.toml").config_path == Path("/opt/imgproc.toml")


def test_missing_output_bucket_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"^IMGPROC_OUTPUT_BUCKET is not set"):
        parse_settings({}, BASE)


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("IMGPROC_OUTPUT_BUCKET", "Photos_Out", "not a valid S3 bucket name"),
        ("IMGPROC_INPUT_BUCKET", "x", "not a valid S3 bucket name"),
        ("IMGPROC_OUTPUT_PREFIX", "processed", "must end with '/'"),
        ("IMGPROC_OUTPUT_PREFIX", "/processed/", "must not start with '/'"),
        ("IMGPROC_INPUT_PREFIX", "/uploads/", "must not start with '/'"),
        ("IMGPROC_PRESETS", "thumb,Web Big", "is not a preset name"),
        ("IMGPROC_MAX_SOURCE_BYTES", "10MB", "expected a whole number"),
        ("IMGPROC_MAX_SOURCE_BYTES", "0", "out of range"),
        ("IMGPROC_MAX_PIXELS", "-5", "out of range"),
        ("IMGPROC_REKOGNITION", "maybe", "expected 'on' or 'off'"),
    ],
)
def test_bad_values_name_the_variable_in_one_line(var, value, message):
    with pytest.raises(ConfigError) as info:
        settings(**{var: value})
    text = str(info.value)
    assert text.startswith(var) and message in text and "\n" not in text


def test_loop_guard_allows_separate_buckets():
    check_loop(settings(IMGPROC_INPUT_BUCKET="photos-in"), NAMES)


def test_loop_guard_allows_unknown_input_bucket():
    check_loop(settings(), NAMES)  # the per-object metadata guard still applies


def test_loop_guard_allows_one_bucket_with_disjoint_prefixes():
    check_loop(settings(IMGPROC_INPUT_BUCKET="photos-out", IMGPROC_INPUT_PREFIX="uploads/"), NAMES)
    check_loop(settings(IMGPROC_INPUT_BUCKET="photos-out", IMGPROC_INPUT_PREFIX="uploads/",
                        IMGPROC_OUTPUT_PREFIX="renditions/"), NAMES)


@pytest.mark.parametrize(
    "input_prefix, output_prefix, names",
    [
        ("", "", NAMES),  # the whole bucket is watched
        ("", "renditions/", NAMES),
        ("uploads/", "uploads/renditions/", NAMES),  # outputs inside the watched prefix
        ("renditions/thumb/x/", "renditions/", NAMES),  # watched prefix inside an output prefix
        ("uploads/", "", ("uploads", "web")),  # a rendition named like the watched folder
        ("labels/", "", NAMES),  # the Rekognition sidecars
    ],
)
def test_loop_guard_refuses_overlapping_prefixes_in_one_bucket(input_prefix, output_prefix, names):
    s = settings(IMGPROC_INPUT_BUCKET="photos-out", IMGPROC_INPUT_PREFIX=input_prefix,
                 IMGPROC_OUTPUT_PREFIX=output_prefix)
    with pytest.raises(ConfigError, match=r"^IMGPROC_OUTPUT_BUCKET: .*trigger the function again"):
        check_loop(s, names)


def test_output_keys_and_input_scope():
    s = settings(IMGPROC_INPUT_BUCKET="photos-in", IMGPROC_INPUT_PREFIX="uploads/", IMGPROC_OUTPUT_PREFIX="r/")
    assert s.is_output_key("photos-out", "r/thumb/uploads/a.jpg", NAMES)
    assert s.is_output_key("photos-out", "r/labels/uploads/a.jpg.json", NAMES)
    assert not s.is_output_key("photos-in", "r/thumb/uploads/a.jpg", NAMES)
    assert not s.is_output_key("photos-out", "r/other/a.jpg", NAMES)
    assert s.in_scope("photos-in", "uploads/a.jpg")
    assert not s.in_scope("photos-in", "elsewhere/a.jpg")

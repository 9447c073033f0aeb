"""`imgproc gallery` against a deployed stack on moto's server: presigned links a real browser opens."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import boto3
import pytest
from browser import chromium, load_every_image, watch
from gallerydata import HOSTILE_NAME, Elements
from typer.testing import CliRunner

from cli.app import app
from core.naming import s3_output_key
from core.pipeline import render
from core.recipe import builtin_config

from imaging import encode, photo

pytestmark = pytest.mark.slow
STACK = "imgproc"
IN_BUCKET, OUT_BUCKET = "gallery-in", "gallery-out"
SOURCES = {"uploads/cat 1.jpg": (900, 600), f"uploads/{HOSTILE_NAME}": (400, 500)}

TEMPLATE = {
    "Resources": {
        "InputBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": IN_BUCKET}},
        "OutputBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": OUT_BUCKET}},
    },
    "Outputs": {
        "InputBucketName": {"Value": {"Ref": "InputBucket"}},
        "OutputBucketName": {"Value": {"Ref": "OutputBucket"}},
    },
}


@pytest.fixture
def deployed(moto_server, tmp_path, monkeypatch):
    """A stack with two buckets: two sources with their renditions, one upload with none."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgproc.toml").write_text('[deploy]\ninput_prefix = "uploads/"\n')
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(TEMPLATE))
    s3 = boto3.client("s3")
    recipes = builtin_config().select(["thumb", "web"])
    for key, (w, h) in SOURCES.items():
        data = encode(photo(w, h, seed=w), "JPEG", quality=90)
        s3.put_object(Bucket=IN_BUCKET, Key=key, Body=data)
        for r, output in zip(recipes, render(data, recipes, builtin_config().limits, key).outputs, strict=True):
            s3.put_object(Bucket=OUT_BUCKET, Key=s3_output_key("", key, r), Body=output.data)
    s3.put_object(Bucket=IN_BUCKET, Key="uploads/broken.jpg", Body=b"not an image")
    s3.put_object(Bucket=IN_BUCKET, Key="elsewhere/ignored.jpg", Body=b"outside the input prefix")
    return tmp_path


def test_gallery_of_the_output_bucket_through_presigned_urls(deployed, moto_server, tmp_path_factory):
    result = CliRunner().invoke(app, ["gallery", "--stack", STACK, "-o", "page.html", "--expires", "15m"],
                                catch_exceptions=False)
    assert result.exit_code == 1, result.output  # broken.jpg has no renditions
    assert "2 images, 6 renditions, 1 without renditions" in result.stdout
    html = (deployed / "page.html").read_text(encoding="utf-8")
    page = Elements(html)
    assert [c["data-name"] for c in page.with_class("li", "card")] == ["uploads/cat 1.jpg",
                                                                       f"uploads/{HOSTILE_NAME}".lower()]
    links = page.with_class("a", "rend")
    assert len(links) == 6
    assert all(urlsplit(a["href"]).netloc == urlsplit(moto_server).netloc and "Signature" in a["href"]
               for a in links)  # private bucket, presigned GETs
    # thumb fits 200x200; web (1600 px) never enlarges; read from each object's header
    assert {a["data-w"] + "x" + a["data-h"] for a in links} == {"200x133", "900x600", "160x200", "400x500"}
    assert "uploads/broken.jpg" in "".join(page.text)
    with chromium(tmp_path_factory.mktemp("profile")) as browser:
        tab = browser.new_page()
        log = watch(tab)
        tab.goto((deployed / "page.html").as_uri())
        images = load_every_image(tab)
        assert len(images) == 6 and [i["src"] for i in images if i["natural"] == 0] == []
        assert log.errors == [] and log.dialogs == []


@pytest.mark.parametrize("expires", ["8d", "soon"])
def test_expiry_beyond_what_s3_presigns_is_refused(expires):
    result = CliRunner().invoke(app, ["gallery", "--expires", expires])
    assert result.exit_code == 2 and "--expires" in result.output

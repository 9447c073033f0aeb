"""One contract, every storage adapter: the local folder and an S3 bucket (moto)."""

from __future__ import annotations

import boto3
import pytest

from core.errors import SourceChanged, SourceTooLarge, StorageError, TransientStorageError
from core.storage import LocalFolder, S3Bucket


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        yield LocalFolder(tmp_path / "store")
        return
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="contract-bucket")
        yield S3Bucket(client, "contract-bucket")


def test_write_then_read_round_trips(store):
    store.write("a/b/photo one.jpg", b"\xff\xd8data", "image/jpeg", {"imgproc-recipe": "abc"})
    assert store.read("a/b/photo one.jpg") == b"\xff\xd8data"


def test_head_reports_size_and_etag_or_none(store):
    assert store.head("missing.jpg") is None
    store.write("x.jpg", b"12345", "image/jpeg")
    info = store.head("x.jpg")
    assert info.size == 5 and info.etag == "827ccb0eea8a706c4c34a16891f84e7b"  # md5 of 12345


def test_overwrite_replaces_content(store):
    store.write("x.jpg", b"old", "image/jpeg")
    store.write("x.jpg", b"new!", "image/jpeg")
    assert store.read("x.jpg") == b"new!"


def test_keys_lists_by_prefix(store):
    for key in ("in/1.jpg", "in/sub/2.jpg", "other/3.jpg"):
        store.write(key, b"x", "image/jpeg")
    assert sorted(store.keys("in/")) == ["in/1.jpg", "in/sub/2.jpg"]


def test_read_pinned_to_an_etag_refuses_a_replaced_object(store):
    store.write("x.jpg", b"examined", "image/jpeg")
    etag = store.head("x.jpg").etag
    assert store.read("x.jpg", etag=etag) == b"examined"
    store.write("x.jpg", b"swapped in afterwards", "image/jpeg")
    with pytest.raises(SourceChanged) as err:
        store.read("x.jpg", etag=etag)
    assert "x.jpg" in str(err.value) and err.value.transient  # a retry examines the new object


def test_read_never_returns_more_than_max_bytes(store):
    store.write("x.jpg", b"0123456789", "image/jpeg")
    assert store.read("x.jpg", max_bytes=10) == b"0123456789"
    with pytest.raises(SourceTooLarge) as err:
        store.read("x.jpg", max_bytes=9)
    assert "x.jpg" in str(err.value) and "9-byte limit" in str(err.value)
    store.write("empty.jpg", b"", "image/jpeg")
    assert store.read("empty.jpg", etag=store.head("empty.jpg").etag, max_bytes=9) == b""


def test_reading_a_missing_key_is_a_storage_error(store):
    with pytest.raises(StorageError) as err:
        store.read("nope.jpg")
    assert "nope.jpg" in str(err.value)
    assert not isinstance(err.value, TransientStorageError)


def test_s3_metadata_and_content_type_are_stored():
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="meta-bucket")
        S3Bucket(client, "meta-bucket").write("k.webp", b"x", "image/webp", {"imgproc-recipe": "r1"},
                                              cache_control="max-age=60")
        info = S3Bucket(client, "meta-bucket").head("k.webp")
        assert info.content_type == "image/webp" and info.metadata == {"imgproc-recipe": "r1"}
        assert client.head_object(Bucket="meta-bucket", Key="k.webp")["CacheControl"] == "max-age=60"


def test_local_folder_refuses_keys_escaping_the_root(tmp_path):
    with pytest.raises(StorageError, match="outside"):
        LocalFolder(tmp_path).write("../escape.jpg", b"x", "image/jpeg")


def test_a_write_expecting_no_object_never_replaces_one(store):
    from core.errors import WriteConflict
    from core.storage import ABSENT

    store.write("out/cat.jpg", b"from cat.jpg", "image/jpeg", expect=ABSENT)
    with pytest.raises(WriteConflict) as err:
        store.write("out/cat.jpg", b"from cat.png", "image/jpeg", expect=ABSENT)
    assert "out/cat.jpg" in str(err.value)
    assert store.read("out/cat.jpg") == b"from cat.jpg"


def test_a_write_expecting_an_etag_replaces_only_that_version(store):
    from core.errors import WriteConflict

    store.write("x.jpg", b"v1", "image/jpeg")
    v1 = store.head("x.jpg").etag
    store.write("x.jpg", b"v2", "image/jpeg", expect=v1)
    assert store.read("x.jpg") == b"v2"
    with pytest.raises(WriteConflict):
        store.write("x.jpg", b"v3", "image/jpeg", expect=v1)  # v1 is gone
    assert store.read("x.jpg") == b"v2"


def test_delete_removes_the_object_and_a_missing_one_is_no_error(store):
    store.write("gone/x.jpg", b"12345", "image/jpeg")
    store.write("gone/y.jpg", b"6", "image/jpeg")
    store.delete("gone/x.jpg")
    store.delete("gone/never.jpg")
    assert store.head("gone/x.jpg") is None and list(store.keys("gone/")) == ["gone/y.jpg"]

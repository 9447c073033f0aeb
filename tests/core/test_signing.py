"""core.signing: canonical paths, HMAC sign/verify with expiry, key rings and rotation."""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qsl, urlsplit

import pytest

from core import signing
from core.errors import ConfigError
from core.signing import Verdict

NOW = 1_795_000_000
OLD = "old-secret-0123456789abcdef"
NEW = "new-secret-fedcba9876543210"


@pytest.fixture
def ring():
    return signing.parse_keyring(json.dumps({"k1": OLD}), "test")


def test_canonical_path_encodes_spaces_unicode_and_plus_one_way():
    assert signing.canonical_path("thumb", "uploads/cat 1.jpg") == "/images/thumb/uploads/cat%201.jpg"
    assert signing.canonical_path("thumb", "a+b/Zürich (1).jpg") == "/images/thumb/a%2Bb/Z%C3%BCrich%20%281%29.jpg"
    assert signing.split_path("/images/thumb/uploads/cat 1.jpg") == ("thumb", "uploads/cat 1.jpg")
    assert signing.split_path("images/web/a/b.png") == ("web", "a/b.png")
    with pytest.raises(ValueError):
        signing.split_path("/other/thumb/x.jpg")


def test_signed_path_verifies_until_it_expires(ring):
    path = signing.canonical_path("thumb", "uploads/cat 1.jpg")
    query = signing.sign(path, ring, expires=NOW + 60)
    assert set(query) == {"expires", "kid", "sig"} and len(query["sig"]) == 64
    assert signing.verify(path, query, ring, now=NOW) is Verdict.OK
    assert signing.verify(path, query, ring, now=NOW + 59.9) is Verdict.OK
    assert signing.verify(path, query, ring, now=NOW + 60) is Verdict.EXPIRED


@pytest.mark.parametrize("change", ["path", "expires", "sig", "kid-swap"])
def test_tampering_with_any_part_is_refused(ring, change):
    ring2 = signing.parse_keyring(json.dumps({"k1": OLD, "k2": NEW}), "test")
    path = signing.canonical_path("thumb", "uploads/cat.jpg")
    query = signing.sign(path, ring2, expires=NOW + 60, kid="k1")
    if change == "path":
        path = signing.canonical_path("web", "uploads/cat.jpg")
    elif change == "expires":
        query["expires"] = str(NOW + 10_000_000)
    elif change == "sig":
        query["sig"] = query["sig"][:-1] + ("0" if query["sig"][-1] != "0" else "1")
    else:
        query["kid"] = "k2"
    assert signing.verify(path, query, ring2, now=NOW) is Verdict.BAD_SIGNATURE


def test_missing_and_malformed_parameters(ring):
    path = "/images/thumb/a.jpg"
    assert signing.verify(path, {}, ring, now=NOW) is Verdict.MISSING
    assert signing.verify(path, None, ring, now=NOW) is Verdict.MISSING
    good = signing.sign(path, ring, expires=NOW + 60)
    assert signing.verify(path, {**good, "sig": "zz" * 32}, ring, now=NOW) is Verdict.MALFORMED
    assert signing.verify(path, {**good, "sig": good["sig"][:40]}, ring, now=NOW) is Verdict.MALFORMED
    assert signing.verify(path, {**good, "expires": "-5"}, ring, now=NOW) is Verdict.MALFORMED
    assert signing.verify(path, {"expires": good["expires"]}, ring, now=NOW) is Verdict.MALFORMED
    assert signing.verify(path, {**good, "kid": "../etc"}, ring, now=NOW) is Verdict.MALFORMED


def test_rotation_old_and_new_keys_both_verify_then_the_old_one_is_retired(ring):
    path = "/images/thumb/a.jpg"
    old_url = signing.sign(path, ring, expires=NOW + 60)
    rotated = signing.parse_keyring(json.dumps({"k2": NEW, "k1": OLD}), "test")
    assert rotated.current == "k2"
    new_url = signing.sign(path, rotated, expires=NOW + 60)
    assert new_url["kid"] == "k2"
    assert signing.verify(path, old_url, rotated, now=NOW) is Verdict.OK
    assert signing.verify(path, new_url, rotated, now=NOW) is Verdict.OK
    retired = signing.parse_keyring(json.dumps({"k2": NEW}), "test")
    assert signing.verify(path, old_url, retired, now=NOW) is Verdict.UNKNOWN_KEY


def test_url_without_key_id_tries_every_active_key():
    single = signing.single_key(OLD)
    path = "/images/thumb/a.jpg"
    query = signing.sign(path, single, expires=NOW + 60, include_kid=False)
    assert "kid" not in query
    both = signing.parse_keyring(json.dumps({"k2": NEW, "k1": OLD}), "test")
    assert signing.verify(path, query, both, now=NOW) is Verdict.OK
    assert signing.verify(path, query, signing.single_key(NEW), now=NOW) is Verdict.BAD_SIGNATURE


def test_signatures_are_compared_in_constant_time(ring, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    path = "/images/thumb/a.jpg"
    query = signing.sign(path, ring, expires=NOW + 60)
    assert signing.verify(path, query, ring, now=NOW) is Verdict.OK
    assert calls and calls[-1][1] == query["sig"]


def test_signed_url_round_trips_through_a_real_url(ring):
    url = signing.signed_url("https://x.example/prod/", "thumb", "uploads/cat 1.jpg", ring, NOW + 60)
    parts = urlsplit(url)
    assert parts.path == "/prod/images/thumb/uploads/cat%201.jpg"
    query = dict(parse_qsl(parts.query))
    assert signing.verify("/images/thumb/uploads/cat%201.jpg", query, ring, now=NOW) is Verdict.OK


@pytest.mark.parametrize("text, fragment", [
    ("not json", "expected a JSON object"),
    ("[]", "non-empty JSON object"),
    ("{}", "non-empty JSON object"),
    ('{"k 1": "0123456789abcdefXYZ"}', "key id"),
    ('{"k1": "short-secret"}', "at least 16"),
    ('{"k1": 12345678901234567890}', "at least 16"),
])
def test_bad_key_rings_are_refused_without_echoing_secrets(text, fragment):
    with pytest.raises(ConfigError) as info:
        signing.parse_keyring(text, "SSM parameter /imgproc/signing-keys")
    message = str(info.value)
    assert fragment in message and "/imgproc/signing-keys" in message
    assert "short-secret" not in message and "0123456789abcdefXYZ" not in message


@pytest.mark.parametrize("key, ok", [
    ("uploads/cat 1.jpg", True), ("uploads/Zürich café.jpg", True), ("a+b/100% real.jpg", True),
    ("uploads/../secret.jpg", False), ("..", False), ("uploads/./x.jpg", False), ("/etc/passwd", False),
    ("uploads//x.jpg", False), ("uploads\\..\\x.jpg", False), ("uploads/%2e%2e/x.jpg", False),
    ("uploads/x\x00.jpg", False), ("a" * 1025, False), ("", False),
])
def test_unsafe_keys(key, ok):
    assert (signing.unsafe_key_reason(key) is None) is ok


@pytest.mark.parametrize("text, seconds", [("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_durations(text, seconds):
    assert signing.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "1w", "-1h", "1.5h", "soon"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        signing.parse_duration(text)

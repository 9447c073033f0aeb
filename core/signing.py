"""Signed retrieval URLs: HMAC-SHA256 over a canonical path and an expiry time.

A URL ``/images/thumb/uploads/cat%201.jpg?expires=1767225600&kid=k2&sig=<64 hex>``
is valid until ``expires`` (Unix seconds) when ``sig`` is the HMAC-SHA256, under
the key named ``kid``, of::

    GET\\n/images/thumb/uploads/cat%201.jpg\\n1767225600\\nk2

The path part is *canonical*: the decoded preset and key, percent-encoded the
one way :func:`canonical_path` does it, so a client or gateway that encodes a
space as ``%20`` and another that leaves ``~`` alone produce the same string.
Signatures are compared with :func:`hmac.compare_digest` (constant time).

Several keys can be active at once (a :class:`KeyRing`), so keys rotate
without breaking URLs already handed out. The key ring's text form is a JSON
object ``{"k2": "new secret", "k1": "old secret"}``: every key verifies, the
first one signs unless another is named.

Example::

    ring = parse_keyring('{"k1": "a-long-random-secret-of-32-chars!"}', "example")
    query = sign("/images/thumb/cat 1.jpg", ring, expires=1767225600)
    assert verify("/images/thumb/cat 1.jpg", query, ring, now=1767225000) is Verdict.OK
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from core.errors import ConfigError

#: The route every signed path lives under.
ROUTE_PREFIX = "/images/"
#: Query parameter names.
EXPIRES, SIGNATURE, KEY_ID = "expires", "sig", "kid"
#: Secrets shorter than this are refused: HMAC is only as strong as its key.
MIN_SECRET_LENGTH = 16
#: The longest a URL may stay valid: `imgproc sign` refuses more, the API refuses a URL that
#: expires further in the future (a leaked key must not mint URLs that outlive its rotation).
MAX_VALIDITY_SECONDS = 366 * 86400
#: Tolerated clock difference between the signer and the API when checking MAX_VALIDITY_SECONDS.
CLOCK_SKEW_SECONDS = 300

# Matched with fullmatch: `$` would also accept a trailing newline ("123\n").
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX64 = re.compile(r"[0-9a-f]{64}")  # lower case only, as sign() writes it: one spelling per URL
_EXPIRES = re.compile(r"[1-9][0-9]{0,11}")  # canonical: no leading zeros, no sign, no spaces
_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Verdict(enum.Enum):
    """Why a request was or was not accepted (logged, never shown to the caller)."""

    OK = "ok"
    MISSING = "missing"  # no expires/sig parameters
    MALFORMED = "malformed"  # parameters present but not well-formed (or not canonical)
    TOO_LONG = "too_long"  # expires further ahead than MAX_VALIDITY_SECONDS
    EXPIRED = "expired"
    UNKNOWN_KEY = "unknown_key"  # kid names no active key
    BAD_SIGNATURE = "bad_signature"


@dataclass(frozen=True)
class KeyRing:
    """The active signing keys, in order: the first signs by default, all verify."""

    keys: Mapping[str, bytes] = field(repr=False)

    @property
    def current(self) -> str:
        return next(iter(self.keys))

    def __contains__(self, kid: object) -> bool:
        return kid in self.keys


def parse_keyring(text: str, source: str) -> KeyRing:
    """Parse ``{"kid": "secret", ...}`` (first = current signing key).

    Raises ConfigError naming ``source`` (never echoing a secret) when the text
    is not such an object, a key id is not ``[A-Za-z0-9._-]{1,64}`` or a secret
    is shorter than MIN_SECRET_LENGTH characters.
    """
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise ConfigError(f"signing keys in {source}: expected a JSON object {{\"key-id\": \"secret\"}}") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f"signing keys in {source}: expected a non-empty JSON object {{\"key-id\": \"secret\"}}")
    keys: dict[str, bytes] = {}
    for kid, secret in data.items():
        if not _KID.fullmatch(kid):
            raise ConfigError(f"signing keys in {source}: key id {kid!r} must match [A-Za-z0-9._-]{{1,64}}")
        if not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"signing keys in {source}: secret of key {kid!r} must be a string of at least "
                f"{MIN_SECRET_LENGTH} characters"
            )
        keys[kid] = secret.encode("utf-8")
    return KeyRing(keys)


def single_key(secret: str, kid: str = "default", source: str = "--secret") -> KeyRing:
    """A ring of one key (offline signing with a bare secret)."""
    return parse_keyring(json.dumps({kid: secret}), source)


def quote_key(key: str) -> str:
    """Percent-encode a decoded S3 key for a URL path: RFC 3986 unreserved characters and '/' stay."""
    return quote(key, safe="/", encoding="utf-8", errors="strict")


def canonical_path(preset: str, key: str) -> str:
    """``("thumb", "uploads/cat 1.jpg")`` -> ``/images/thumb/uploads/cat%201.jpg``.

    ``preset`` and ``key`` are the decoded values; the result is what is signed
    and what a signed URL's path looks like.
    """
    return f"{ROUTE_PREFIX}{quote(preset, safe='')}/{quote_key(key)}"


def split_path(path: str) -> tuple[str, str]:
    """Inverse of :func:`canonical_path` for a *decoded* path: ``/images/P/K`` -> ``(P, K)``.

    Raises ValueError when the path is not under ``/images/<preset>/``.
    """
    if path.startswith(ROUTE_PREFIX[1:]):
        path = "/" + path
    if not path.startswith(ROUTE_PREFIX):
        raise ValueError(f"{path!r} is not under {ROUTE_PREFIX}")
    preset, sep, key = path[len(ROUTE_PREFIX):].partition("/")
    if not sep or not preset or not key:
        raise ValueError(f"{path!r}: expected {ROUTE_PREFIX}<preset>/<key>")
    return preset, key


_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_key_reason(key: str) -> str | None:
    """Why a *decoded* key must not be served, or None when it is safe.

    Refused: ``.``/``..`` or empty segments, backslashes, a leading '/',
    control characters, leftover percent-escapes (double encoding such as
    ``%252e%252e``) and keys longer than S3's 1024 bytes.
    """
    if not key:
        return "empty key"
    if _CONTROL.search(key) or "\\" in key:
        return "unsafe characters in key"
    if key.startswith("/"):
        return "absolute key"
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        return "path traversal or empty segment in key"
    if _ESCAPE.search(key):
        return "double-encoded key"
    if len(key.encode("utf-8")) > 1024:
        return "key longer than 1024 bytes"
    return None


def string_to_sign(path: str, expires: int, kid: str | None) -> bytes:
    """What the HMAC covers: method, canonical path, expiry and key id (empty when absent)."""
    return f"GET\n{path}\n{expires}\n{kid or ''}".encode()


def signature(secret: bytes, path: str, expires: int, kid: str | None) -> str:
    return hmac.new(secret, string_to_sign(path, expires, kid), hashlib.sha256).hexdigest()


def sign(path: str, ring: KeyRing, expires: int, kid: str | None = None, include_kid: bool = True) -> dict[str, str]:
    """Query parameters that make ``path`` (canonical) valid until ``expires``.

    ``kid`` picks a key (default: the ring's current key). Raises KeyError for a
    key id the ring lacks. With ``include_kid=False`` the URL carries no key id
    and the verifier tries every active key.
    """
    kid = kid or ring.current
    secret = ring.keys[kid]
    used_kid = kid if include_kid else None
    params = {EXPIRES: str(int(expires))}
    if used_kid:
        params[KEY_ID] = used_kid
    params[SIGNATURE] = signature(secret, path, int(expires), used_kid)
    return params


def signed_url(base_url: str, preset: str, key: str, ring: KeyRing, expires: int, kid: str | None = None) -> str:
    """``base_url`` (may be empty) + canonical path + signed query."""
    path = canonical_path(preset, key)
    return f"{base_url.rstrip('/')}{path}?{urlencode(sign(path, ring, expires, kid))}"


def precheck(query: Mapping[str, str] | None, now: float) -> Verdict | None:
    """The checks that need no key: a Verdict to refuse with, or None when the query is well-formed.

    Callers run this before fetching keys, so unsigned or garbled requests cost
    no key-store read.
    """
    query = query or {}
    expires_s, sig, kid = query.get(EXPIRES), query.get(SIGNATURE), query.get(KEY_ID)
    if expires_s is None and sig is None:
        return Verdict.MISSING
    if not expires_s or not sig or not _EXPIRES.fullmatch(expires_s) or not _HEX64.fullmatch(sig):
        return Verdict.MALFORMED
    if kid is not None and not _KID.fullmatch(kid):
        return Verdict.MALFORMED
    if int(expires_s) > now + MAX_VALIDITY_SECONDS + CLOCK_SKEW_SECONDS:
        return Verdict.TOO_LONG
    return None


def verify(path: str, query: Mapping[str, str] | None, ring: KeyRing | None, now: float) -> Verdict:
    """Check a request's query parameters against canonical ``path`` at time ``now``.

    Every reason to refuse maps to a Verdict for the log; callers answer all
    refusals the same way (403) so the answer teaches an attacker nothing.
    """
    refused = precheck(query, now)
    if refused is not None:
        return refused
    query = query or {}
    expires, sig, kid = int(query[EXPIRES]), query[SIGNATURE], query.get(KEY_ID)
    if ring is None or not ring.keys:
        return Verdict.UNKNOWN_KEY
    if kid is not None and kid not in ring:
        return Verdict.UNKNOWN_KEY
    candidates = [ring.keys[kid]] if kid is not None else list(ring.keys.values())
    ok = False
    for secret in candidates:  # constant-time compare for each; no early exit on the first match
        ok |= hmac.compare_digest(signature(secret, path, expires, kid), sig)
    if not ok:
        return Verdict.BAD_SIGNATURE
    # Expiry is checked after the signature so a forged `expires` is reported as tampering.
    if now >= expires:
        return Verdict.EXPIRED
    return Verdict.OK


def parse_duration(text: str) -> int:
    """``"90"``, ``"90s"``, ``"15m"``, ``"1h"``, ``"7d"`` -> seconds (> 0).

    Raises ValueError with a one-line message otherwise.
    """
    m = _DURATION.match(text or "")
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h or 7d")
    return int(m.group(1)) * _UNITS[m.group(2)]

"""The retrieval API: ``GET /images/{preset}/{key+}`` behind API Gateway (REST, Lambda proxy).

``lambda_entry.api_handler`` delegates here. For an allowed preset and a source
key under the input prefix:

* the rendition already exists in the output bucket -> ``302`` to a short-lived
  presigned S3 URL (no 6 MB response limit, no bytes through Lambda);
* it does not -> rendered with the same engine as the S3-event handler
  (``core.jobs.process_object``), stored (so the next request redirects), then
  returned inline (base64) when smaller than IMGPROC_API_INLINE_MAX_BYTES, else
  redirected to;
* ``Accept`` picks AVIF, then WebP, else the preset's first format, among the
  formats the preset defines (``Vary: Accept``); ``ETag`` + ``If-None-Match`` -> 304.

Authentication is on by default (IMGPROC_AUTH=signed): ``?expires=&kid=&sig=``,
HMAC-SHA256 over the canonical path (``core.signing``), keys from an SSM
SecureString parameter read once per cold start (a request that is not
well-formed is refused first, and a failed read is retried only after a backoff). IMGPROC_AUTH=apikey trusts
API Gateway's usage-plan API key check instead (and still refuses a request the
gateway did not attach a key to). Refusals are a bare ``403 {"error":
"forbidden"}``; the reason goes only to the log.

Every request prints one JSON log line (``"event": "request"``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from core import errors, signing
from core.errors import ConfigError, ImgprocError
from core.recipe import Config, Rendition, builtin_config, load_config

if TYPE_CHECKING:  # imported where used at run time: a cold start loads only what the request needs
    from core.storage import ObjectInfo, Storage

HERE = Path(__file__).resolve().parent

# The API's own variables (the shared IMGPROC_* ones are declared in core/settings.py).
# name -> (default, one-line meaning)
VARIABLES: dict[str, tuple[str, str]] = {
    "IMGPROC_AUTH": ("signed", "'signed' (HMAC URLs, default) or 'apikey' (API Gateway usage plan checks the key)"),
    "IMGPROC_SIGNING_KEYS_PARAM": ("", "SSM SecureString parameter holding {\"key-id\": \"secret\", ...}; required when signed"),
    "IMGPROC_API_REDIRECT_TTL": ("300", "seconds a presigned S3 redirect stays valid (10..3600)"),
    "IMGPROC_API_INLINE_MAX_BYTES": ("262144", "freshly rendered results up to this size are returned inline; 0 = always redirect"),
    "IMGPROC_API_CACHE_SECONDS": ("86400", "max-age for inline responses (capped by the URL's remaining validity)"),
}
AUTH_MODES = ("signed", "apikey")
#: Inline bodies are base64 in a JSON envelope: keep far below Lambda's 6 MB response limit.
INLINE_CEILING = 4 * 1024 * 1024
#: An unknown key id refreshes the keys from SSM at most this often (rotation without cold start).
KEY_REFRESH_SECONDS = 60
#: Accept-negotiable formats, most preferred first.
NEGOTIATED = ("avif", "webp")

_RANGES = {
    "IMGPROC_API_REDIRECT_TTL": (10, 3600),
    "IMGPROC_API_INLINE_MAX_BYTES": (0, INLINE_CEILING),
    "IMGPROC_API_CACHE_SECONDS": (0, 31536000),
}
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_AUTH_PARAMS = (signing.EXPIRES, signing.SIGNATURE, signing.KEY_ID)


@dataclass(frozen=True)
class ApiSettings:
    """Everything the API reads from its environment, validated once at cold start."""

    handler: Any  # core.settings.HandlerSettings (buckets, prefixes, presets, limits, config path)
    auth: str = "signed"
    keys_param: str = ""
    redirect_ttl: int = 300
    inline_max_bytes: int = 262144
    cache_seconds: int = 86400


def parse_api_settings(env: Mapping[str, str], base_dir: Path = HERE) -> ApiSettings:
    """Validate the API's variables; raises ConfigError naming the variable."""
    from core.settings import parse_settings

    handler = parse_settings(env, base_dir)
    if not handler.input_bucket:
        raise ConfigError("IMGPROC_INPUT_BUCKET is not set: the API renders sources from that bucket")

    def get(name: str) -> str:
        return str(env.get(name, VARIABLES[name][0])).strip()

    def number(name: str) -> int:
        raw = get(name)
        lo, hi = _RANGES[name]
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name}: {value} is out of range {lo}..{hi}")
        return value

    auth = get("IMGPROC_AUTH").lower() or "signed"
    if auth not in AUTH_MODES:
        raise ConfigError(f"IMGPROC_AUTH: expected one of {', '.join(AUTH_MODES)}, got {auth!r}")
    keys_param = get("IMGPROC_SIGNING_KEYS_PARAM")
    if auth == "signed" and not keys_param:
        raise ConfigError("IMGPROC_SIGNING_KEYS_PARAM is not set: name the SSM parameter holding the signing keys")
    return ApiSettings(
        handler=handler,
        auth=auth,
        keys_param=keys_param,
        redirect_ttl=number("IMGPROC_API_REDIRECT_TTL"),
        inline_max_bytes=number("IMGPROC_API_INLINE_MAX_BYTES"),
        cache_seconds=number("IMGPROC_API_CACHE_SECONDS"),
    )


# --- cold-start state: settings, presets, clients and keys, each built on first use --------


@dataclass(frozen=True)
class _State:
    settings: ApiSettings
    config: Config
    presets: Mapping[str, tuple[Rendition, ...]]  # allowed preset -> its served renditions
    limits: Any


_state: _State | None = None
_clients: dict[str, Any] = {}
_keys: signing.KeyRing | None = None
_keys_refreshed_at: float | None = None  # last refresh triggered by an unknown key id


def _load_state() -> _State:
    global _state
    if _state is None:
        settings = parse_api_settings(os.environ)
        hs = settings.handler
        path = hs.config_path
        config = load_config(path) if path is not None and path.is_file() else builtin_config()
        names = hs.presets or tuple(config.presets)
        config.select(names)  # raises UnknownPreset / ConfigError at cold start
        presets = {}
        for name in names:
            renditions = config.presets[name].renditions
            first = renditions[0].name  # a preset is served as its first rendition, in each of its formats
            presets[name] = tuple(r for r in renditions if r.name == first)
        _state = _State(settings, config, presets, hs.limits(config.limits))
    return _state


def _client(service: str) -> Any:  # a boto3 client: boto3 ships no type information
    """One boto3 client per service, created on first use and reused while the container lives."""
    if service not in _clients:
        import boto3
        from botocore.config import Config as BotoConfig

        cfg = BotoConfig(retries={"mode": "standard", "max_attempts": 5},
                         signature_version="s3v4" if service == "s3" else None)
        _clients[service] = boto3.client(service, config=cfg)
    return _clients[service]


#: After a failed SSM read the keys are not asked for again for this long, doubling per
#: failure up to KEY_RETRY_MAX_SECONDS: a flood of requests must not become a flood of SSM reads.
KEY_RETRY_MIN_SECONDS = 1.0
KEY_RETRY_MAX_SECONDS = 60.0
#: SSM error codes a later retry may fix: answered 503 (try again), not 500 (operator must act).
_TRANSIENT_SSM = {"ThrottlingException", "TooManyUpdates", "InternalServerError", "ServiceUnavailable",
                  "RequestLimitExceeded", "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"}
_clock = time.monotonic  # replaced in tests to step through the backoff


@dataclass
class _KeyFailure:
    """The last failed SSM read, remembered so requests during the backoff do not repeat it."""

    error: Exception
    retry_at: float
    backoff: float


_key_failure: _KeyFailure | None = None


def _keyring(settings: ApiSettings, refresh: bool = False) -> signing.KeyRing:
    """The signing keys from SSM, read once per cold start (and on a rate-limited refresh).

    A failed read is remembered (negative cache) and retried only after a
    backoff; meanwhile the same error is raised again without calling SSM. A
    failed refresh keeps the keys already known.
    """
    global _keys, _keys_refreshed_at
    now = _clock()
    due = refresh and (_keys_refreshed_at is None or now - _keys_refreshed_at >= KEY_REFRESH_SECONDS)
    if _keys is not None and not due:
        return _keys
    if due:
        _keys_refreshed_at = now
    if _key_failure is not None and now < _key_failure.retry_at:
        if _keys is not None:
            return _keys
        raise _key_failure.error.with_traceback(None)  # the same object: do not let its traceback grow
    try:
        resp = _client("ssm").get_parameter(Name=settings.keys_param, WithDecryption=True)
        ring = signing.parse_keyring(resp["Parameter"]["Value"], f"SSM parameter {settings.keys_param}")
    except Exception as exc:  # noqa: BLE001 - any failed read (botocore's errors included) is mapped and remembered
        error = _remember_key_failure(exc, settings.keys_param, now)
        if _keys is not None:
            return _keys
        raise error from None
    _forget_key_failure()
    _keys = ring
    return _keys


def _remember_key_failure(exc: Exception, param: str, now: float) -> Exception:
    """Map an SSM failure to what requests answer and start (or double) the backoff."""
    global _key_failure
    if isinstance(exc, ImgprocError):  # the parameter's value is not a key ring
        error: Exception = exc
    else:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code") or type(exc).__name__
        if code in _TRANSIENT_SSM:
            error = HttpError(503, "failed", f"SSM parameter {param}: {code}", {"Retry-After": "5"})
        else:
            error = ConfigError(f"cannot read signing keys from SSM parameter {param}: {code}")
    backoff = KEY_RETRY_MIN_SECONDS if _key_failure is None else min(KEY_RETRY_MAX_SECONDS, _key_failure.backoff * 2)
    _key_failure = _KeyFailure(error, now + backoff, backoff)
    return error


def _forget_key_failure() -> None:
    global _key_failure
    _key_failure = None


def reset() -> None:
    """Forget everything cached (tests; a real container never needs this)."""
    global _state, _keys, _keys_refreshed_at, _key_failure
    _state, _keys, _keys_refreshed_at, _key_failure = None, None, None, None
    _clients.clear()


# --- the request ---------------------------------------------------------------------


class HttpError(Exception):
    """A response decided early; ``reason`` is logged, never sent."""

    def __init__(self, status: int, outcome: str, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.outcome, self.reason, self.headers = status, outcome, reason, headers or {}


_PUBLIC_ERRORS = {400: "bad request", 403: "forbidden", 404: "not found", 405: "method not allowed", 409: "conflict",
                  422: "image cannot be rendered", 500: "internal error", 503: "try again later"}


@dataclass(frozen=True)
class Request:
    """A read-only view of the REST API proxy event fields the API uses."""

    method: str
    path: str  # as API Gateway delivers it (REST: still percent-encoded)
    headers: Mapping[str, str]  # lower-cased names
    query: Mapping[str, str]
    repeated: tuple[str, ...]  # query parameters given more than once
    request_id: str
    api_key_id: str

    @classmethod
    def parse(cls, event: Mapping[str, Any]) -> Request:
        ctx = event.get("requestContext") or {}
        identity = ctx.get("identity") or {}
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        multi = event.get("multiValueQueryStringParameters") or {}
        repeated = tuple(k for k, v in multi.items() if isinstance(v, list) and len(v) > 1)
        return cls(
            method=str(event.get("httpMethod") or ctx.get("httpMethod") or "GET").upper(),
            path=str(event.get("path") or ""),
            headers=headers,
            query={str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
            repeated=repeated,
            request_id=str(ctx.get("requestId") or ""),
            api_key_id=str(identity.get("apiKeyId") or identity.get("apiKey") or ""),
        )


def parse_route(raw_path: str) -> tuple[str, str]:
    """``/[base/]images/<preset>/<key>`` (percent-encoded once) -> decoded ``(preset, key)``.

    Raises HttpError 404 when the path is not an image route and 400 for keys
    that could address anything outside the bucket's key space: ``..`` or ``.``
    segments (also as ``%2e%2e``), backslashes, absolute keys, empty segments,
    control characters, bad percent-escapes or invalid UTF-8, double encoding.
    """
    start = raw_path.find(signing.ROUTE_PREFIX)
    if start < 0:
        raise HttpError(404, "not_found", "not an /images/ path")
    tail = raw_path[start + len(signing.ROUTE_PREFIX):]
    raw_preset, sep, raw_key = tail.partition("/")
    if not sep or not raw_key:
        raise HttpError(404, "not_found", "no key after the preset")
    if _PERCENT.search(tail):
        raise HttpError(400, "bad_request", "malformed percent-escape")
    try:
        preset = unquote(raw_preset, errors="strict")
        key = unquote(raw_key, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, "bad_request", "path is not UTF-8") from None
    if _ENCODED.search(preset) or "/" in preset or "\\" in preset:
        raise HttpError(400, "bad_request", "unsafe preset segment")
    problem = signing.unsafe_key_reason(key)
    if problem:
        raise HttpError(400, "bad_request", problem)
    return preset, key


def accepts(accept: str, mime: str) -> bool:
    """True when ``Accept`` names ``mime`` explicitly with q > 0 (wildcards do not count)."""
    for part in (accept or "").split(","):
        media, *params = [p.strip() for p in part.split(";")]
        if media.lower() != mime:
            continue
        for p in params:
            name, _, value = p.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def negotiate(renditions: tuple[Rendition, ...], accept: str) -> Rendition:
    """AVIF, then WebP, when the client accepts it and the preset has it; else the preset's first format."""
    by_format = {r.format: r for r in renditions}
    for fmt in NEGOTIATED:
        if fmt in by_format and accepts(accept, f"image/{fmt}"):
            return by_format[fmt]
    return renditions[0]


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` against an (unquoted) ETag."""
    for tag in (if_none_match or "").split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"')
        if tag and tag == etag:
            return True
    return False


# --- responses ---------------------------------------------------------------------------


def _response(status: int, headers: dict[str, str], body: str = "", b64: bool = False) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"X-Content-Type-Options": "nosniff", **headers},
            "body": body, "isBase64Encoded": b64}


def _error_response(status: int, extra: dict[str, str] | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Cache-Control": "no-store", **(extra or {})}
    return _response(status, headers, json.dumps({"error": _PUBLIC_ERRORS.get(status, "error")}))


# --- the handler -------------------------------------------------------------------------


def handle(event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
    """API Gateway REST proxy event -> proxy response; never raises."""
    started = time.perf_counter()
    log: dict[str, Any] = {"path": None, "preset": None, "outcome": "failed", "status": 500, "cache": None}
    request_id = getattr(context, "aws_request_id", "") or ""
    try:
        req = Request.parse(event)
        request_id = request_id or req.request_id
        response = _serve(req, log)
    except HttpError as exc:
        log.update(status=exc.status, outcome=exc.outcome, reason=exc.reason)
        response = _error_response(exc.status, exc.headers)
    except ImgprocError as exc:  # configuration or keys: the operator must act
        log.update(status=500, outcome="failed", error={"type": exc.kind, "message": exc.message})
        response = _error_response(500)
    except Exception as exc:  # noqa: BLE001 - last resort: a bug must still answer and log
        log.update(status=500, outcome="failed",
                   error={"type": type(exc).__name__, "message": (str(exc).splitlines() or [""])[0][:300]})
        response = _error_response(500)
    log["ms"] = round((time.perf_counter() - started) * 1000, 2)
    _log(log, request_id)
    return response


def _log(fields: dict[str, Any], request_id: str) -> None:
    status = fields.get("status", 500)
    level = "ERROR" if status >= 500 else "WARNING" if status == 403 else "INFO"
    now = datetime.now(UTC)
    line = {"timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "level": level, "service": "imgproc", "event": "request", "request_id": request_id, **fields}
    sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _serve(req: Request, log: dict[str, Any]) -> dict[str, Any]:
    log["path"] = req.path[:256]  # as received, until it is known to be a safe canonical path
    if req.method not in ("GET", "HEAD"):
        raise HttpError(405, "method_not_allowed", f"method {req.method}", {"Allow": "GET, HEAD"})
    preset, key = parse_route(req.path)
    path = signing.canonical_path(preset, key)
    log.update(path=path, preset=preset)
    state = _load_state()
    settings = state.settings
    remaining = _authorize(req, path, settings)

    renditions = state.presets.get(preset)
    if renditions is None:
        raise HttpError(404, "not_found", "preset not served")
    hs = settings.handler
    if not key.startswith(hs.input_prefix):
        raise HttpError(404, "not_found", "key outside the input prefix")
    if hs.is_output_key(hs.input_bucket, key, [r.name for rs in state.config.presets.values() for r in rs.renditions]):
        raise HttpError(404, "not_found", "key is an imgproc output")

    from core.naming import s3_output_key
    from core.storage import S3Bucket

    rendition = negotiate(renditions, req.headers.get("accept", ""))
    # No recipe hash (and no Pillow) for a hit.
    out_key = s3_output_key(hs.output_prefix, key, rendition, state.config.naming)
    log.update(format=rendition.format, output_key=out_key)
    output = S3Bucket(_client("s3"), hs.output_bucket)
    headers = {"Vary": "Accept"} if len(renditions) > 1 else {}

    info = output.head(out_key)
    if info is not None:
        _check_owner(info, out_key, key, log)
        log.update(cache="hit", bytes=info.size)
        return _found(req, settings, out_key, info.etag, headers, remaining, log)

    log["cache"] = "miss"
    data = _render(state, rendition, key, output, log)
    etag = hashlib.md5(data, usedforsecurity=False).hexdigest()  # what S3 reports for a single-part PUT
    log["bytes"] = len(data)
    if etag_matches(req.headers.get("if-none-match", ""), etag):  # re-rendered identical bytes
        return _not_modified(etag, headers, remaining, settings, log)
    if len(data) <= settings.inline_max_bytes:
        log.update(status=200, outcome="inline")
        headers.update({"Content-Type": rendition.content_type, "ETag": f'"{etag}"',
                        "Cache-Control": _cache_control(settings.cache_seconds, remaining)})
        body = "" if req.method == "HEAD" else base64.b64encode(data).decode("ascii")
        return _response(200, headers, body, b64=req.method != "HEAD")
    return _redirect(settings, out_key, etag, headers, remaining, log)


def _check_owner(info: ObjectInfo, out_key: str, key: str, log: dict[str, Any]) -> None:
    """409 when the stored rendition was made from another source (cat.png for cat.jpg): never serve it."""
    from core.jobs import collision, owned_by

    if not owned_by(info, key):
        exc = collision(out_key, info, key)
        log["error"] = {"type": exc.kind, "message": exc.message}
        raise HttpError(409, "conflict", exc.kind)


def _authorize(req: Request, path: str, settings: ApiSettings) -> int | None:
    """Raise 403 unless the request may proceed; returns the URL's remaining seconds (signed mode)."""
    if settings.auth == "apikey":
        if not req.api_key_id:
            raise HttpError(403, "forbidden", "no API key attached by the gateway")
        return None
    if any(p in req.repeated for p in _AUTH_PARAMS):
        raise HttpError(403, "forbidden", "repeated auth parameter")
    now = time.time()
    refused = signing.precheck(req.query, now)  # before any key is read: garbage costs no SSM call
    if refused is not None:
        raise HttpError(403, "forbidden", refused.value)
    ring = _keyring(settings)
    verdict = signing.verify(path, req.query, ring, now)
    if verdict is signing.Verdict.UNKNOWN_KEY and req.query.get(signing.KEY_ID):
        verdict = signing.verify(path, req.query, _keyring(settings, refresh=True), now)  # a newly rotated key?
    if verdict is not signing.Verdict.OK:
        raise HttpError(403, "forbidden", verdict.value)
    return max(0, int(req.query[signing.EXPIRES]) - int(now))


def _cache_control(max_age: int, remaining: int | None) -> str:
    """Private: a shared cache must not serve a signed response past its URL's expiry."""
    if remaining is not None:
        max_age = min(max_age, remaining)
    return f"private, max-age={max_age}"


def _found(req: Request, settings: ApiSettings, out_key: str, etag: str, headers: dict[str, str],
           remaining: int | None, log: dict[str, Any]) -> dict[str, Any]:
    if etag_matches(req.headers.get("if-none-match", ""), etag):
        return _not_modified(etag, headers, remaining, settings, log)
    return _redirect(settings, out_key, etag, headers, remaining, log)


def _not_modified(etag: str, headers: dict[str, str], remaining: int | None, settings: ApiSettings,
                  log: dict[str, Any]) -> dict[str, Any]:
    log.update(status=304, outcome="not_modified")
    headers = {**headers, "ETag": f'"{etag}"', "Cache-Control": _cache_control(settings.cache_seconds, remaining)}
    return _response(304, headers)


def _redirect(settings: ApiSettings, out_key: str, etag: str, headers: dict[str, str], remaining: int | None,
              log: dict[str, Any]) -> dict[str, Any]:
    url: str = _client("s3").generate_presigned_url(
        "get_object", Params={"Bucket": settings.handler.output_bucket, "Key": out_key},
        ExpiresIn=settings.redirect_ttl,
    )
    log.update(status=302, outcome="redirect")
    # The redirect may be reused only while its presigned target is still valid.
    max_age = max(0, settings.redirect_ttl // 2)
    headers = {**headers, "Location": url, "ETag": f'"{etag}"', "Cache-Control": _cache_control(max_age, remaining)}
    return _response(302, headers)


class _Keep:
    """Storage decorator that keeps the bytes of the last rendition written (for inline answers)."""

    def __init__(self, inner: Storage):
        self.inner: Storage = inner
        self.data: bytes | None = None

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def read(self, key: str, etag: str | None = None, max_bytes: int | None = None) -> bytes:
        return self.inner.read(key, etag=etag, max_bytes=max_bytes)

    def keys(self, prefix: str = "") -> Iterator[str]:
        return self.inner.keys(prefix)

    def write(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
              cache_control: str | None = None, expect: str | None = None) -> None:
        self.inner.write(key, data, content_type, metadata, cache_control, expect=expect)
        self.data = data

    def delete(self, key: str) -> None:
        self.inner.delete(key)


def _render(state: _State, rendition: Rendition, key: str, output: Storage, log: dict[str, Any]) -> bytes:
    """Render and store one rendition with the S3 handler's engine; map failures to HTTP answers."""
    from core.jobs import Job, process_object
    from core.storage import S3Bucket

    hs = state.settings.handler
    job = Job.create((rendition,), state.limits, hs.output_prefix, naming=state.config.naming)
    kept = _Keep(output)
    record = process_object(S3Bucket(_client("s3"), hs.input_bucket), key, kept, job, bucket=hs.input_bucket)
    log["ms_render"] = record["ms"]
    if record["outcome"] == "ok" and kept.data is not None:
        return kept.data
    if record["outcome"] == "ok":  # written meanwhile by a concurrent request: read it back
        return output.read(job.output_key(key, job.renditions[0]))
    if record["outcome"] == "skipped":
        raise HttpError(404, "not_found", record.get("reason", "skipped"))
    error = record.get("error", {})
    log["error"] = error
    cls = getattr(errors, str(error.get("type")), None)
    if error.get("transient"):
        raise HttpError(503, "failed", "transient storage error", {"Retry-After": "2"})
    if cls is errors.OutputCollision:  # another source's rendition holds the key: never serve it as ours
        raise HttpError(409, "conflict", str(error.get("type")))
    if isinstance(cls, type) and issubclass(cls, (errors.RefusedSource, errors.OutputTooLarge,
                                                   errors.ByteBudgetExceeded)):
        raise HttpError(422, "unprocessable", str(error.get("type")))
    if isinstance(cls, type) and issubclass(cls, errors.StorageError):
        if "NoSuchKey" in str(error.get("message")) or "404" in str(error.get("message")):
            raise HttpError(404, "not_found", "source vanished")
    raise HttpError(500, "failed", str(error.get("type")))

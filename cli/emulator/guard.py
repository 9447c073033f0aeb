"""Only local programs may talk to the emulator: web pages open in the user's browser may not.

The emulator checks no signature and runs the code it is given, and binding to 127.0.0.1 does
not keep a browser out (the browser runs on the same machine). A page can reach it two ways:

* directly, cross-origin: a form POST or ``fetch`` from ``https://evil.example`` carries an
  ``Origin`` header (preflights too), an ``<img>``/``<script>`` GET a ``Sec-Fetch-Site``
  header and usually a ``Referer``;
* by DNS rebinding: ``evil.example`` resolves to 127.0.0.1 after the page loaded, so its
  requests are same-origin for the browser but carry ``Host: evil.example:PORT``.

`LocalOnly` refuses both with 403 before moto sees the request. The AWS CLI, boto3 and the SDKs
send none of these browser headers and use ``Host: 127.0.0.1:PORT`` (or ``localhost``), so they
pass unchanged; so does moto's own dashboard, served from the emulator's origin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The loopback names a local client may use in Host (and a page served by the emulator in Origin).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
# Sec-Fetch-Site values a browser sends for a request the user or the emulator's own page made.
_SAME_SITE_FETCHES = {"same-origin", "none"}

_DENIED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<Error><Code>AccessDenied</Code><Message>{reason}</Message></Error>"
)


class LocalOnly:
    """WSGI middleware: passes requests from local programs to ``app``, refuses browser cross-origin ones."""

    def __init__(self, app: Any, port: int, say: Callable[[str], None] = print):
        self.app, self.port, self.say = app, port, say
        suffix = "" if port == 80 else f":{port}"
        self.hosts = {f"{name}{suffix}" for name in LOOPBACK_NAMES}
        self.origins = {f"http://{host}" for host in self.hosts}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        reason = self.refusal(environ)
        if reason is None:
            return self.app(environ, start_response)
        self.say(f"refused {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}: {reason}")
        body = _DENIED.format(reason=_xml_text(reason)).encode("utf-8")
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def refusal(self, environ: dict[str, Any]) -> str | None:
        """Why this request may not reach the emulator, or None when a local program sent it."""
        host = environ.get("HTTP_HOST", "").lower()
        if host not in self.hosts:
            return f"Host {host or '(none)'!r} is not this emulator's address (expected 127.0.0.1:{self.port})"
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and origin.lower() not in self.origins:
            return f"cross-origin request from {origin!r}: web pages may not use the emulator"
        if origin is None and is_presigned_object_read(environ):
            return None  # an <img> of a gallery page (file:// or another port) reading one object
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None and site.lower() not in _SAME_SITE_FETCHES:
            return f"{site} request from a web page (Sec-Fetch-Site): web pages may not use the emulator"
        referer = environ.get("HTTP_REFERER")
        if referer is not None and _origin_of(referer) not in self.origins:
            return "request from another site's page (Referer): web pages may not use the emulator"
        return None


def is_presigned_object_read(environ: dict[str, Any]) -> bool:
    """A GET/HEAD of a presigned S3 URL: it reads one object and changes nothing.

    A gallery page (`imgproc gallery`, opened from disk) shows renditions through presigned
    URLs, so the browser loads them cross-site. Only plain object reads pass: no query API
    (``Action=``), no moto or execute-api paths, and never with an ``Origin`` (a script's
    ``fetch``): a page can display such an image but, without CORS, not read its bytes.
    """
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return False
    path = environ.get("PATH_INFO", "")
    if path.startswith(("/moto-api", "/_aws", "/_localstack")) or path.count("/") < 2:
        return False
    query = parse_qs(environ.get("QUERY_STRING", ""))
    presigned = "X-Amz-Signature" in query or {"Signature", "AWSAccessKeyId"} <= query.keys()  # SigV4 or SigV2
    return presigned and "Action" not in query


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

"""API Gateway (REST, Lambda proxy) on the emulator's own port, the way LocalStack addresses it:

    http://127.0.0.1:<port>/_aws/execute-api/<api-id>/<stage>/<path>?<query>

moto stores REST APIs (resources, methods, integrations, stages, API keys) but
does not serve them, so a WSGI middleware in front of moto's app does: it
matches the path against the API's resources ({param} and greedy {proxy+}),
builds the Lambda proxy event API Gateway sends (version 1.0: path and path
parameters still percent-encoded, single- and multi-value query strings and
headers, base64 bodies for the binary media types), invokes the integration's
function through the emulator's own Lambda Invoke, and turns the proxy response
(statusCode, headers, multiValueHeaders, base64 body) into HTTP. Everything
else goes to moto untouched.

The stack's `ApiUrl` output (https://<id>.execute-api.<region>.amazonaws.com/<stage>)
reads as this local URL while the emulator runs, so `imgproc sign --stack` prints
a URL that curl and a browser open directly.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from fnmatch import fnmatch
from typing import Any
from urllib.parse import parse_qsl

PREFIX = "/_aws/execute-api/"
_FUNCTION_ARN = re.compile(r":lambda:path/[^/]+/functions/(?P<arn>.+?)/invocations$")
_AWS_API_URL = re.compile(r"^https://(?P<api>[a-z0-9]+)\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?P<rest>/.*)?$")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]  # (function ARN, event) -> parsed proxy response


class GatewayError(Exception):
    """An answer API Gateway itself gives (the function is not called, or failed)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def local_api_url(value: str, endpoint: str) -> str:
    """The execute-api URL of a stack output -> the same API on the emulator; anything else unchanged."""
    m = _AWS_API_URL.match(value or "")
    if not m:
        return value
    return f"{endpoint}{PREFIX}{m['api']}{m['rest'] or ''}"


# --- routing ---------------------------------------------------------------------------------


def match(template: str, raw_path: str) -> dict[str, str] | None:
    """``/images/{preset}/{key+}`` against ``/images/thumb/a/b.jpg`` -> path parameters; None if no match.

    Values stay as sent (percent-encoded), as REST APIs deliver them.
    """
    want = [s for s in template.split("/") if s]
    have = raw_path.split("/")[1:] if raw_path != "/" else []
    params: dict[str, str] = {}
    for i, segment in enumerate(want):
        if segment.startswith("{") and segment.endswith("+}"):
            rest = have[i:]
            if not rest or any(s == "" for s in rest[:-1]) or rest == [""]:
                return None
            params[segment[1:-2]] = "/".join(rest)
            return params
        if i >= len(have) or have[i] == "":
            return None
        if segment.startswith("{") and segment.endswith("}"):
            params[segment[1:-1]] = have[i]
        elif segment != have[i]:
            return None
    return params if len(have) == len(want) else None


def _specificity(template: str) -> tuple[int, ...]:
    # Literal segments beat {param}, which beats {greedy+}: API Gateway's precedence.
    return tuple(0 if s.endswith("+}") else 1 if s.startswith("{") else 2 for s in template.split("/") if s)


def find_resource(resources: Iterable[Any], raw_path: str) -> tuple[Any, dict[str, str]] | None:
    found = [(r, p) for r in resources if (p := match(r.get_path(), raw_path)) is not None]
    if not found:
        return None
    return max(found, key=lambda rp: _specificity(rp[0].get_path()))


# --- the event and the response ---------------------------------------------------------------


def _headers(environ: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = "-".join(part.capitalize() for part in key[5:].split("_"))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key.replace("_", "-").title()
        else:
            continue
        found.setdefault(name, []).append(str(value))
    return found


def _query(raw: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    pairs = parse_qsl(raw, keep_blank_values=True)
    if not pairs:
        return None, None
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        multi.setdefault(key, []).append(value)
    return {k: v[-1] for k, v in multi.items()}, multi  # single-value form: the last one wins


def is_binary(content_type: str, binary_media_types: Iterable[str]) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return any(fnmatch(media, pattern.lower()) for pattern in binary_media_types)


def build_event(environ: dict[str, Any], api: Any, stage: str, raw_path: str, resource: Any,
                params: dict[str, str], body: bytes, api_key: Any = None) -> dict[str, Any]:
    """The Lambda proxy event (payload 1.0) API Gateway sends for this request."""
    method = environ["REQUEST_METHOD"].upper()
    headers = _headers(environ)
    single, multi = _query(environ.get("QUERY_STRING", ""))
    content_type = environ.get("CONTENT_TYPE", "")
    binary = bool(body) and is_binary(content_type, getattr(api, "binaryMediaTypes", None) or [])
    now = time.time()
    request_id = str(uuid.uuid4())
    return {
        "resource": resource.get_path(),
        "path": raw_path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in headers.items()} or None,
        "multiValueHeaders": headers or None,
        "queryStringParameters": single,
        "multiValueQueryStringParameters": multi,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": resource.id, "resourcePath": resource.get_path(), "httpMethod": method,
            "extendedRequestId": request_id, "requestId": request_id,
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000), "path": f"/{stage}{raw_path}", "accountId": api.account_id,
            "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"), "stage": stage,
            "domainPrefix": api.id, "domainName": environ.get("HTTP_HOST", ""), "apiId": api.id,
            "identity": {"sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                         "userAgent": environ.get("HTTP_USER_AGENT", ""),
                         "apiKey": getattr(api_key, "value", None), "apiKeyId": getattr(api_key, "id", None)},
        },
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")) if body else None,
        "isBase64Encoded": binary,
    }


def to_http(result: Any, binary: bool = True) -> tuple[int, list[tuple[str, str]], bytes]:
    """A Lambda proxy response -> (status, headers, body); a malformed one is API Gateway's 502.

    A base64 body is decoded when ``binary`` (the request's Accept matches a binary media type);
    otherwise API Gateway passes the base64 text through, and so does this.
    """
    if not isinstance(result, dict):
        raise GatewayError(502, "Internal server error")
    try:
        status = int(result.get("statusCode") or 200)
    except (TypeError, ValueError):
        raise GatewayError(502, "Internal server error") from None
    body = result.get("body") or ""
    if not isinstance(body, str) or not 100 <= status <= 599:
        raise GatewayError(502, "Internal server error")
    try:
        data = base64.b64decode(body, validate=True) if result.get("isBase64Encoded") and binary else body.encode()
    except ValueError:
        raise GatewayError(502, "Internal server error") from None
    headers: list[tuple[str, str]] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers += [(str(name), str(v)) for v in (values if isinstance(values, list) else [values])]
    named = {n.lower() for n, _ in headers}
    headers += [(str(n), str(v)) for n, v in (result.get("headers") or {}).items() if str(n).lower() not in named]
    return status, headers, data


# --- the middleware ---------------------------------------------------------------------------


def _apigateway_backends() -> Any:
    from moto.apigateway.models import apigateway_backends

    return apigateway_backends


def _find_api(api_id: str) -> Any:
    for _account, _region, backend in _apigateway_backends().iter_backends():
        if api_id in backend.apis:
            return backend, backend.apis[api_id]
    return None


def _valid_key(backend: Any, api_id: str, stage: str, value: str) -> Any:
    """The enabled API key with this value that a usage plan grants on this stage, else None."""
    for key in backend.keys.values():
        if key.value == value and key.enabled:
            for plan_id, plan_keys in backend.usage_plan_keys.items():
                plan = backend.usage_plans.get(plan_id)
                stages = getattr(plan, "api_stages", None) or []
                if key.id in plan_keys and any(s.get("apiId") == api_id and s.get("stage") == stage for s in stages):
                    return key
    return None


class ApiGatewayProxy:
    """WSGI: /_aws/execute-api/... is served here, every other request by ``app`` (moto)."""

    def __init__(self, app: WsgiApp, invoke: Invoke):
        self.app, self.invoke = app, invoke

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", ""))
        raw_path = raw.split("?", 1)[0]
        if not raw_path.startswith(PREFIX):
            return self.app(environ, start_response)
        try:
            status, headers, body = self.handle(environ, raw_path[len(PREFIX):])
        except GatewayError as exc:
            status, headers = exc.status, [("Content-Type", "application/json"),
                                           ("x-amzn-ErrorType", "ForbiddenException" if exc.status == 403 else "")]
            body = json.dumps({"message": exc.message}).encode()
        headers = [(n, v) for n, v in headers if v and n.lower() not in ("content-length", "transfer-encoding")]
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{status} {_reason(status)}", headers)
        return [b""] if environ["REQUEST_METHOD"].upper() == "HEAD" else [body]

    def handle(self, environ: dict[str, Any], rest: str) -> tuple[int, list[tuple[str, str]], bytes]:
        api_id, _, after = rest.partition("/")
        stage, _, path = after.partition("/")
        found = _find_api(api_id)
        if found is None:
            raise GatewayError(404, "Not Found")  # no such API: what an unknown execute-api host answers
        backend, api = found
        if stage not in api.stages:
            raise GatewayError(403, "Missing Authentication Token")
        raw_path = "/" + path
        route = find_resource(api.resources.values(), raw_path)
        method = environ["REQUEST_METHOD"].upper()
        methods = route[0].resource_methods if route else {}
        chosen = methods.get(method) or methods.get("ANY")
        if route is None or chosen is None:
            raise GatewayError(403, "Missing Authentication Token")  # API Gateway's answer for an unknown route
        key = None
        if chosen.api_key_required:
            key = _valid_key(backend, api.id, stage, str(environ.get("HTTP_X_API_KEY", "")))
            if key is None:
                raise GatewayError(403, "Forbidden")
        integration = chosen.method_integration
        target = _FUNCTION_ARN.search(getattr(integration, "uri", "") or "")
        if integration is None or integration.integration_type != "AWS_PROXY" or target is None:
            raise GatewayError(500, "Internal server error: only Lambda proxy integrations are emulated")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        event = build_event(environ, api, stage, raw_path, route[0], route[1], body, key)
        types = getattr(api, "binaryMediaTypes", None) or []
        accepts = [a for a in str(environ.get("HTTP_ACCEPT", "*/*")).split(",") if a.strip()]
        return to_http(self.invoke(target["arn"], event), any(is_binary(a, types) for a in accepts))


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- installing it into the emulator ----------------------------------------------------------


def lambda_invoker(endpoint: str) -> Invoke:
    """Invoke through the emulator's own Lambda API (the dispatcher runs the function)."""
    import boto3
    from botocore.config import Config

    clients: dict[str, Any] = {}

    def invoke(arn: str, event: dict[str, Any]) -> dict[str, Any]:
        region = arn.split(":")[3] if arn.count(":") >= 6 else "us-east-1"
        if region not in clients:
            clients[region] = boto3.client(
                "lambda", endpoint_url=endpoint, region_name=region, aws_access_key_id="test",
                aws_secret_access_key="test", config=Config(read_timeout=930, retries={"max_attempts": 0}))
        resp = clients[region].invoke(FunctionName=arn, Payload=json.dumps(event).encode())
        if resp.get("FunctionError"):
            raise GatewayError(502, "Internal server error")
        try:
            return json.loads(resp["Payload"].read() or b"null")
        except ValueError:
            raise GatewayError(502, "Internal server error") from None

    return invoke


def install(server: Any, endpoint: str) -> None:
    """Put the proxy inside the started emulator's guard; make stack outputs carry local API URLs.

    ``server`` is a GuardedMotoServer: the proxy goes between the guard and moto, so API
    requests are checked for origin and Host like every other request.
    """
    from moto.cloudformation.parsing import Output

    if not isinstance(server.guard.app, ApiGatewayProxy):
        server.wrap(lambda app: ApiGatewayProxy(app, lambda_invoker(endpoint)))

    def read(self: Any) -> str:
        return local_api_url(self.__dict__.get("value", ""), endpoint)

    def write(self: Any, value: str) -> None:
        self.__dict__["value"] = value  # stored as given: saved state stays valid for real-AWS form

    Output.value = property(read, write)  # type: ignore[assignment]
    _keep_binary_media_types()


def _keep_binary_media_types() -> None:
    """moto's CloudFormation drops a RestApi's BinaryMediaTypes; the stack's "*/*" must reach the API."""
    from moto.apigateway.models import RestAPI

    create = RestAPI.__dict__["create_from_cloudformation_json"]
    if getattr(create.__func__, "_imgproc", False):
        return

    def create_with_types(cls: Any, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
                          region_name: str, **kwargs: Any) -> Any:
        api = create.__func__(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        api.binaryMediaTypes = list((cloudformation_json.get("Properties") or {}).get("BinaryMediaTypes") or [])
        return api

    create_with_types._imgproc = True  # type: ignore[attr-defined]
    create_with_types._original = create  # type: ignore[attr-defined]
    RestAPI.create_from_cloudformation_json = classmethod(create_with_types)  # type: ignore[method-assign,assignment]


def uninstall(server: Any = None) -> None:
    from moto.apigateway.models import RestAPI
    from moto.cloudformation.parsing import Output

    if isinstance(Output.__dict__.get("value"), property):
        del Output.value  # type: ignore[misc]
    create = RestAPI.__dict__["create_from_cloudformation_json"]
    if getattr(create.__func__, "_imgproc", False):
        RestAPI.create_from_cloudformation_json = create.__func__._original  # type: ignore[method-assign]
    guard = getattr(server, "guard", None)
    if guard is not None and isinstance(guard.app, ApiGatewayProxy):
        guard.app = guard.app.app

"""The retrieval API's signing keys and signed URLs: the SSM key ring, and building a URL.

Used by `imgproc sign` and by `imgproc deploy --api` (which creates the key
parameter before the stack).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from cli.aws.errors import AWS_ERRORS
from cli.aws.target import AwsTarget
from cli.deploy import changeset
from cli.deploy.template_api import ApiSettings
from core import signing
from core.errors import ConfigError, ImgprocError

DEFAULT_STACK = "imgproc"
MAX_EXPIRY = 366 * 86400


def new_keyring_text(kid: str | None = None) -> str:
    """A fresh key ring with one random 256-bit key, as stored in SSM."""
    kid = kid or time.strftime("k%Y%m%d", time.gmtime())
    return json.dumps({kid: secrets.token_urlsafe(32)})


def ensure_signing_keys(ssm: Any, name: str) -> bool:
    """Create SecureString ``name`` with one random key unless it exists; True when created.

    CloudFormation cannot create SecureString parameters, so deploy calls this
    before the stack. An existing parameter is never changed (rotation is
    yours: put a new key first, keep the old one until its URLs expire).
    """
    try:
        ssm.get_parameter(Name=name, WithDecryption=False)
        return False
    except AWS_ERRORS as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
        if code != "ParameterNotFound":
            raise ImgprocError(f"SSM parameter {name}: {code or exc}") from None
    ssm.put_parameter(Name=name, Type="SecureString", Value=new_keyring_text(),
                      Description="imgproc retrieval API signing keys: {\"key-id\": \"secret\"}, first key signs")
    return True


@dataclass(frozen=True)
class SignRequest:
    """Everything `sign` needs, parsed from the flags before any AWS call."""

    preset: str
    key: str
    expires: int
    kid: str | None
    base_url: str | None
    stack: str | None
    keys_param: str | None
    secret: str | None

    @classmethod
    def create(cls, path: str, expires_in: str, kid: str | None, base_url: str | None, stack: str | None,
               param: str | None, secret: str | None, api: ApiSettings, now: float) -> SignRequest:
        try:
            preset, key = signing.split_path(path if path.lstrip("/").startswith("images/") else f"/images/{path.lstrip('/')}")
            seconds = signing.parse_duration(expires_in)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        problem = signing.unsafe_key_reason(key)
        if problem:
            raise ConfigError(f"{key!r}: {problem}; the API would refuse it")
        if seconds > MAX_EXPIRY:
            raise ConfigError(f"--expires {expires_in}: at most 366d")
        if base_url and not base_url.startswith(("https://", "http://")):
            raise ConfigError(f"--base-url {base_url!r}: expected https://...")
        return cls(preset, key, int(now) + seconds, kid, base_url or api.base_url or None, stack,
                   param or api.signing_keys_param or None, secret)


def read_keyring(req: SignRequest, target: AwsTarget, outputs: Mapping[str, str],
                 stack_name: str = DEFAULT_STACK) -> signing.KeyRing:
    """The key ring: offline from --secret (bare secret or JSON ring), else from SSM."""
    if req.secret:
        text = req.secret.strip()
        if text.startswith("{"):
            return signing.parse_keyring(text, "--secret")
        return signing.single_key(text, req.kid or "default")
    name = req.keys_param or outputs.get("SigningKeysParam") or ApiSettings().keys_param(stack_name)
    try:
        resp = target.client("ssm").get_parameter(Name=name, WithDecryption=True)
    except AWS_ERRORS as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "") or type(exc).__name__
        raise ImgprocError(f"cannot read signing keys from SSM parameter {name}: {code}") from None
    return signing.parse_keyring(resp["Parameter"]["Value"], f"SSM parameter {name}")


def stack_outputs(target: AwsTarget, stack: str) -> dict[str, str]:
    try:
        resp = target.client("cloudformation").describe_stacks(StackName=stack)
    except AWS_ERRORS as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Message", "") or type(exc).__name__
        raise ImgprocError(f"stack {stack}: {code}") from None
    return changeset.stack_outputs(resp["Stacks"][0], target.endpoint_url)


def build_url(req: SignRequest, ring: signing.KeyRing, outputs: Mapping[str, str]) -> str:
    base = req.base_url or outputs.get("ApiUrl") or ""
    if req.stack and not base:
        raise ImgprocError(f"stack {req.stack} has no ApiUrl output: deploy it with `imgproc deploy --api`")
    if req.kid and req.kid not in ring:
        raise ConfigError(f"--key-id {req.kid}: no such key (active: {', '.join(ring.keys)})")
    path = signing.canonical_path(req.preset, req.key)
    include_kid = not (req.secret and not req.secret.strip().startswith("{") and not req.kid)
    query = signing.sign(path, ring, req.expires, req.kid, include_kid=include_kid)
    from urllib.parse import urlencode

    return f"{base.rstrip('/')}{path}?{urlencode(query)}"


def prepare_api(target: AwsTarget, config: Any, stack: str, console: Console) -> None:
    """Before `deploy --api` (signed mode): make sure the key parameter exists."""
    api = ApiSettings.from_table(config.extra.get("api"), config.source)
    if api.auth == "signed":
        name = api.keys_param(stack)
        if ensure_signing_keys(target.client("ssm"), name):
            console.print(f"created SSM SecureString {name} with a new signing key", soft_wrap=True, markup=False)

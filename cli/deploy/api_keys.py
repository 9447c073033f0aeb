"""The retrieval API's signing keys and signed URLs: the SSM key ring, and building a URL.

Used by `imgproc sign` and by `imgproc deploy --api` (which creates the key
parameter after the stack, encrypted under the stack's KMS key).
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


def new_keyring_text(kid: str | None = None) -> str:
    """A fresh key ring with one random 256-bit key, as stored in SSM."""
    kid = kid or time.strftime("k%Y%m%d", time.gmtime())
    return json.dumps({kid: secrets.token_urlsafe(32)})


def ensure_signing_keys(ssm: Any, name: str, kms_key: str | None = None) -> str:
    """Make SecureString ``name`` exist, encrypted under ``kms_key``; says what it did ("" = nothing).

    Missing: created with one random key ("created"). Present under another KMS
    key (e.g. the AWS-managed aws/ssm, readable by anyone with ssm:GetParameter):
    the same value is written again under ``kms_key`` ("re-encrypted"). The keys
    themselves are never changed (rotation is yours: put a new key first, keep
    the old one until its URLs expire).
    """
    current = _parameter_kms_key(ssm, name)
    extra = {"KeyId": kms_key} if kms_key else {}
    if current is None:
        ssm.put_parameter(Name=name, Type="SecureString", Value=new_keyring_text(), **extra,
                          Description="imgproc retrieval API signing keys: {\"key-id\": \"secret\"}, first key signs")
        return "created"
    if not kms_key or current == kms_key:
        return ""
    value = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Type="SecureString", Value=value, KeyId=kms_key, Overwrite=True)
    return "re-encrypted"


def _parameter_kms_key(ssm: Any, name: str) -> str | None:
    """The KMS key id of SecureString ``name`` ("alias/aws/ssm" for the AWS-managed key), None when absent."""
    try:
        found = ssm.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
    except AWS_ERRORS as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
        raise ImgprocError(f"SSM parameter {name}: {code or exc}") from None
    if not found:
        return None
    if found[0].get("Type") != "SecureString":
        raise ImgprocError(f"SSM parameter {name} is a {found[0].get('Type')}, not a SecureString: delete it first")
    return str(found[0].get("KeyId") or "alias/aws/ssm")


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
        if seconds > signing.MAX_VALIDITY_SECONDS:  # the API refuses longer-lived URLs
            raise ConfigError(f"--expires {expires_in}: at most {signing.MAX_VALIDITY_SECONDS // 86400}d")
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


def key_users(config: Any, caller_arn: str) -> dict[str, str]:
    """The template parameter naming who may use the stack's signing key: the deployer and [api].signing_key_users."""
    from cli.deploy.template_api import KEY_USERS_PARAM, principal_patterns

    api = ApiSettings.from_table(config.extra.get("api"), config.source)
    if not api.creates_kms_key:
        return {}
    return {KEY_USERS_PARAM: ",".join([*principal_patterns(caller_arn), *api.signing_key_users])}


def secure_api_keys(target: AwsTarget, config: Any, stack: str, outputs: Mapping[str, str], console: Console) -> None:
    """After `deploy --api` (signed mode): the key parameter exists, encrypted under the stack's KMS key."""
    api = ApiSettings.from_table(config.extra.get("api"), config.source)
    if api.auth != "signed":
        return
    name = api.keys_param(stack)
    kms_key = outputs.get("SigningKmsKeyArn") or api.signing_kms_key or None
    done = ensure_signing_keys(target.client("ssm"), name, kms_key)
    if done:
        console.print(f"{done} SSM SecureString {name} with {'a new signing key' if done == 'created' else 'its keys'}"
                      f" under KMS key {kms_key or 'aws/ssm'}", soft_wrap=True, markup=False)

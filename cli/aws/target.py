"""Where AWS calls go: one resolution of endpoint, profile and region for every command.

`--endpoint-url`, `--profile`, `--region` and `--localstack` mean the same in
every cloud command. Precedence, for each: the flag, then the standard AWS
environment (`AWS_ENDPOINT_URL`; `AWS_PROFILE`; `AWS_REGION`, then
`AWS_DEFAULT_REGION`), then the `[aws]` table of imgproc.toml, then the
profile's own configured region.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cli.aws.clients import ClientFactory
from cli.errors import UsageError

LOCALSTACK_URL = "http://localhost:4566"
AWS_TABLE_KEYS = ("endpoint_url", "profile", "region")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


@dataclass(frozen=True)
class AwsTarget:
    """One resolved AWS destination; builds the session and clients on demand, once."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    _factory: ClientFactory | None = field(default=None, compare=False, repr=False)

    @classmethod
    def resolve(
        cls,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        localstack: bool = False,
        defaults: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> AwsTarget:
        """Merge flags over the environment over the `[aws]` table of imgproc.toml (``defaults``)."""
        env = os.environ if environ is None else environ
        table = dict(defaults or {})
        unknown = sorted(set(table) - set(AWS_TABLE_KEYS))
        if unknown:
            raise UsageError(f"aws.{unknown[0]}: unknown key (known: {', '.join(AWS_TABLE_KEYS)}) in imgproc.toml")
        if localstack:
            endpoint_url = endpoint_url or LOCALSTACK_URL
        return cls(
            endpoint_url=endpoint_url or env.get("AWS_ENDPOINT_URL") or table.get("endpoint_url") or None,
            profile=profile or env.get("AWS_PROFILE") or table.get("profile") or None,
            region=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or table.get("region") or None,
        )

    @property
    def factory(self) -> ClientFactory:
        if self._factory is None:
            object.__setattr__(self, "_factory", ClientFactory(self.profile, self.region, self.endpoint_url))
        assert self._factory is not None
        return self._factory

    def session(self) -> Any:
        return self.factory.session()

    def client(self, service: str, **config: Any) -> Any:
        """A cached client with the project's one retry/timeout policy."""
        return self.factory.client(service, **config)

    def region_name(self) -> str | None:
        """The region calls go to: the resolved one, else the profile's."""
        return self.region or self.session().region_name

    def require_region(self) -> str:
        """The region, validated; a one-line usage error when there is none."""
        region = self.region_name()
        if not region:
            raise UsageError("no AWS region: pass --region, set AWS_REGION, or add region to [aws] in imgproc.toml")
        if not _REGION.match(region):
            raise UsageError(f"{region!r} is not an AWS region name (e.g. eu-west-1)")
        return region

    def plain_http(self) -> bool:
        """True for an emulator on plain http, where a TLS-only bucket policy would deny every call."""
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or ""
        return endpoint.startswith("http://")

    def describe(self, account: str | None = None) -> str:
        """Where calls go, for the one line printed before a change: the endpoint, or the AWS account
        (``account``, from sts get-caller-identity) and region, and the profile when one is named."""
        region = self.region_name() or "?"
        if self.endpoint_url:
            return f"endpoint {self.endpoint_url} (region {region})"
        profile = f" (profile {self.profile})" if self.profile else ""
        return f"AWS account {account or '?'}, region {region}{profile}"

    def account(self) -> str:
        """The account the credentials belong to (sts get-caller-identity)."""
        return str(self.client("sts").get_caller_identity()["Account"])

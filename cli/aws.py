"""Where AWS calls go: the target options every cloud command shares.

`--endpoint-url`, `--profile`, `--region` and `--localstack` mean the same in
`deploy`, `push`, `status`, `destroy`, `logs`, `stats`, `invoke` and `local`.
Precedence: the flag, then the standard AWS environment (boto3 reads
`AWS_ENDPOINT_URL`, `AWS_PROFILE`, `AWS_REGION` itself), then the `[aws]`
table of imgproc.toml.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Annotated, Any

import typer

LOCALSTACK_URL = "http://localhost:4566"

EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="Send AWS calls here (LocalStack, moto's server). Default: AWS_ENDPOINT_URL or real AWS.",
        show_default=False,
    ),
]
ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="AWS profile to use.", show_default=False)
]
RegionOpt = Annotated[
    str | None, typer.Option("--region", help="AWS region, e.g. eu-west-1.", show_default=False)
]
LocalstackOpt = Annotated[
    bool, typer.Option("--localstack", help=f"Shortcut for --endpoint-url {LOCALSTACK_URL}.")
]


@dataclass(frozen=True)
class AwsTarget:
    """One resolved AWS destination; builds sessions and clients on demand."""

    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None

    @classmethod
    def resolve(
        cls,
        endpoint_url: str | None = None,
        profile: str | None = None,
        region: str | None = None,
        localstack: bool = False,
        defaults: dict[str, Any] | None = None,
    ) -> "AwsTarget":
        """Merge flags over the `[aws]` table of imgproc.toml (``defaults``)."""
        defaults = defaults or {}
        if localstack:
            endpoint_url = endpoint_url or LOCALSTACK_URL
        return cls(
            endpoint_url=endpoint_url or defaults.get("endpoint_url"),
            profile=profile or defaults.get("profile"),
            region=region or defaults.get("region"),
        )

    def session(self):
        import boto3  # imported here so `imgproc process` never pays for boto3

        return boto3.Session(profile_name=self.profile, region_name=self.region)

    def client(self, service: str, **config: Any):
        """A client with botocore's standard retry mode (throttling and 5xx retried)."""
        from botocore.config import Config

        kwargs: dict[str, Any] = {}
        if self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL"):
            # Emulators answer on plain host names such as localhost, where the
            # virtual-host style (bucket.localhost) needs DNS the machine may not have.
            config.setdefault("s3", {"addressing_style": "path"})
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        kwargs["config"] = Config(retries={"mode": "standard", "max_attempts": 5}, **config)
        return self.session().client(service, **kwargs)

    def region_name(self) -> str | None:
        return self.session().region_name

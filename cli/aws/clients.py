"""The one place boto3 clients are made: one retry and timeout policy for every command."""

from __future__ import annotations

from typing import Any

# botocore's standard retry mode retries throttling and 5xx with backoff; the
# timeouts keep a dead endpoint from hanging a command for botocore's 60 s default.
RETRIES = {"mode": "standard", "max_attempts": 5}
CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60


def boto_config(emulator: bool, **overrides: Any) -> Any:
    """The botocore ``Config`` every client gets; ``overrides`` add per-client settings."""
    from botocore.config import Config

    if emulator:
        # Emulators answer on plain host names such as localhost, where the
        # virtual-host style (bucket.localhost) needs DNS the machine may not have.
        overrides.setdefault("s3", {"addressing_style": "path"})
    overrides.setdefault("retries", RETRIES)
    overrides.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    overrides.setdefault("read_timeout", READ_TIMEOUT_S)
    return Config(**overrides)


class ClientFactory:
    """One boto3 session per target and one client per (service, settings), made on first use."""

    def __init__(self, profile: str | None, region: str | None, endpoint_url: str | None):
        self.profile, self.region, self.endpoint_url = profile, region, endpoint_url
        self._session: Any = None
        self._clients: dict[tuple[Any, ...], Any] = {}

    def session(self) -> Any:
        if self._session is None:
            import boto3  # imported here so `imgproc process` never pays for boto3

            self._session = boto3.Session(profile_name=self.profile, region_name=self.region)
        return self._session

    def client(self, service: str, **config: Any) -> Any:
        key = (service, tuple(sorted((k, repr(v)) for k, v in config.items())))
        if key not in self._clients:
            kwargs: dict[str, Any] = {"config": boto_config(bool(self.endpoint_url), **config)}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[key] = self.session().client(service, **kwargs)
        return self._clients[key]

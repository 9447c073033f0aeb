"""What every cloud command resolves first: the presets file, the [deploy] settings, the AWS target.

This is the one way the CLI finds its AWS target: deploy, status, destroy,
push, logs, stats, sign and invoke all come through `resolve`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from cli.aws.target import AwsTarget
from cli.console import load_config
from cli.deploy import package as pkg
from cli.deploy.settings import DeploySettings
from cli.errors import UsageError
from core.errors import ImgprocError
from core.recipe import Config


@dataclass
class Context:
    """One command's presets, deploy settings and AWS target."""

    config: Config
    config_path: Path | None
    settings: DeploySettings
    target: AwsTarget

    def presets(self) -> tuple[str, ...]:
        """The preset names the function renders (validated against the presets file)."""
        names = self.settings.presets or tuple(self.config.presets)
        try:
            self.config.select(names)
        except ImgprocError as exc:
            raise UsageError(f"deploy.presets: {exc}") from None
        return tuple(names)

    def announce(self, console: Console, account: str | None = None) -> None:
        """The one line a changing command prints first (on stderr): where its changes will go.

        A shell without AWS_ENDPOINT_URL silently targets real AWS: the line names the account and
        region then (asking STS when ``account`` is not known yet), or the emulator's endpoint.
        """
        if not self.target.endpoint_url and account is None:
            account = self.target.account()
        console.print(f"target: {escape(self.target.describe(account))}", soft_wrap=True)

    def region(self) -> str:
        """The validated region; pins it on the target so every client uses the same one."""
        region = self.target.require_region()
        if not self.target.region:
            self.target = dataclasses.replace(self.target, region=region, _factory=None)
        return region


def resolve(config: Path | None, stack: str | None = None, arch: str | None = None,
            endpoint_url: str | None = None, profile: str | None = None, region: str | None = None,
            localstack: bool = False) -> Context:
    """Read imgproc.toml once and merge the flags over it (ConfigError -> exit 2 at the edge)."""
    cfg = load_config(config)
    settings = DeploySettings.from_table(cfg.extra.get("deploy"), cfg.source)
    settings = settings.replace(stack_name=stack, architecture=arch)
    target = AwsTarget.resolve(endpoint_url, profile, region, localstack, defaults=cfg.extra.get("aws"))
    return Context(cfg, pkg.default_config_path(config, Path.cwd()), settings, target)

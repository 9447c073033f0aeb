"""The steps of `imgproc deploy` before the change set: names free for a new stack, the package staged.

The command renders; these return values and report progress through a callback.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.deploy import artifacts as art
from cli.deploy import buckets as bkt
from cli.deploy import changeset
from cli.deploy import package as pkg
from cli.deploy.context import Context
from cli.errors import DeployError


@dataclass(frozen=True)
class Staged:
    """The package, built and in the artifact bucket, as the template refers to it."""

    built: pkg.Package
    bucket: str
    uploaded: bool  # False: the same bytes were already there (checksum verified)

    @property
    def parameters(self) -> dict[str, str]:
        return {"CodeBucket": self.bucket, "CodeKey": self.built.key}


def check_names_free(ctx: Context, doc: dict[str, Any], account: str, region: str) -> None:
    """A new stack cannot create buckets or log groups that a previous `destroy` kept: say so first."""
    s = ctx.settings
    if changeset.describe_stack(ctx.target.client("cloudformation"), s.stack_name) is not None:
        return  # an update: the stack owns its names already
    s3 = ctx.target.client("s3")
    taken = [b for b in s.bucket_names(account, region) if art.bucket_exists(s3, b)]
    if taken:
        raise DeployError(f"bucket {taken[0]} already exists (kept by an earlier `imgproc destroy`?); the new "
                          f"stack cannot create it: `imgproc destroy --delete-data` removes what a stack kept, "
                          f"or set deploy.input_bucket/deploy.output_bucket to new names")
    kept_logs = bkt.existing_log_groups(ctx.target.client("logs"), bkt.log_group_names(doc))
    if kept_logs:
        raise DeployError(f"log group {kept_logs[0]} already exists (kept by an earlier `imgproc destroy`?); the "
                          f"new stack cannot create it: `aws logs delete-log-group --log-group-name "
                          f"{kept_logs[0]}` (or export what you need first)")


def stage_package(ctx: Context, account: str, region: str, say: Callable[[str], None]) -> Staged:
    """Build the zip (the same file `imgproc package` writes) and put it in the artifact bucket."""
    s = ctx.settings
    built = pkg.build(Path("build") / f"imgproc-lambda-{s.architecture}.zip", s.architecture, ctx.config_path)
    s3 = ctx.target.client("s3")
    bucket = art.artifact_bucket_name(account, region)
    if art.ensure_artifact_bucket(s3, bucket, region, account, tls_policy=not ctx.target.plain_http()):
        say(f"created artifact bucket {bucket}")
    return Staged(built, bucket, art.upload_artifact(s3, bucket, built.key, built.path))

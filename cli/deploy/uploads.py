"""Uploading a folder to the deployed input bucket, and waiting for its renditions.

Uploads run concurrently; an object whose size and ETag (MD5) already match
the local file is skipped. Waiting polls the output bucket for every rendition
key the function will write (core.naming.s3_output_key with the deployed
presets) and reads the function's log for images it refused.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.aws.errors import AWS_ERRORS, aws_error
from cli.aws.owner import expect_owner, stack_account, verify_owned
from cli.console import ExitCode
from cli.errors import DeployError, fail
from core.errors import ImgprocError
from core.jobs import META_SOURCE_ETAG
from core.naming import s3_output_key

IMAGE_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".gif": "image/gif", ".tif": "image/tiff", ".tiff": "image/tiff", ".bmp": "image/bmp",
    ".avif": "image/avif",
}


@dataclass
class Upload:
    path: Path
    key: str
    size: int
    md5: str
    content_type: str
    outcome: str = ""  # uploaded / unchanged / failed
    error: str = ""
    done_at: float = 0.0


FAILURE_POLL_S = 2.0  # how often --wait reads the function's log for failed images


@dataclass
class Target:
    """Where uploads go and where renditions appear, read from the deployed stack."""

    input_bucket: str
    output_bucket: str
    input_prefix: str
    output_prefix: str
    presets: tuple[str, ...]
    suffixes: tuple[str, ...] = ()  # the notification's suffix filters ([] = every key triggers)
    log_group: str = ""  # the function's log group: where --wait learns of failed images
    account: str = ""  # the stack's account: the one that must own both buckets

    def guard(self, s3) -> None:
        """Every call on ``s3`` to the stack's buckets names the stack's account as their owner, and
        the input bucket must exist and be that account's (DeployError otherwise)."""
        expect_owner(s3, [self.input_bucket, self.output_bucket], self.account)
        if not verify_owned(s3, self.input_bucket, self.account, "input bucket"):
            raise DeployError(f"input bucket {self.input_bucket} does not exist (run `imgproc status`)")

    def triggers(self, key: str) -> bool:
        return key.startswith(self.input_prefix) and (not self.suffixes or key.endswith(self.suffixes))


def collect(src: Path, key_prefix: str) -> list[Upload]:
    """The images under SRC (or SRC itself), hidden files skipped, keys '/'-separated."""
    if src.is_file():
        paths, root = [src], src.parent
    elif src.is_dir():
        paths = [p for p in sorted(src.rglob("*")) if p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(src).parts)]
        root = src
    else:
        fail(f"{src}: no such file or folder")
    uploads = []
    for p in paths:
        ctype = IMAGE_TYPES.get(p.suffix.lower())
        if ctype is None and src.is_dir():
            continue
        data = p.read_bytes()
        ctype = ctype or mimetypes.guess_type(p.name)[0] or "application/octet-stream"
        uploads.append(Upload(p, key_prefix + p.relative_to(root).as_posix(), len(data),
                              hashlib.md5(data).hexdigest(), ctype))
    return uploads


def upload_one(s3, bucket: str, up: Upload) -> Upload:
    try:
        head = s3.head_object(Bucket=bucket, Key=up.key)
        if head.get("ContentLength") == up.size and head.get("ETag", "").strip('"') == up.md5:
            up.outcome = "unchanged"
            return up
    except AWS_ERRORS as exc:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code not in ("404", "NoSuchKey", "NotFound"):
            up.outcome, up.error = "failed", _err(exc)
            return up
    try:
        with open(up.path, "rb") as fh:
            s3.put_object(Bucket=bucket, Key=up.key, Body=fh, ContentType=up.content_type)
        up.outcome, up.done_at = "uploaded", time.time()
    except AWS_ERRORS as exc:
        up.outcome, up.error = "failed", _err(exc)
    return up


def _err(exc: Exception) -> str:
    return aws_error(exc)


def upload_all(s3, bucket: str, uploads: list[Upload], jobs: int, console: Console) -> None:
    with Progress(TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("push", total=len(uploads))
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for fut in as_completed([pool.submit(upload_one, s3, bucket, u) for u in uploads]):
                fut.result()
                progress.advance(task)


def expected_keys(t: Target, config: Any, up: Upload) -> list[str]:
    return [s3_output_key(t.output_prefix, up.key, r, config.naming) for r in config.select(t.presets)]


def wait_for(s3, t: Target, config: Any, uploads: list[Upload], timeout: float, console: Console,
             failures: Callable[[], dict[str, str]] = dict) -> tuple[dict[str, float], list[str], dict[str, str]]:
    """Poll until every rendition of every uploaded source appears (written for this upload)
    or the function logs that the source failed.

    Returns ({source key: seconds from upload to its last rendition}, [missing rendition keys],
    {source key: the function's error line}).
    """
    pending = {u.key: (u, set(expected_keys(t, config, u))) for u in uploads}
    latency: dict[str, float] = {}
    failed: dict[str, str] = {}
    deadline = time.time() + timeout
    total = sum(len(keys) for _, keys in pending.values())
    next_log_read = time.time() + FAILURE_POLL_S
    with Progress(TextColumn("waiting for renditions"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("wait", total=total)
        while pending and time.time() < deadline:
            for key, (up, keys) in list(pending.items()):
                for out_key in list(keys):
                    if _is_current(s3, t.output_bucket, out_key, up):
                        keys.discard(out_key)
                        progress.advance(task)
                if not keys:
                    latency[key] = time.time() - up.done_at
                    del pending[key]
            if pending and time.time() >= next_log_read:
                # A source the function refused will never get renditions: stop waiting for it.
                for key, error in failures().items():
                    if key in pending:
                        failed[key] = error
                        progress.advance(task, len(pending.pop(key)[1]))
                next_log_read = time.time() + FAILURE_POLL_S
            if pending:
                time.sleep(0.5)
    missing = sorted(k for _, keys in pending.values() for k in keys)
    return latency, missing, failed


def without_renditions(s3, t: Target, config: Any, uploads: list[Upload], jobs: int = 8) -> list[Upload]:
    """The already-uploaded files (unchanged) that lack a rendition made from them: nothing will
    render them by itself (the upload that should have triggered it is long past)."""
    def lacking(up: Upload) -> bool:
        return not all(_is_current(s3, t.output_bucket, key, up) for key in expected_keys(t, config, up))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return [u for u, missing in zip(uploads, pool.map(lacking, uploads), strict=True) if missing]


def failure_reader(logs_client, log_group: str, since: float) -> Callable[[], dict[str, str]]:
    """{source key: "ErrorType: message"} for images the function logged as failed since ``since``."""
    from cli.logs.render import IMAGE, classify
    from cli.logs.source import Fetcher

    fetcher = Fetcher(logs_client, log_group, filter_pattern='"failed"')

    def read() -> dict[str, str]:
        try:
            events = fetcher.fetch(int(since * 1000))
        except ImgprocError:
            return {}  # no log group yet (nothing ran) or logs unreadable: keep waiting on S3 alone
        found = {}
        for line in map(classify, events):
            data = line.data  # set for every IMAGE line
            if line.kind == IMAGE and data is not None and data.get("outcome") == "failed":
                error = data.get("error") or {}
                found[str(data.get("key"))] = f"{error.get('type', 'Error')}: {error.get('message', '')}"
        return found

    return read


def _is_current(s3, bucket: str, key: str, up: Upload) -> bool:
    """The rendition exists and was made from this upload (source ETag metadata, else its time)."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except AWS_ERRORS:
        return False
    etag = head.get("Metadata", {}).get(META_SOURCE_ETAG)
    if etag:
        return etag == up.md5
    modified = head.get("LastModified")
    return modified is not None and modified.timestamp() >= up.done_at - 2


def read_target(ctx) -> Target:
    """Buckets from the stack outputs; prefixes and presets from the function's environment."""
    from cli.deploy.changeset import describe_stack, stack_outputs

    name = ctx.settings.stack_name
    stack = describe_stack(ctx.target.client("cloudformation"), name)
    if stack is None:
        fail(f"no stack named {name} (run `imgproc deploy`)", ExitCode.FAILED)
    outputs = stack_outputs(stack)
    if not outputs.get("InputBucketName"):
        fail(f"stack {name} has no InputBucketName output (run `imgproc status`)", ExitCode.FAILED)
    env: dict[str, str] = {}
    if outputs.get("FunctionName"):
        try:
            env = ctx.target.client("lambda").get_function_configuration(
                FunctionName=outputs["FunctionName"]).get("Environment", {}).get("Variables", {})
        except AWS_ERRORS:
            env = {}
    s = ctx.settings
    presets = tuple(p for p in env.get("IMGPROC_PRESETS", "").split(",") if p) or s.presets or tuple(ctx.config.presets)
    return Target(outputs["InputBucketName"], outputs.get("OutputBucketName", ""),
                  env.get("IMGPROC_INPUT_PREFIX", s.input_prefix), env.get("IMGPROC_OUTPUT_PREFIX", s.output_prefix),
                  presets, _deployed_suffixes(ctx, name), outputs.get("LogGroupName", ""), stack_account(stack))


def _deployed_suffixes(ctx, stack_name: str) -> tuple[str, ...]:
    """The suffix filters of the deployed notification (read from the stack's template)."""
    from cli.deploy.changeset import template_body

    try:
        doc = template_body(ctx.target.client("cloudformation"), stack_name)
    except AWS_ERRORS:
        return ()
    entries = (doc.get("Resources", {}).get("InputBucket", {}).get("Properties", {})
               .get("NotificationConfiguration", {}).get("LambdaConfigurations", []))
    suffixes = []
    for e in entries:
        rules = e.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        values = [r["Value"] for r in rules if r.get("Name", "").lower() == "suffix"]
        if not values:
            return ()  # one entry without a suffix filter: every key triggers
        suffixes += values
    return tuple(suffixes)

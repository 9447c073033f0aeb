"""What `imgproc reprocess` would send: every source in the input bucket, classified.

The deployed function is asked what it renders (``{"imgproc": "describe"}``: its
renditions and their recipe hashes, which include the function's own Pillow version), so
the plan judges outputs exactly as the function's idempotency check will. Each source is

* ``current``  every rendition exists, made from this source version with its recipe;
* ``missing``  at least one rendition does not exist (never rendered: a broken trigger);
* ``stale``    every rendition exists, but one was made from an older version of the
               source or with another recipe (a preset change);
* ``failed``   not current, and the function logged a failure for this source after it was
               last uploaded (read from the function's log group): not sent again unless
               ``retry_failed`` (a corrupt image fails again; fix or delete it first).

Nothing is rendered here; the plan only reads (ListObjectsV2, HeadObject, FilterLogEvents).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cli.aws.errors import AWS_ERRORS, aws_error, error_code
from cli.errors import DeployError
from core.jobs import META_RECIPE, META_RENDITION_RECIPE, META_SOURCE_ETAG
from core.naming import s3_output_key

CURRENT, MISSING, STALE, FAILED = "current", "missing", "stale", "failed"
CATEGORIES = (CURRENT, MISSING, STALE, FAILED)
HEAD_CONCURRENCY = 16


@dataclass(frozen=True)
class DeployedRendition:
    name: str
    format: str
    label: str
    recipe: str

    @property
    def ext(self) -> str:
        return self.label.rpartition(".")[2]


@dataclass(frozen=True)
class Deployed:
    """The stack as reprocess sees it: buckets, prefixes, renditions, and where to send work."""

    stack: str
    input_bucket: str
    output_bucket: str
    input_prefix: str
    output_prefix: str
    suffixes: tuple[str, ...]
    recipe: str  # the rendition set's hash
    renditions: tuple[DeployedRendition, ...]
    presets: dict[str, tuple[str, ...]]  # preset -> rendition labels
    function_name: str
    function_arn: str = ""
    queue_url: str = ""  # queue mode's upload queue
    batch_role_arn: str = ""
    log_group: str = ""
    naming: str = "stem"  # the function's [output] naming (core.naming)

    def triggers(self, key: str) -> bool:
        return key.startswith(self.input_prefix) and (not self.suffixes or key.endswith(self.suffixes))

    def output_key(self, source_key: str, r: DeployedRendition) -> str:
        # The same naming rule the function uses (core.naming), with the deployed name and extension.
        return s3_output_key(self.output_prefix, source_key, _Named(r.name, r.ext),  # type: ignore[arg-type]
                             self.naming)

    def selected(self, presets: Iterable[str]) -> tuple[DeployedRendition, ...]:
        """The renditions of these presets (all when none are named); UsageError names an unknown one."""
        from cli.errors import UsageError

        names = list(presets)
        if not names:
            return self.renditions
        unknown = [p for p in names if p not in self.presets]
        if unknown:
            raise UsageError(f"--preset {unknown[0]}: the deployed function renders {', '.join(self.presets)}")
        labels = {label for p in names for label in self.presets[p]}
        return tuple(r for r in self.renditions if r.label in labels)


@dataclass(frozen=True)
class _Named:
    name: str
    ext: str


@dataclass
class Source:
    key: str
    etag: str
    size: int
    modified: float  # epoch seconds
    category: str = ""
    renditions: dict[str, str] = field(default_factory=dict)  # label -> current / missing / stale-source / stale-recipe
    error: str = ""  # the function's last failure, when category is failed


@dataclass
class Plan:
    deployed: Deployed
    sources: list[Source]
    retry_failed: bool = False
    seconds: float = 0.0

    def by(self, category: str) -> list[Source]:
        return [s for s in self.sources if s.category == category]

    @property
    def to_send(self) -> list[Source]:
        wanted = {MISSING, STALE} | ({FAILED} if self.retry_failed else set())
        return [s for s in self.sources if s.category in wanted]

    def counts(self) -> dict[str, int]:
        found = Counter(s.category for s in self.sources)
        return {c: found.get(c, 0) for c in CATEGORIES}

    def rendition_counts(self) -> dict[str, int]:
        """How many renditions of the sources to send are missing or stale (what will be rendered)."""
        found = Counter(state for s in self.to_send for state in s.renditions.values() if state != CURRENT)
        return dict(sorted(found.items()))

    def as_json(self) -> dict[str, Any]:
        return {
            "stack": self.deployed.stack, "input_bucket": self.deployed.input_bucket,
            "output_bucket": self.deployed.output_bucket, "recipe": self.deployed.recipe,
            "sources": len(self.sources), "counts": self.counts(), "to_send": len(self.to_send),
            "renditions_to_render": self.rendition_counts(), "seconds": round(self.seconds, 2),
            "items": [{"key": s.key, "category": s.category, "etag": s.etag, "renditions": s.renditions,
                       **({"error": s.error} if s.error else {})} for s in self.sources],
        }


# --- reading the deployment -------------------------------------------------------------------


def read_deployed(ctx: Any) -> Deployed:
    """Stack outputs + the function's describe answer (DeployError when it cannot answer)."""
    import json

    from cli.deploy.changeset import describe_stack, stack_outputs
    from cli.deploy.uploads import _deployed_suffixes

    name = ctx.settings.stack_name
    stack = describe_stack(ctx.target.client("cloudformation"), name)
    if stack is None:
        raise DeployError(f"no stack named {name} (run `imgproc deploy`)")
    outputs = stack_outputs(stack)
    function = outputs.get("FunctionName")
    if not function or not outputs.get("InputBucketName"):
        raise DeployError(f"stack {name} has no function or input bucket output (run `imgproc status`)")
    try:
        resp = ctx.target.client("lambda").invoke(FunctionName=function, Payload=json.dumps({"imgproc": "describe"}))
        answer = json.loads(resp["Payload"].read() or b"null")
    except AWS_ERRORS as exc:
        raise DeployError(f"function {function}: {aws_error(exc)}") from None
    if resp.get("FunctionError") or not isinstance(answer, dict) or "renditions" not in answer:
        raise DeployError(f"function {function} cannot say what it renders (deployed before `reprocess` "
                          "existed?): run `imgproc deploy` first")
    renditions = tuple(DeployedRendition(r["name"], r["format"], r["label"], r["recipe"]) for r in answer["renditions"])
    return Deployed(
        stack=name, input_bucket=outputs["InputBucketName"],
        output_bucket=answer.get("output_bucket") or outputs.get("OutputBucketName", ""),
        input_prefix=answer.get("input_prefix", ""), output_prefix=answer.get("output_prefix", ""),
        suffixes=_deployed_suffixes(ctx, name), recipe=answer.get("recipe", ""), renditions=renditions,
        presets={p: tuple(labels) for p, labels in (answer.get("presets") or {}).items()},
        function_name=function, function_arn=outputs.get("FunctionArn", ""),
        queue_url=outputs.get("UploadQueueUrl", ""), batch_role_arn=outputs.get("BatchOperationsRoleArn", ""),
        log_group=outputs.get("LogGroupName", ""), naming=str(answer.get("naming") or "stem"),
    )


# --- listing and classifying ------------------------------------------------------------------


def list_sources(s3: Any, d: Deployed, prefix: str = "", since: float | None = None) -> list[Source]:
    """The objects under the input prefix (+ ``prefix``) that trigger the function, modified since ``since``."""
    found = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=d.input_bucket, Prefix=d.input_prefix + prefix):
            for obj in page.get("Contents", []):
                modified = obj["LastModified"].timestamp()
                if not d.triggers(obj["Key"]) or (since is not None and modified < since):
                    continue
                found.append(Source(obj["Key"], str(obj.get("ETag", "")).strip('"'), int(obj.get("Size", 0)), modified))
    except AWS_ERRORS as exc:
        raise DeployError(f"s3://{d.input_bucket}/{d.input_prefix + prefix}: {aws_error(exc)}") from None
    return found


def output_keys(s3: Any, d: Deployed) -> set[str]:
    """Every key under the output prefix: a missing rendition needs no HEAD."""
    keys: set[str] = set()
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=d.output_bucket, Prefix=d.output_prefix):
            keys.update(o["Key"] for o in page.get("Contents", []))
    except AWS_ERRORS as exc:
        raise DeployError(f"s3://{d.output_bucket}/{d.output_prefix}: {aws_error(exc)}") from None
    return keys


def rendition_state(meta: dict[str, str] | None, source: Source, r: DeployedRendition, set_recipe: str) -> str:
    """current / missing / stale-source / stale-recipe, judged as the function's Job.is_current does."""
    if meta is None:
        return MISSING
    if meta.get(META_SOURCE_ETAG) != source.etag:
        return "stale-source"
    own = meta.get(META_RENDITION_RECIPE)
    recipe_ok = own == r.recipe if own is not None else meta.get(META_RECIPE) == set_recipe
    return CURRENT if recipe_ok else "stale-recipe"


def classify(s3: Any, d: Deployed, sources: list[Source], renditions: tuple[DeployedRendition, ...],
             failures: dict[str, tuple[float, str]], progress: Callable[[int], None] = lambda n: None) -> None:
    """Set each source's category and rendition states (HEADs run concurrently)."""
    existing = output_keys(s3, d)

    def head(key: str) -> dict[str, str] | None:
        try:
            return dict(s3.head_object(Bucket=d.output_bucket, Key=key).get("Metadata", {}))
        except AWS_ERRORS as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise DeployError(f"s3://{d.output_bucket}/{key}: {aws_error(exc)}") from None

    def judge(source: Source) -> None:
        for r in renditions:
            key = d.output_key(source.key, r)
            meta = head(key) if key in existing else None
            source.renditions[r.label] = rendition_state(meta, source, r, d.recipe)
        states = set(source.renditions.values())
        failure = failures.get(source.key)
        if states <= {CURRENT}:
            source.category = CURRENT
        elif failure is not None and failure[0] >= source.modified:
            source.category, source.error = FAILED, failure[1]
        else:
            source.category = MISSING if MISSING in states else STALE
        progress(1)

    with ThreadPoolExecutor(max_workers=HEAD_CONCURRENCY) as pool:
        for _ in pool.map(judge, sources):
            pass


def read_failures(logs: Any, log_group: str, since_s: float) -> dict[str, tuple[float, str]]:
    """{source key: (time, "ErrorType: message")} of the function's last failure for each key,
    from its log group (the JSON lines it writes); {} when the log group cannot be read."""
    from cli.logs.render import IMAGE
    from cli.logs.render import classify as classify_line
    from cli.logs.source import Fetcher
    from core.errors import ImgprocError

    if not log_group:
        return {}
    try:
        events = Fetcher(logs, log_group, filter_pattern='"failed"').fetch(int(since_s * 1000))
    except ImgprocError:
        return {}  # no log group yet (nothing ran), or logs unreadable: nothing is "failed before"
    except AWS_ERRORS:
        return {}
    found: dict[str, tuple[float, str]] = {}
    for line in map(classify_line, events):
        data = line.data or {}
        if line.kind == IMAGE and data.get("outcome") == "failed" and data.get("key"):
            error = data.get("error") or {}
            found[str(data["key"])] = (line.event.timestamp / 1000,
                                       f"{error.get('type', 'Error')}: {error.get('message', '')}")
    return found


def parse_since(text: str | None, now: float | None = None) -> float | None:
    """``2026-11-01``, an ISO time, or a duration back from now (``90m``, ``12h``, ``7d``) -> epoch seconds."""
    from cli.errors import UsageError

    if not text:
        return None
    now = time.time() if now is None else now
    units = {"m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return now - int(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since {text!r}: use a date (2026-11-01), an ISO time or a duration (90m, 12h, 7d)") from None
    if moment.tzinfo is None:

        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()

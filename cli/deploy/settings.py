"""The `[deploy]` table of imgproc.toml: every deploy setting declared once.

Each setting has a default, a type/range and a one-line description (see
SETTINGS); `DeploySettings.from_table` validates the table and raises
ConfigError naming the key and the file. Flags (`--stack`, `--arch`) override
the file through `DeploySettings.replace`.

Example::

    [deploy]
    stack_name = "photos"
    memory = 1536
    input_prefix = "uploads/"
    suffixes = [".jpg", ".jpeg", ".png"]
    presets = ["thumb", "web"]
    lifecycle_days = 90
    lifecycle_action = "expire"
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError

ARCHITECTURES = ("x86_64", "arm64")
TRIGGERS = ("notification", "queue", "eventbridge")
ON_DELETE = ("keep", "remove")
# Lifecycle actions for processed images: expire them, or move them to a cheaper class.
LIFECYCLE_ACTIONS = ("expire", "INTELLIGENT_TIERING", "STANDARD_IA", "GLACIER_IR")
# CloudWatch Logs accepts only these retention periods.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)

_STACK = re.compile(r"^[a-z][a-z0-9-]{0,29}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^([^/\\*?][^\\*?]*/)?$")
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
_PRESET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# Longest AWS region name today ("ap-southeast-5" is 14; leave room for longer ones).
_MAX_REGION_LEN = 16
_ACCOUNT_LEN = 12


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    description: str


SETTINGS: tuple[Setting, ...] = (
    Setting("stack_name", "imgproc", "CloudFormation stack name (lowercase letters, digits, '-'; max 30)"),
    Setting("memory", 1024, "Lambda memory in MB (128..10240); CPU grows with memory"),
    Setting("timeout", 60, "Lambda timeout in seconds (1..900)"),
    Setting("reserved_concurrency", -1, "Reserved concurrent executions, a cap on parallel runs (-1 = none: new "
            "accounts with a concurrency quota of 10 cannot reserve any)"),
    Setting("architecture", "x86_64", "Lambda architecture: x86_64 or arm64"),
    Setting("retry_attempts", 2, "Retries of a failed asynchronous invocation before it goes to the queue (0..2)"),
    Setting("lifecycle_days", 30, "Days after which processed images get the lifecycle action (1..36500; 0 = no rule)"),
    Setting("lifecycle_action", "INTELLIGENT_TIERING", "expire, INTELLIGENT_TIERING, STANDARD_IA or GLACIER_IR"),
    Setting("log_retention_days", 30, "Days the function's log group keeps logs (a CloudWatch-allowed value)"),
    Setting("input_prefix", "", "Only keys under this prefix trigger processing ('' = whole bucket; ends with '/')"),
    Setting("output_prefix", "", "Renditions are written under this prefix of the output bucket"),
    Setting("suffixes", [], "Only keys ending with one of these trigger processing ([] = every key); case-sensitive"),
    Setting("presets", [], "Presets the function renders ([] = all presets of the presets file)"),
    Setting("rekognition", False, "Detect labels with Amazon Rekognition (adds rekognition:DetectLabels)"),
    Setting("input_bucket", "", "Input bucket name ('' = <stack>-input-<account>-<region>)"),
    Setting("output_bucket", "", "Output bucket name ('' = <stack>-output-<account>-<region>)"),
    Setting("trigger", "notification", "How uploads reach the function: notification (S3 invokes it), queue "
            "(S3 -> SQS -> batches, with a dead-letter queue) or eventbridge (S3 -> EventBridge rule)"),
    Setting("batch_size", 10, "queue: messages per invocation (1..10000; above 10 needs batch_window >= 1)"),
    Setting("batch_window", 5, "queue: seconds to gather a batch before invoking (0..300)"),
    Setting("max_concurrency", 10, "queue: most concurrent invocations the queue drives (2..1000)"),
    Setting("max_receive_count", 5, "queue: deliveries of a message before it moves to the dead-letter queue (1..1000)"),
    Setting("on_delete", "keep", "keep, or remove: deleting a source removes the renditions (and labels) made from it"),
    Setting("alarm_email", "", "E-mail address subscribed to the stack's alarm topic ('' = no subscription)"),
)
DEFAULTS = {s.name: s.default for s in SETTINGS}


@dataclass(frozen=True)
class DeploySettings:
    """Validated deploy settings; build with `from_table`."""

    stack_name: str = DEFAULTS["stack_name"]
    memory: int = DEFAULTS["memory"]
    timeout: int = DEFAULTS["timeout"]
    reserved_concurrency: int = DEFAULTS["reserved_concurrency"]
    architecture: str = DEFAULTS["architecture"]
    retry_attempts: int = DEFAULTS["retry_attempts"]
    lifecycle_days: int = DEFAULTS["lifecycle_days"]
    lifecycle_action: str = DEFAULTS["lifecycle_action"]
    log_retention_days: int = DEFAULTS["log_retention_days"]
    input_prefix: str = DEFAULTS["input_prefix"]
    output_prefix: str = DEFAULTS["output_prefix"]
    suffixes: tuple[str, ...] = ()
    presets: tuple[str, ...] = ()
    rekognition: bool = DEFAULTS["rekognition"]
    input_bucket: str = DEFAULTS["input_bucket"]
    output_bucket: str = DEFAULTS["output_bucket"]
    trigger: str = DEFAULTS["trigger"]
    batch_size: int = DEFAULTS["batch_size"]
    batch_window: int = DEFAULTS["batch_window"]
    max_concurrency: int = DEFAULTS["max_concurrency"]
    max_receive_count: int = DEFAULTS["max_receive_count"]
    alarm_email: str = DEFAULTS["alarm_email"]
    on_delete: str = DEFAULTS["on_delete"]
    source: str = field(default="defaults", compare=False)

    # --- derived names ----------------------------------------------------------

    @property
    def function_name(self) -> str:
        return f"{self.stack_name}-process"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def bucket_names(self, account: str, region: str) -> tuple[str, str]:
        """The (input, output) bucket names for one account and region."""
        return (
            self.input_bucket or f"{self.stack_name}-input-{account}-{region}",
            self.output_bucket or f"{self.stack_name}-output-{account}-{region}",
        )

    # --- parsing ----------------------------------------------------------------

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None, source: str = "imgproc.toml") -> DeploySettings:
        """Validate the raw `[deploy]` table (None -> defaults)."""
        table = dict(table or {})
        for key in table:
            if key not in DEFAULTS:
                raise _error(source, key, f"unknown key (known: {', '.join(DEFAULTS)})")
        values = {**DEFAULTS, **table}
        return cls._validated(values, source)

    def replace(self, **changes: Any) -> DeploySettings:
        """A copy with flag overrides applied (None values ignored), validated again."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        values.update({k: v for k, v in changes.items() if v is not None})
        return self._validated(values, self.source)

    @classmethod
    def _validated(cls, v: dict[str, Any], source: str) -> DeploySettings:
        def err(key: str, problem: str) -> ConfigError:
            return _error(source, key, problem)

        if not isinstance(v["stack_name"], str) or not _STACK.match(v["stack_name"]):
            raise err("stack_name", f"{v['stack_name']!r}: use lowercase letters, digits and '-', start with a letter, max 30")
        for key, lo, hi in (("memory", 128, 10240), ("timeout", 1, 900), ("reserved_concurrency", -1, 1000),
                            ("retry_attempts", 0, 2), ("lifecycle_days", 0, 36500)):
            _int(err, key, v[key], lo, hi)
        if v["architecture"] not in ARCHITECTURES:
            raise err("architecture", f"{v['architecture']!r}: choose x86_64 or arm64")
        if v["lifecycle_action"] not in LIFECYCLE_ACTIONS:
            raise err("lifecycle_action", f"{v['lifecycle_action']!r}: choose from {', '.join(LIFECYCLE_ACTIONS)}")
        if v["lifecycle_action"] == "STANDARD_IA" and 0 < v["lifecycle_days"] < 30:
            raise err("lifecycle_days", "S3 moves objects to STANDARD_IA after 30 days at the earliest")
        _int(err, "log_retention_days", v["log_retention_days"], 1, 3653)
        if v["log_retention_days"] not in LOG_RETENTION_DAYS:
            raise err("log_retention_days", f"{v['log_retention_days']} is not one of CloudWatch's values "
                      f"({', '.join(map(str, LOG_RETENTION_DAYS))})")
        for key in ("input_prefix", "output_prefix"):
            if not isinstance(v[key], str) or not _PREFIX.match(v[key]):
                raise err(key, f"{v[key]!r}: '' or a path ending with '/', no leading '/', no '*', '?' or '\\'")
        suffixes = _str_list(err, "suffixes", v["suffixes"])
        for s in suffixes:
            if not _SUFFIX.match(s):
                raise err("suffixes", f"{s!r}: expected a file extension like '.jpg'")
        presets = _str_list(err, "presets", v["presets"])
        for p in presets:
            if not _PRESET.match(p):
                raise err("presets", f"{p!r} is not a preset name")
        if not isinstance(v["rekognition"], bool):
            raise err("rekognition", "expected true or false")
        for key in ("input_bucket", "output_bucket"):
            name = v[key]
            if not isinstance(name, str) or (name and not _valid_bucket(name)):
                raise err(key, f"{name!r} is not a valid S3 bucket name (3-63 lowercase letters, digits, '.', '-')")
        # Derived names must also be valid, whatever the account and region.
        longest_in, longest_out = (
            f"{v['stack_name']}-input-{'0' * _ACCOUNT_LEN}-{'a' * _MAX_REGION_LEN}",
            f"{v['stack_name']}-output-{'0' * _ACCOUNT_LEN}-{'a' * _MAX_REGION_LEN}",
        )
        if (not v["output_bucket"] and len(longest_out) > 63) or (not v["input_bucket"] and len(longest_in) > 63):
            raise err("stack_name", "too long to derive bucket names: shorten it or set input_bucket/output_bucket")
        if v["input_bucket"] and v["input_bucket"] == v["output_bucket"]:
            raise err("output_bucket", "must differ from input_bucket (writing renditions into the watched "
                      "bucket would trigger the function on its own output)")
        _check_trigger(err, v)
        if v["on_delete"] not in ON_DELETE:
            raise err("on_delete", f"{v['on_delete']!r}: choose keep or remove")
        v = {**v, "suffixes": tuple(dict.fromkeys(suffixes)), "presets": tuple(dict.fromkeys(presets))}
        return cls(**v, source=source)


def _check_trigger(err, v: dict[str, Any]) -> None:
    """The trigger and its queue settings, within the limits SQS and Lambda accept."""
    if v["trigger"] not in TRIGGERS:
        raise err("trigger", f"{v['trigger']!r}: choose {', '.join(TRIGGERS)}")
    for key, lo, hi in (("batch_size", 1, 10000), ("batch_window", 0, 300), ("max_concurrency", 2, 1000),
                        ("max_receive_count", 1, 1000)):
        _int(err, key, v[key], lo, hi)
    if v["batch_size"] > 10 and v["batch_window"] < 1:
        raise err("batch_window", "Lambda needs a batching window of at least 1 s for a batch_size above 10")
    if v["trigger"] == "queue" and 0 <= v["reserved_concurrency"] < v["max_concurrency"]:
        raise err("max_concurrency", f"{v['max_concurrency']} is above reserved_concurrency "
                  f"{v['reserved_concurrency']}: batches would be throttled and retried (lower it)")
    email = v["alarm_email"]
    if not isinstance(email, str) or (email and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email)):
        raise err("alarm_email", f"{email!r} is not an e-mail address")


def _error(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"deploy.{key}: {problem} in {source}")


def _int(err, key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise err(key, f"expected an integer, got {value!r}")
    if not lo <= value <= hi:
        raise err(key, f"{value} is out of range {lo}..{hi}")
    return value


def _str_list(err, key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(x, str) for x in value):
        raise err(key, "expected a list of strings")
    return list(value)


def _valid_bucket(name: str) -> bool:
    return bool(_BUCKET.match(name)) and ".." not in name and not re.match(r"^\d+\.\d+\.\d+\.\d+$", name)

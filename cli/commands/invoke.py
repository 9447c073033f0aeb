"""`imgproc invoke`: run the Lambda handler in-process on a real-shaped S3 event.

The local loop for debugging the handler without deploying (like
`sam local generate-event s3 put` + `sam local invoke`, without Docker): the
event is built as AWS builds it (keys form-encoded), the handler's own code
runs against whatever endpoint is configured, and its JSON log records are
rendered as a table.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.aws.target import AwsTarget
from cli.commands.options import ConfigOpt, EndpointOpt, LocalstackOpt, ProfileOpt, RegionOpt
from cli.console import ExitCode, human_bytes, load_config
from cli.errors import fail
from core.errors import ImgprocError


@dataclass
class LocalContext:
    """The Lambda context attributes the handler reads."""

    function_name: str = "imgproc-invoke"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:imgproc-invoke"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def build_event(bucket: str | None, keys: list[str], event_file: Path | None) -> dict[str, Any]:
    """The event from --event-file, or an ObjectCreated:Put for --bucket/--key."""
    from core.events import put_event

    if event_file is not None:
        try:
            event = json.loads(event_file.read_text(encoding="utf-8"))
        except OSError as exc:
            fail(f"cannot read event file {event_file}: {exc.strerror or exc}")
        except json.JSONDecodeError as exc:
            fail(f"{event_file} is not JSON: {exc.msg} (line {exc.lineno})")
        if not isinstance(event, dict):
            fail(f"{event_file}: an S3 event is a JSON object with a \"Records\" list")
        return event
    if not bucket or not keys:
        fail("pass --bucket and --key (or --event-file FILE)")
    return put_event(bucket, keys, region=os.environ.get("AWS_REGION") or "us-east-1")


def handler_env(output_bucket: str | None, output_prefix: str | None, presets: list[str] | None,
                rekognition: bool) -> dict[str, str]:
    """The handler's environment: IMGPROC_* from this shell, overridden by the flags."""
    env = dict(os.environ)
    if output_bucket:
        env["IMGPROC_OUTPUT_BUCKET"] = output_bucket
    if output_prefix is not None:
        env["IMGPROC_OUTPUT_PREFIX"] = output_prefix
    if presets:
        env["IMGPROC_PRESETS"] = ",".join(presets)
    if rekognition:
        env["IMGPROC_REKOGNITION"] = "on"
    if not env.get("IMGPROC_OUTPUT_BUCKET"):
        fail("no output bucket: pass --output-bucket or set IMGPROC_OUTPUT_BUCKET")
    return env


def _bytes(n: int | None) -> str:
    return human_bytes(n) if n else "-"


def _detail(rec: dict[str, Any]) -> str:
    err = rec.get("error")
    if err:
        return f"{err['type']}: {err['message']}" + (" (transient: Lambda would retry)" if err.get("transient") else "")
    return str(rec.get("reason", ""))


def render_records(records: list[dict[str, Any]], console: Console) -> None:
    """One row per source image, one indented row per rendition, a count line."""
    details = any(_detail(rec) or rec.get("labels") for rec in records)
    table = Table(title="imgproc invoke", title_justify="left")
    table.add_column("key / output key", overflow="fold")
    table.add_column("outcome")
    table.add_column("image")
    table.add_column("bytes", justify="right")
    table.add_column("ms", justify="right")
    if details:
        table.add_column("detail", overflow="fold")
    style = {"ok": "green", "skipped": "yellow", "failed": "red"}

    def row(*cells: str) -> None:
        table.add_row(*(cells if details else cells[:5]))

    def text(value: object) -> str:  # keys, messages and names from the records: shown literally
        return escape(str(value))

    for rec in records:
        outcome = rec.get("outcome", "")
        src = rec.get("source") or {}
        dims = f"{src['width']}x{src['height']} {src.get('format', '')}" if src.get("width") else ""
        total = rec.get("ms", {}).get("total") if isinstance(rec.get("ms"), dict) else None
        row(text(rec.get("key") or rec.get("event", "")), f"[{style.get(outcome, '')}]{text(outcome)}[/]", text(dims),
            _bytes(src.get("bytes")), f"{total:.0f}" if total is not None else "", text(_detail(rec)))
        for r in rec.get("renditions", []):
            dims = f"{r['width']}x{r['height']} {r['format']}" if r.get("width") else r.get("format", "")
            row(f"  {text(r['output_key'])}", text(r.get("outcome", "")), text(dims), _bytes(r.get("bytes")),
                f"{r.get('ms', 0):.0f}", "")
        labels = rec.get("labels")
        if labels:
            names = ", ".join(labels.get("names", [])) or labels.get("reason") or labels.get("error", {}).get("message", "")
            row(f"  {text(labels.get('sidecar_key', 'labels'))}", f"labels {text(labels.get('outcome', ''))}", "", "", "",
                text(names))
    console.print(table)
    images = [r for r in records if r.get("event") == "image"]
    counts = {o: sum(1 for r in images if r.get("outcome") == o) for o in ("ok", "skipped", "failed")}
    console.print(f"{counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed "
                  f"({len(images)} image record{'s' if len(images) != 1 else ''})")


def invoke(
    bucket: Annotated[str | None, typer.Option("--bucket", "-b", help="Input bucket of the event.",
                                               show_default=False)] = None,
    key: Annotated[list[str] | None, typer.Option("--key", "-k", help="Object key, unencoded (repeatable: one record each).",
                                                  show_default=False)] = None,
    event_file: Annotated[Path | None, typer.Option("--event-file", "-e", help="Use this event JSON instead of building one.",
                                                    show_default=False, dir_okay=False)] = None,
    output_bucket: Annotated[str | None, typer.Option("--output-bucket", help="Default: $IMGPROC_OUTPUT_BUCKET.",
                                                      show_default=False)] = None,
    output_prefix: Annotated[str | None, typer.Option("--output-prefix", help="Default: $IMGPROC_OUTPUT_PREFIX or none.",
                                                      show_default=False)] = None,
    preset: Annotated[list[str] | None, typer.Option("--preset", "-p", help="Preset to apply (repeatable). Default: $IMGPROC_PRESETS or all.",
                                                     show_default=False)] = None,
    config: ConfigOpt = None,
    rekognition: Annotated[bool, typer.Option("--rekognition", help="Label images with Rekognition (IMGPROC_REKOGNITION=on).")] = False,
    print_event: Annotated[bool, typer.Option("--print-event", help="Print the event JSON and exit without invoking.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the handler's JSON log lines instead of the table.")] = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Run the Lambda handler here, on an S3 Put event for --bucket/--key, against the configured endpoint.

    The event is encoded exactly as AWS sends it ("my photo (1).jpg" -> "my+photo+%281%29.jpg").
    The handler reads its IMGPROC_* settings from this shell; the flags override them. Presets
    come from --config, ./imgproc.toml or the built-ins, as in `imgproc process`. Exit code 0
    when every record succeeded or was skipped, 1 when any failed, 2 for a usage or config error.

    Example:

        imgproc invoke --bucket photos-in --key "uploads/my photo (1).jpg" --output-bucket photos-out --localstack
    """
    event = build_event(bucket, key or [], event_file)
    if print_event:
        print(json.dumps(event, indent=2, ensure_ascii=False))
        raise typer.Exit(int(ExitCode.OK))
    env = handler_env(output_bucket, output_prefix, preset, rekognition)
    cfg = load_config(config)
    target = AwsTarget.resolve(endpoint_url, profile, region, localstack, defaults=cfg.extra.get("aws"))

    import lambda_entry

    try:
        runtime = lambda_entry.Runtime.from_env(env, client_factory=target.client, config=cfg)
    except ImgprocError as exc:
        fail(str(exc))
    emit = lambda_entry.print_line if as_json else (lambda line: None)
    result = lambda_entry.process_event(event, LocalContext(), runtime, emit=emit)
    if not as_json:
        render_records(result.records, Console(highlight=False))
    raise typer.Exit(int(ExitCode.FAILED if result.count("failed") else ExitCode.OK))


def register(app: typer.Typer) -> None:
    app.command("invoke")(invoke)

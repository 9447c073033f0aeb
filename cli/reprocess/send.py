"""Sending a small set of sources to the deployed function: the stack's queue, else async invokes.

Each source becomes the event S3 itself would have sent for its upload (one
``ObjectCreated:Put`` record naming its key and ETag), so every route the handler
already reads processes it unchanged:

* queue mode: SendMessageBatch to the upload queue (10 a call); the event source mapping
  delivers them at the stack's ``max_concurrency``, failures go to its dead-letter queue;
* otherwise: Lambda Invoke with InvocationType=Event (Lambda queues them, retries twice,
  then the failure queue), at most ``concurrency`` calls in flight from here.

Ctrl-C stops sending between calls; what was sent stays sent, and rerunning the command
sends only what is still missing or stale (the function skips what is already done).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from cli.aws.errors import AWS_ERRORS, aws_error
from cli.reprocess.plan import Deployed, Source
from core.events import put_event

SQS_BATCH = 10  # SendMessageBatch's limit
CONFIGURATION_ID = "imgproc-reprocess"  # names the sender in the event, as S3 names a notification


@dataclass
class SendReport:
    how: str  # "queue" / "invoke"
    total: int
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, error)
    interrupted: bool = False
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0


class RateColumn(ProgressColumn):
    """Sources sent per second, as rich measures it over the last few updates."""

    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s")


def progress_bar(console: Console, what: str) -> Progress:
    return Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), RateColumn(), TimeElapsedColumn(),
                    console=console, transient=True)


def event_for(d: Deployed, source: Source) -> dict[str, Any]:
    """The S3 notification of this source's upload, as AWS shapes it."""
    event = put_event(d.input_bucket, [source.key], sizes={source.key: source.size}, etags={source.key: source.etag},
                      event_time=time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))
    for record in event["Records"]:
        record["s3"]["configurationId"] = CONFIGURATION_ID
    return event


def _chunks(items: list[Source], size: int) -> Iterator[list[Source]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def send_to_queue(sqs: Any, d: Deployed, sources: list[Source], console: Console) -> SendReport:
    report = SendReport("queue", len(sources))
    started = time.monotonic()
    with progress_bar(console, "sending to the queue") as progress:
        task = progress.add_task("send", total=len(sources))
        try:
            for chunk in _chunks(sources, SQS_BATCH):
                entries = [{"Id": str(i), "MessageBody": json.dumps(event_for(d, s))} for i, s in enumerate(chunk)]
                try:
                    resp = sqs.send_message_batch(QueueUrl=d.queue_url, Entries=entries)
                except AWS_ERRORS as exc:
                    report.failed += [(s.key, aws_error(exc)) for s in chunk]
                else:
                    for bad in resp.get("Failed", []):
                        report.failed.append((chunk[int(bad["Id"])].key, f"{bad.get('Code')}: {bad.get('Message', '')}"))
                    report.sent += len(resp.get("Successful", []))
                progress.advance(task, len(chunk))
        except KeyboardInterrupt:
            report.interrupted = True
    report.seconds = time.monotonic() - started
    return report


def send_invokes(lam: Any, d: Deployed, sources: list[Source], console: Console, concurrency: int) -> SendReport:
    """Invoke(InvocationType=Event) per source, at most ``concurrency`` calls in flight."""
    report = SendReport("invoke", len(sources))
    started = time.monotonic()

    def invoke(source: Source) -> None:
        lam.invoke(FunctionName=d.function_name, InvocationType="Event", Payload=json.dumps(event_for(d, source)))

    pool = ThreadPoolExecutor(max_workers=concurrency)
    in_flight: dict[Future[None], Source] = {}
    with progress_bar(console, "invoking the function") as progress:
        task = progress.add_task("send", total=len(sources))

        def collect(done: set[Future[None]]) -> None:
            for fut in done:
                source = in_flight.pop(fut)
                try:
                    fut.result()
                    report.sent += 1
                except AWS_ERRORS as exc:
                    report.failed.append((source.key, aws_error(exc)))
                progress.advance(task)

        try:
            for source in sources:
                if len(in_flight) >= concurrency:
                    done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                    collect(done)
                in_flight[pool.submit(invoke, source)] = source
            collect(wait(in_flight)[0])
        except KeyboardInterrupt:
            report.interrupted = True
            pool.shutdown(wait=True, cancel_futures=True)  # calls under way finish; none start
            collect({f for f in in_flight if f.done() and not f.cancelled()})
    pool.shutdown(wait=True)
    report.seconds = time.monotonic() - started
    return report

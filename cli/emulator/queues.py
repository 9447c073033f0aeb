"""Lambda's SQS poller and EventBridge -> Lambda delivery, for the emulator.

moto runs an SQS event source mapping inline in SendMessage: one message at a time, no
batching window, the whole batch deleted or kept whatever the function answered, and the
function through Docker. `EventRoutes` replaces that with what Lambda does:

* per enabled SQS mapping, up to ``ScalingConfig.MaximumConcurrency`` pollers (capped by the
  emulator's concurrency) receive up to ``BatchSize`` messages, waiting up to
  ``MaximumBatchingWindowInSeconds`` to fill a batch, and invoke the function synchronously;
* with ``ReportBatchItemFailures`` only the messages the function names in
  ``batchItemFailures`` stay in the queue (an answer naming an unknown id fails the whole
  batch, as on AWS); a function error keeps the whole batch. Kept messages become visible
  again after the queue's visibility timeout, and moto's redrive moves a message to the
  dead-letter queue once it was received ``maxReceiveCount`` times;
* S3 "Object Created" events that moto sends to EventBridge rules reach rules' Lambda targets
  (moto delivers only to logs, SQS and event buses), asynchronously like EventBridge;
* GetBucketNotificationConfiguration shows ``EventBridgeConfiguration`` (moto omits it), so
  `imgproc status` can check the eventbridge trigger.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from cli.emulator.dispatcher import Dispatcher, _spec

SQS_RECEIVE_MAX = 10  # SQS returns at most 10 messages per ReceiveMessage
IDLE_POLL_S = 0.2  # how often an idle poller looks at its queue


class _Unpolled(dict[str, Any]):
    """A queue's event source mappings, hidden from moto's inline SendMessage delivery."""

    def items(self) -> Any:
        return [] if EventRoutes.active is not None else super().items()


def _hidden_get(queue: Any) -> dict:
    current = queue.__dict__.get("lambda_event_source_mappings")
    if not isinstance(current, _Unpolled):
        current = _Unpolled(current or {})
        queue.__dict__["lambda_event_source_mappings"] = current
    return current


def _hidden_set(queue: Any, value: dict) -> None:
    queue.__dict__["lambda_event_source_mappings"] = _Unpolled(value or {})


class EventRoutes:
    """Installs the SQS pollers and the EventBridge -> Lambda delivery into the emulator's moto."""

    active: EventRoutes | None = None

    def __init__(self, dispatcher: Dispatcher, concurrency: int = 2, say: Callable[[str], None] = print):
        self.dispatcher = dispatcher
        self.concurrency = max(1, concurrency)
        self.say = say
        self._stop = threading.Event()
        self._pollers: dict[str, list[threading.Thread]] = {}
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="sqs-mappings")
        self._saved: dict[str, Any] = {}
        self.stats = {"batches": 0, "messages": 0, "deleted": 0, "kept": 0}
        self._stats_lock = threading.Lock()
        self._rule_lock = threading.Lock()
        # moto's ReceiveMessage checks and marks a message without a lock, so two pollers of one
        # queue could both receive it; SQS never hands a message to two receivers at once.
        self._receive_lock = threading.Lock()

    # -- patching moto -----------------------------------------------------------------------

    def install(self) -> EventRoutes:
        from moto.events.models import Rule
        from moto.s3.responses import S3Response
        from moto.sqs.models import Queue

        routes = self
        self._saved = {"send_to_targets": Rule.send_to_targets,
                       "get_bucket_notification": S3Response.get_bucket_notification}
        original_send = self._saved["send_to_targets"]
        original_get = self._saved["get_bucket_notification"]

        def send_to_targets(rule: Any, event: Any, transform_input: bool = True) -> None:
            # moto raises NotImplementedError at a Lambda target: it delivers only the others
            others = [t for t in rule.targets if ":lambda:" not in str(t.get("Arn", ""))]
            if others:
                with routes._rule_lock:
                    every, rule.targets = rule.targets, others
                    try:
                        original_send(rule, event, transform_input)
                    finally:
                        rule.targets = every
            routes._to_lambda_targets(rule, event)

        def get_bucket_notification(response: Any) -> Any:
            return _with_eventbridge(response, original_get(response))

        # setattr: replacing moto's attributes in place is the point of the hook (mypy forbids method assignment).
        setattr(Queue, "lambda_event_source_mappings", property(_hidden_get, _hidden_set))  # noqa: B010
        setattr(Rule, "send_to_targets", send_to_targets)  # noqa: B010
        setattr(S3Response, "get_bucket_notification", get_bucket_notification)  # noqa: B010
        EventRoutes.active = self
        self._watcher.start()
        return self

    def uninstall(self) -> None:
        from moto.events.models import Rule
        from moto.s3.responses import S3Response
        from moto.sqs.models import Queue, sqs_backends

        if EventRoutes.active is not self:
            return
        self._stop.set()
        for threads in self._pollers.values():
            for thread in threads:
                thread.join(timeout=10)
        self._watcher.join(timeout=5)
        EventRoutes.active = None
        delattr(Queue, "lambda_event_source_mappings")  # see install()
        for _, _, backend in _backends(sqs_backends):  # plain dicts again, for moto and for pickling
            for queue in backend.queues.values():
                mappings = queue.__dict__.get("lambda_event_source_mappings")
                if isinstance(mappings, _Unpolled):
                    queue.__dict__["lambda_event_source_mappings"] = dict(mappings)
        setattr(Rule, "send_to_targets", self._saved["send_to_targets"])  # noqa: B010 - see install()
        setattr(S3Response, "get_bucket_notification", self._saved["get_bucket_notification"])  # noqa: B010

    # -- EventBridge ---------------------------------------------------------------------------

    def _to_lambda_targets(self, rule: Any, event: Any) -> None:
        if getattr(rule, "state", "ENABLED") != "ENABLED" or not rule.event_pattern.matches_event(event):
            return
        for target in rule.targets:
            arn = str(target.get("Arn", ""))
            if ":lambda:" in arn:
                _, _, _, region, account, *_ = arn.split(":")
                self.dispatcher.submit_event(account, region, arn, json.loads(json.dumps(event, default=str)))

    # -- SQS event source mappings ---------------------------------------------------------------

    def _watch(self) -> None:
        """Start pollers for mappings as they appear (deploy creates them while we run)."""
        while not self._stop.wait(IDLE_POLL_S):
            for esm in _sqs_mappings():
                if esm.uuid not in self._pollers:
                    cap = (esm.scaling_config or {}).get("MaximumConcurrency") or 1000
                    count = max(1, min(int(cap), self.concurrency))
                    threads = [threading.Thread(target=self._poll, args=(esm.uuid,), daemon=True,
                                                name=f"sqs-poller-{esm.uuid[:8]}-{i}") for i in range(count)]
                    self._pollers[esm.uuid] = threads
                    for thread in threads:
                        thread.start()

    def _poll(self, uuid: str) -> None:
        queue_url, sqs, sqs_region = None, None, ""
        while not self._stop.is_set():
            esm = next((m for m in _sqs_mappings() if m.uuid == uuid), None)
            if esm is None:
                return  # deleted: its pollers stop
            if not esm.enabled:
                self._stop.wait(IDLE_POLL_S)
                continue
            try:
                if sqs is None or sqs_region != esm.region:  # one client per poller: creating one is slow
                    sqs, sqs_region = self.dispatcher._client_for("sqs")(esm.region), esm.region
                if queue_url is None:
                    _, _, _, _, account, name = esm.event_source_arn.split(":")
                    queue_url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
                batch = self._gather(sqs, queue_url, esm)
                if not batch:
                    self._stop.wait(IDLE_POLL_S)
                    continue
                self._deliver(sqs, queue_url, esm, batch)
            except Exception as exc:  # noqa: BLE001 - a poller must outlive one bad batch or a deleted queue
                self.say(f"SQS poller for {esm.event_source_arn}: {exc}")
                queue_url = None
                self._stop.wait(1.0)

    def _gather(self, sqs: Any, queue_url: str, esm: Any) -> list[dict]:
        """Up to BatchSize messages; with a window, keep receiving until it is full or the window ends."""
        size = int(esm.batch_size or 10)
        window = float(esm.max_batch_window or 0)
        batch: list[dict] = []
        deadline = None
        while len(batch) < size and not self._stop.is_set():
            with self._receive_lock:
                got = sqs.receive_message(QueueUrl=queue_url, AttributeNames=["All"], MessageAttributeNames=["All"],
                                          MaxNumberOfMessages=min(SQS_RECEIVE_MAX, size - len(batch)),
                                          WaitTimeSeconds=0).get("Messages", [])
            batch.extend(got)
            if not batch:
                return []
            deadline = deadline or time.monotonic() + window
            if not got:
                if time.monotonic() >= deadline:
                    break
                self._stop.wait(min(IDLE_POLL_S, max(0.0, deadline - time.monotonic())))
        return batch

    def _deliver(self, sqs: Any, queue_url: str, esm: Any, batch: list[dict]) -> None:
        from moto.awslambda.utils import get_backend

        fn = get_backend(esm.account_id, esm.region).get_function(esm.function_arn)
        event = {"Records": [sqs_record(m, esm.event_source_arn, esm.region) for m in batch]}
        result = self.dispatcher.runner.invoke(_spec(fn), lambda: fn.code_bytes, event)
        done = succeeded(batch, result.ok, result.payload, esm.function_response_types or [])
        for start in range(0, len(done), SQS_RECEIVE_MAX):
            chunk = done[start:start + SQS_RECEIVE_MAX]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])
        with self._stats_lock:
            self.stats["batches"] += 1
            self.stats["messages"] += len(batch)
            self.stats["deleted"] += len(done)
            self.stats["kept"] += len(batch) - len(done)


def succeeded(batch: list[dict], ok: bool, payload: str, response_types: list[str]) -> list[dict]:
    """The messages Lambda deletes after an invocation, per its partial batch response rules."""
    if not ok:
        return []
    if "ReportBatchItemFailures" not in response_types:
        return list(batch)
    try:
        answer = json.loads(payload) if payload else None
    except ValueError:
        return []
    if not isinstance(answer, dict) or not answer.get("batchItemFailures"):
        return list(batch)  # null, {} or an empty list: every message succeeded
    failures = answer["batchItemFailures"]
    ids = {m["MessageId"] for m in batch}
    if not isinstance(failures, list) or not all(
            isinstance(f, dict) and f.get("itemIdentifier") in ids for f in failures):
        return []  # an answer Lambda cannot read fails the whole batch
    failed = {f["itemIdentifier"] for f in failures}
    return [m for m in batch if m["MessageId"] not in failed]


def sqs_record(message: dict, queue_arn: str, region: str) -> dict:
    """One SQS message as Lambda puts it into the event's Records."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: attributes[k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                                  "ApproximateFirstReceiveTimestamp") if k in attributes},
        "messageAttributes": {k: {"stringValue": v.get("StringValue"), "binaryValue": v.get("BinaryValue"),
                                  "stringListValues": [], "binaryListValues": [], "dataType": v.get("DataType")}
                              for k, v in message.get("MessageAttributes", {}).items()},
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def _backends(backend_dict: Any) -> list[tuple[str, str, Any]]:
    out = []
    for account, regions in list(backend_dict.items()):
        for region, backend in list(regions.items()):
            out.append((account, region, backend))
    return out


def _sqs_mappings() -> list[Any]:
    from moto.awslambda.models import lambda_backends

    mappings: list[Any] = []
    for _, _, backend in _backends(lambda_backends):
        mappings.extend(m for m in list(backend._event_source_mappings.values())
                        if ":sqs:" in m.event_source_arn)
    return mappings


def _with_eventbridge(response: Any, result: Any) -> Any:
    """Add <EventBridgeConfiguration/> to moto's GetBucketNotificationConfiguration answer when enabled."""
    try:
        config = response.backend.get_bucket_notification_configuration(response.bucket_name)
    except Exception:  # noqa: BLE001 - no bucket: moto's own answer stands
        return result
    if config is None or getattr(config, "event_bridge", None) is None:
        return result
    status, headers, body = result
    text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    closing = "</NotificationConfiguration>"
    if "<EventBridgeConfiguration" in text:
        return result
    if closing in text:
        text = text.replace(closing, f"<EventBridgeConfiguration></EventBridgeConfiguration>{closing}")
    else:  # an empty answer
        text = ('<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration '
                'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EventBridgeConfiguration>'
                f"</EventBridgeConfiguration>{closing}")
    return status, headers, text.encode("utf-8") if isinstance(body, bytes) else text

"""Running functions inside the emulator: S3 notifications and Lambda Invoke, with async retries.

moto stores S3 -> Lambda notifications but can only run a function through
Docker; the dispatcher takes the exact event moto built and runs the deployed
zip through the runner instead, with the function's retry and on-failure settings.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.emulator.cfn import EXTRA_CFN_TYPES, apply_bucket_properties
from cli.emulator.runner import FunctionSpec, Invocation, LogSink, Runner
from cli.emulator.settings import EmulatorError


@dataclass
class _AsyncJob:
    function_arn: str
    account_id: str
    region: str
    event: Any
    request_id: str
    spec: FunctionSpec
    code: bytes
    attempts: int
    on_failure: str | None


def _spec(fn: Any) -> FunctionSpec:
    """What the runner needs, from moto's LambdaFunction (the configuration GetFunction shows)."""
    return FunctionSpec(
        name=fn.function_name,
        arn=fn.function_arn,
        region=fn.region,
        handler=fn.handler or "",
        runtime=fn.run_time or "python3.12",
        timeout_s=int(fn.timeout),
        memory_mb=int(fn.memory_size),
        environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
        code_sha256=fn.code_sha_256,
        version=str(fn.version),
        reserved_concurrency=int(fn.reserved_concurrency) if fn.reserved_concurrency not in (None, "") else None,
    )


def _async_settings(fn: Any) -> tuple[int, str | None]:
    """MaximumRetryAttempts (default 2) and the on-failure destination ARN, if any."""
    retries, on_failure = 2, None
    for config in getattr(fn, "event_invoke_config", []) or []:
        settings = getattr(config, "config", {}) or {}
        retries = int(settings.get("MaximumRetryAttempts", retries))
        on_failure = settings.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") or on_failure
    dead_letter = (fn.get_configuration().get("DeadLetterConfig") or {}).get("TargetArn")
    return retries, on_failure or dead_letter


class Dispatcher:
    """Runs functions for S3 notifications and Invoke calls inside the moto process it patches."""

    _active: Dispatcher | None = None

    def __init__(
        self,
        endpoint: str,
        cache_dir: Path,
        concurrency: int = 2,
        retry_delays: tuple[float, ...] = (1.0, 2.0),
        say: Callable[[str], None] = print,
    ):
        self.endpoint = endpoint
        self.say = say
        self.retry_delays = retry_delays
        self.runner = Runner(cache_dir, endpoint, LogSink(self._client_for("logs")), warn=say)
        self._jobs: queue.Queue[_AsyncJob | None] = queue.Queue()
        self._threads = [threading.Thread(target=self._work, daemon=True, name=f"dispatch-{i}") for i in range(concurrency)]
        self._pending = 0
        self._pending_lock = threading.Condition()
        self._saved: dict[str, Any] = {}
        self._limits: dict[str, threading.BoundedSemaphore] = {}  # reserved concurrency per function
        self._limits_lock = threading.Lock()

    def _client_for(self, service: str) -> Callable[[str], Any]:
        def make(region: str):
            import boto3
            from botocore.config import Config

            return boto3.session.Session().client(
                service, region_name=region, endpoint_url=self.endpoint,
                aws_access_key_id="emulator", aws_secret_access_key="emulator",
                config=Config(retries={"mode": "standard", "max_attempts": 5}),
            )
        return make

    # -- patching moto -----------------------------------------------------------------------

    def install(self) -> Dispatcher:
        import moto.cloudformation.parsing as cfn_parsing
        import moto.s3.notifications as notifications
        from moto.awslambda.models import LambdaFunction
        from moto.cloudformation.models import ChangeSet
        from moto.s3.models import FakeBucket, S3Backend

        if Dispatcher._active is not None:
            raise EmulatorError("another emulator dispatcher is already active in this process")
        dispatcher = self
        try:
            self._saved = {
                "notify": notifications._invoke_awslambda,
                "invoke": LambdaFunction.invoke,
                "bucket_create": FakeBucket.__dict__["create_from_cloudformation_json"],
                "bucket_update": FakeBucket.__dict__["update_from_cloudformation_json"],
                "cfn_types": cfn_parsing.resource_class_from_type,
                "change_set_diff": ChangeSet.diff,
                "change_set_apply": ChangeSet.apply,
                "delete_object": S3Backend.delete_object,
            }
        except (AttributeError, KeyError) as exc:
            import moto

            raise EmulatorError(
                f"moto {moto.__version__} lacks {exc}, which `imgproc local` hooks (tested with moto 5.1-5.2): "
                "pip install 'moto[server]>=5.1,<6'"
            ) from None
        cfn_types = self._saved["cfn_types"]

        def resource_class_from_type(resource_type: str) -> Any:
            return EXTRA_CFN_TYPES.get(resource_type) or cfn_types(resource_type)

        def on_notification(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
            dispatcher.submit_event(account_id, region_name, fn_arn, event_body)

        def invoke(fn: Any, body: Any, request_headers: Any, response_headers: Any) -> bytes:
            return dispatcher.invoke_api(fn, body, request_headers, response_headers)

        create_original = self._saved["bucket_create"].__func__

        def change_set_diff(change_set: Any) -> list[Any]:
            # moto's change sets ignore parameters, so new code (a new CodeKey) looked like "no
            # changes" and `imgproc deploy` kept the old function; AWS shows the function as Modify.
            from moto.cloudformation.models import Change

            names = change_set.stack.resource_map.build_resource_diff(change_set.template_dict, change_set.parameters)
            old = change_set.stack.resource_map._resource_json_map
            new = change_set.template_dict.get("Resources", {})
            return [Change(action, name, (new.get(name) or old.get(name) or {}).get("Type", ""))
                    for action in ("Add", "Modify", "Remove") for name in dict.fromkeys(names[action])]

        apply_original = self._saved["change_set_apply"]
        delete_original = self._saved["delete_object"]

        def delete_object(backend: Any, bucket_name: str, key_name: str, version_id: str | None = None,
                          bypass: bool = False) -> Any:
            # In a versioned bucket S3 sends ObjectRemoved:DeleteMarkerCreated for a plain delete;
            # moto sends nothing, so `on_delete = "remove"` never heard of deleted originals.
            bucket = backend.get_bucket(bucket_name)
            marked = bucket.keys.get(key_name) if bucket.is_versioned and version_id is None else None
            result = delete_original(backend, bucket_name, key_name, version_id, bypass)
            if marked is not None and hasattr(marked, "etag"):  # a live object, not a delete marker
                notifications.send_event(backend.account_id,
                                         notifications.S3NotificationEvent.OBJECT_REMOVED_DELETE_MARKER_CREATED_EVENT,
                                         bucket, marked)
            return result

        def change_set_apply(change_set: Any) -> None:
            # moto's executed change set updates the resources but keeps the stack's old template
            # and outputs: `imgproc deploy --api` on an existing stack lost the API's outputs.
            apply_original(change_set)
            stack = change_set.stack
            stack.template = change_set.template
            stack._parse_template()
            stack.output_map = stack._create_output_map()

        update_original = self._saved["bucket_update"].__func__

        def bucket_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
            bucket = create_original(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
            apply_bucket_properties(bucket, cloudformation_json, account_id, region_name)
            return bucket

        def bucket_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
            bucket = update_original(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
            apply_bucket_properties(bucket, cloudformation_json, account_id, region_name)
            return bucket

        notifications._invoke_awslambda = on_notification
        # setattr: replacing moto's methods in place is the point of the hook (mypy forbids method assignment).
        setattr(LambdaFunction, "invoke", invoke)  # noqa: B010
        setattr(FakeBucket, "create_from_cloudformation_json", classmethod(bucket_create))  # noqa: B010
        setattr(FakeBucket, "update_from_cloudformation_json", classmethod(bucket_update))  # noqa: B010
        cfn_parsing.resource_class_from_type = resource_class_from_type
        setattr(ChangeSet, "diff", change_set_diff)  # noqa: B010 - see above
        setattr(ChangeSet, "apply", change_set_apply)  # noqa: B010 - see above
        setattr(S3Backend, "delete_object", delete_object)  # noqa: B010 - see above
        Dispatcher._active = self
        for thread in self._threads:
            thread.start()
        return self

    def uninstall(self, drain_s: float = 10.0) -> None:
        import moto.cloudformation.parsing as cfn_parsing
        import moto.s3.notifications as notifications
        from moto.awslambda.models import LambdaFunction
        from moto.cloudformation.models import ChangeSet
        from moto.s3.models import FakeBucket, S3Backend

        if Dispatcher._active is not self:
            return
        self.drain(drain_s)
        notifications._invoke_awslambda = self._saved["notify"]
        setattr(LambdaFunction, "invoke", self._saved["invoke"])  # noqa: B010 - see install()
        setattr(FakeBucket, "create_from_cloudformation_json", self._saved["bucket_create"])  # noqa: B010
        setattr(FakeBucket, "update_from_cloudformation_json", self._saved["bucket_update"])  # noqa: B010
        cfn_parsing.resource_class_from_type = self._saved["cfn_types"]
        setattr(ChangeSet, "diff", self._saved["change_set_diff"])  # noqa: B010 - see install()
        setattr(ChangeSet, "apply", self._saved["change_set_apply"])  # noqa: B010 - see install()
        setattr(S3Backend, "delete_object", self._saved["delete_object"])  # noqa: B010 - see install()
        Dispatcher._active = None
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
        self.runner.close()

    # -- invocations -------------------------------------------------------------------------

    def submit_event(self, account_id: str, region: str, fn_arn: str, event: Any) -> str | None:
        """Queue an asynchronous invocation (S3 notification or InvocationType=Event)."""
        from moto.awslambda.utils import get_backend

        try:
            fn = get_backend(account_id, region).get_function(fn_arn)
        except Exception:  # noqa: BLE001 - like S3, a missing target is not the uploader's error
            self.say(f"notification target {fn_arn} does not exist; event dropped")
            return None
        return self._queue(account_id, region, fn, event)

    def _queue(self, account_id: str, region: str, fn: Any, event: Any) -> str:
        retries, on_failure = _async_settings(fn)
        job = _AsyncJob(
            function_arn=fn.function_arn, account_id=account_id, region=region, event=event,
            request_id=str(uuid.uuid4()), spec=_spec(fn), code=fn.code_bytes,
            attempts=1 + max(0, retries), on_failure=on_failure,
        )
        with self._pending_lock:
            self._pending += 1
        self._jobs.put(job)
        return job.request_id

    def function_for(self, account_id: str, region: str, fn_arn: str) -> tuple[FunctionSpec, Callable[[], bytes]] | None:
        """What the runner needs to run ``fn_arn`` (S3 Batch Operations tasks), or None if it does not exist."""
        from moto.awslambda.utils import get_backend

        try:
            fn = get_backend(account_id, region).get_function(fn_arn)
        except Exception:  # noqa: BLE001 - moto raises its own not-found types
            return None
        return _spec(fn), lambda: fn.code_bytes

    def invoke_api(self, fn: Any, body: Any, request_headers: Any, response_headers: dict[str, Any]) -> bytes:
        """Lambda Invoke: run now (RequestResponse), queue (Event) or only check (DryRun)."""
        headers = {str(k).lower(): v for k, v in dict(request_headers or {}).items()}
        kind = headers.get("x-amz-invocation-type", "RequestResponse")
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        event = json.loads(body) if body else {}
        if kind == "DryRun":
            return b""
        if kind == "Event":
            account_id = fn.account_id
            request_id = self._queue(account_id, fn.region, fn, event)
            response_headers["x-amzn-requestid"] = request_id
            return b""
        result = self.runner.invoke(_spec(fn), lambda: fn.code_bytes, event)
        response_headers["x-amzn-requestid"] = result.request_id
        response_headers["x-amz-executed-version"] = str(fn.version)
        if headers.get("x-amz-log-type") == "Tail":
            tail = result.log_text.encode("utf-8")[-4096:]
            response_headers["x-amz-log-result"] = base64.b64encode(tail).decode("ascii")
        if not result.ok:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(result.error).encode("utf-8")
        return result.payload.encode("utf-8")

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._run_async(job)
            except Exception as exc:  # noqa: BLE001 - keep the dispatcher alive, say what happened
                self.say(f"invocation {job.request_id} of {job.function_arn} could not run: {exc}")
            finally:
                with self._pending_lock:
                    self._pending -= 1
                    self._pending_lock.notify_all()

    def _run_async(self, job: _AsyncJob) -> None:
        reserved = job.spec.reserved_concurrency
        if reserved == 0:
            self.say(f"{job.spec.name} has reserved concurrency 0: event {job.request_id} throttled and dropped")
            return
        if reserved is None:
            self._run_attempts(job)
            return
        with self._limits_lock:
            limit = self._limits.setdefault(job.spec.arn, threading.BoundedSemaphore(reserved))
        with limit:
            self._run_attempts(job)

    def _run_attempts(self, job: _AsyncJob) -> None:
        result: Invocation | None = None
        for attempt in range(job.attempts):
            if attempt:
                time.sleep(self.retry_delays[min(attempt - 1, len(self.retry_delays) - 1)])
            result = self.runner.invoke(job.spec, lambda: job.code, job.event, job.request_id)
            if result.ok:
                return
        if job.on_failure and result is not None:
            self._send_failure(job, result)

    def _send_failure(self, job: _AsyncJob, result: Invocation) -> None:
        """The on-failure destination record (SQS), as Lambda writes it after the last retry."""
        if ":sqs:" not in job.on_failure:  # type: ignore[operator]
            self.say(f"on-failure destination {job.on_failure} is not an SQS queue; not delivered")
            return
        queue_name = job.on_failure.rsplit(":", 1)[-1]  # type: ignore[union-attr]
        account = job.on_failure.split(":")[4]  # type: ignore[union-attr]
        sqs = self._client_for("sqs")(job.on_failure.split(":")[3])  # type: ignore[union-attr]
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "requestId": job.request_id, "functionArn": f"{job.function_arn}:$LATEST",
                "condition": "RetriesExhausted", "approximateInvokeCount": job.attempts,
            },
            "requestPayload": job.event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": result.error,
        }
        try:
            url = sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record))
        except Exception as exc:  # noqa: BLE001
            self.say(f"could not deliver failure record to {job.on_failure}: {exc}")

    def drain(self, timeout_s: float) -> bool:
        """Wait until queued asynchronous invocations have run (True) or the timeout passed."""
        deadline = time.monotonic() + timeout_s
        with self._pending_lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._pending_lock.wait(remaining)
        return True

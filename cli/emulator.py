"""`imgproc local`: an AWS emulator on 127.0.0.1 that runs Lambda functions without Docker.

moto's server provides the AWS APIs (S3, Lambda, CloudFormation, IAM, Logs, SQS, ...). moto
stores S3 -> Lambda notifications but can only run a function through Docker, so the emulator
hooks two places inside the moto process it hosts:

* the S3 -> Lambda notification: the exact event moto built for the bucket's Lambda
  configuration is queued and delivered asynchronously (as S3 does) to the function;
* Lambda ``Invoke``: ``RequestResponse`` runs the function and returns its result,
  ``Event`` queues it like an S3 notification.

A function runs from the zip stored in the emulator (see `emulator_runner`), with async retries
(two by default, or the function's MaximumRetryAttempts) and its on-failure SQS destination.
It also applies what moto's CloudFormation ignores: a bucket's NotificationConfiguration,
LifecycleConfiguration and PublicAccessBlockConfiguration, and AWS::Lambda::EventInvokeConfig,
so `imgproc deploy` wires the pipeline as it does on AWS. AWS::S3::BucketPolicy stays
unapplied (see `emulator_cfn`).

State: on shutdown every moto service's in-memory state (buckets and objects, stacks, functions,
roles, log groups, queues...) is saved to ``<state-dir>/state.pickle`` and restored at the next
start by the same moto version. A crash (SIGKILL) loses what changed since the last start.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cli.emulator_cfn import EXTRA_CFN_TYPES, apply_bucket_properties
from cli.emulator_runner import FunctionSpec, Invocation, LogSink, Runner
from cli.emulator_state import load_state, save_state

DEFAULT_PORT = 4567  # LocalStack's 4566 + 1: both can run side by side.
DEFAULT_STATE_DIR = Path(".imgproc") / "local"
INFO_FILE = "emulator.json"
STATE_FILE = "state.pickle"
LOG_FILE = "emulator.log"


class EmulatorError(Exception):
    """A one-line problem starting or stopping the emulator."""


class EmulatorUnavailable(EmulatorError):
    """moto's server (the `imgproc[local]` extra) is not installed."""


def require_moto() -> str:
    """moto's version, or a clear error naming the extra to install."""
    try:
        import flask  # noqa: F401  (moto[server] needs Flask)
        import moto
        from moto.server import ThreadedMotoServer  # noqa: F401
    except ImportError as exc:
        raise EmulatorUnavailable(
            f"`imgproc local` needs moto's server ({exc.name} is missing): pip install 'imgproc[local]'"
        ) from None
    return moto.__version__


# --- running functions ---------------------------------------------------------------------------


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

    _active: "Dispatcher | None" = None

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
        self._jobs: "queue.Queue[_AsyncJob | None]" = queue.Queue()
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

    def install(self) -> "Dispatcher":
        import moto.cloudformation.parsing as cfn_parsing
        import moto.s3.notifications as notifications
        from moto.awslambda.models import LambdaFunction
        from moto.s3.models import FakeBucket

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
        LambdaFunction.invoke = invoke
        FakeBucket.create_from_cloudformation_json = classmethod(bucket_create)
        FakeBucket.update_from_cloudformation_json = classmethod(bucket_update)
        cfn_parsing.resource_class_from_type = resource_class_from_type
        Dispatcher._active = self
        for thread in self._threads:
            thread.start()
        return self

    def uninstall(self, drain_s: float = 10.0) -> None:
        import moto.cloudformation.parsing as cfn_parsing
        import moto.s3.notifications as notifications
        from moto.awslambda.models import LambdaFunction
        from moto.s3.models import FakeBucket

        if Dispatcher._active is not self:
            return
        self.drain(drain_s)
        notifications._invoke_awslambda = self._saved["notify"]
        LambdaFunction.invoke = self._saved["invoke"]
        FakeBucket.create_from_cloudformation_json = self._saved["bucket_create"]
        FakeBucket.update_from_cloudformation_json = self._saved["bucket_update"]
        cfn_parsing.resource_class_from_type = self._saved["cfn_types"]
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


# --- the emulator process -------------------------------------------------------------------


def port_available(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server does: connections of a stopped emulator in TIME_WAIT do not block the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class Emulator:
    """moto's server + the dispatcher + saved state, in this process."""

    def __init__(self, port: int = DEFAULT_PORT, state_dir: Path = DEFAULT_STATE_DIR, host: str = "127.0.0.1",
                 concurrency: int = 2, persist: bool = True, say: Callable[[str], None] = print):
        self.host, self.port, self.state_dir = host, port, Path(state_dir)
        self.concurrency, self.persist, self.say = concurrency, persist, say
        self.server: Any = None
        self.dispatcher: Dispatcher | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        require_moto()
        if self.port and not port_available(self.host, self.port):
            raise EmulatorError(
                f"port {self.port} on {self.host} is in use (LocalStack? another `imgproc local up`?); "
                "choose another with --port, or --port 0 for any free port"
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        from moto.server import ThreadedMotoServer

        if self.persist:
            self.say(load_state(self.state_dir / STATE_FILE))
        self.server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self.server.start()
        self.port = self.server.get_host_and_port()[1]
        self.dispatcher = Dispatcher(self.endpoint, self.state_dir / "cache", self.concurrency, say=self.say).install()
        return self.endpoint

    def stop(self) -> None:
        # Queued invocations finish first (they need the server), then nothing new comes in.
        started = self.server is not None
        if self.dispatcher is not None:
            self.dispatcher.drain(10.0)
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self.dispatcher is not None:
            self.dispatcher.uninstall(drain_s=0)
            self.dispatcher = None
        if self.persist and started:  # never overwrite saved state with a failed start's empty one
            size = save_state(self.state_dir / STATE_FILE)
            self.say(f"saved state to {self.state_dir / STATE_FILE} ({size} bytes)")


def serve(port: int, state_dir: Path, concurrency: int = 2, persist: bool = True,
          say: Callable[[str], None] = print) -> int:
    """Run the emulator until SIGTERM/SIGINT; writes <state-dir>/emulator.json once ready."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the log
    # The emulator talks to itself with fixed credentials: a user's AWS profile must not interfere.
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(variable, None)
    emulator = Emulator(port=port, state_dir=state_dir, concurrency=concurrency, persist=persist, say=say)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    endpoint = emulator.start()
    info = {"pid": os.getpid(), "endpoint": endpoint, "port": emulator.port, "state_dir": str(Path(state_dir).resolve()),
            "started": time.time(), "detached": os.getpgid(0) == os.getpid()}
    info_path = Path(state_dir) / INFO_FILE
    info_path.write_text(json.dumps(info), encoding="utf-8")
    say(f"emulator ready at {endpoint} (pid {os.getpid()})")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        say("stopping")
        emulator.stop()
        try:
            if json.loads(info_path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                info_path.unlink()
        except (OSError, ValueError):
            pass
    return 0


# --- starting and stopping it from the CLI -----------------------------------------------------


def read_info(state_dir: Path) -> dict[str, Any] | None:
    """The running emulator's endpoint and pid, or None when none is running for this folder."""
    path = Path(state_dir) / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _is_emulator(info.get("pid", 0)):
        path.unlink(missing_ok=True)
        return None
    return info


def _is_emulator(pid: int) -> bool:
    """True when ``pid`` is alive and is an emulator process (not a recycled pid)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the info file
    return b"cli.emulator" in cmdline or b"imgproc" in cmdline


def start_detached(port: int, state_dir: Path, concurrency: int = 2, persist: bool = True,
                   timeout_s: float = 30.0) -> dict[str, Any]:
    """Start `python -m cli.emulator serve` in its own session; returns its info once ready."""
    require_moto()
    state_dir = Path(state_dir)
    running = read_info(state_dir)
    if running:
        raise EmulatorError(f"an emulator is already running at {running['endpoint']} (pid {running['pid']}); "
                            "stop it with `imgproc local down`")
    if port and not port_available("127.0.0.1", port):
        raise EmulatorError(f"port {port} on 127.0.0.1 is in use (LocalStack? another `imgproc local up`?); "
                            "choose another with --port, or --port 0 for any free port")
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / LOG_FILE
    command = [sys.executable, "-m", "cli.emulator", "serve", "--port", str(port), "--state-dir", str(state_dir),
               "--concurrency", str(concurrency)] + ([] if persist else ["--no-persist"])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")]))
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = read_info(state_dir)
        if info and info.get("pid") == process.pid:
            info["log"] = str(log_path)
            return info
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            raise EmulatorError(f"the emulator exited during start-up: {tail[0] if tail else 'no output'} (see {log_path})")
        time.sleep(0.1)
    _terminate(process.pid, group=True, timeout_s=5)
    raise EmulatorError(f"the emulator did not become ready within {timeout_s:.0f} s (see {log_path})")


def _terminate(pid: int, group: bool, timeout_s: float) -> bool:
    """SIGTERM (to the process group when detached), then SIGKILL after the timeout; True if it exited."""
    send = (lambda sig: os.killpg(pid, sig)) if group else (lambda sig: os.kill(pid, sig))
    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid, group):
            return True
        time.sleep(0.1)
    try:
        send(signal.SIGKILL)
    except ProcessLookupError:
        pass
    return False


def _alive(pid: int, group: bool) -> bool:
    try:
        if group:
            os.killpg(pid, 0)
        else:
            os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return not group


def stop(state_dir: Path, timeout_s: float = 30.0) -> dict[str, Any] | None:
    """Stop the emulator running for ``state_dir``; returns its info, or None if none was running."""
    info = read_info(state_dir)
    if info is None:
        return None
    clean = _terminate(info["pid"], group=bool(info.get("detached")), timeout_s=timeout_s)
    info["clean"] = clean
    (Path(state_dir) / INFO_FILE).unlink(missing_ok=True)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.emulator", description="The `imgproc local` emulator process.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve")
    run.add_argument("--port", type=int, default=DEFAULT_PORT)
    run.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    run.add_argument("--concurrency", type=int, default=2)
    run.add_argument("--no-persist", action="store_true")
    args = parser.parse_args(argv)

    def say(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)

    try:
        return serve(args.port, args.state_dir, args.concurrency, not args.no_persist, say=say)
    except EmulatorError as exc:
        say(f"error: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())

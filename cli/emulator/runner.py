"""Run a deployed Lambda package on this machine, the way Lambda would, and log like Lambda.

The function's zip (the exact bytes stored in the emulator) is unpacked once per code hash into
a cache folder and run in a separate process under the function's runtime interpreter
(``python3.12`` for runtime python3.12) by `emulator_bootstrap.py`. A worker stays warm between
invocations, as a Lambda execution environment does; a new worker is a cold start, reported
with ``Init Duration`` in the REPORT line. Everything the handler prints goes to the function's
log group as one log event per line, framed by START / END / REPORT lines.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
import io
import json
import math
import os
import queue
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
# Pure-Python libraries Lambda's Python runtime provides beside the package (boto3 and friends).
RUNTIME_LIBRARIES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
INIT_TIMEOUT_S = 10.0  # Lambda's limit for the init phase of on-demand functions.


@dataclass(frozen=True)
class FunctionSpec:
    """What Lambda knows about a function version: enough to run it and to log like it."""

    name: str
    arn: str
    region: str
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]
    code_sha256: str
    version: str = "$LATEST"
    reserved_concurrency: int | None = None

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    def worker_key(self) -> str:
        """Workers are reused only for the same code and configuration (as Lambda does)."""
        config = json.dumps(
            [self.arn, self.handler, self.runtime, self.timeout_s, self.memory_mb,
             sorted(self.environment.items()), self.code_sha256],
        )
        return hashlib.sha256(config.encode()).hexdigest()


@dataclass
class Invocation:
    """The outcome of one invocation, as the Invoke API and the async dispatcher see it."""

    request_id: str
    ok: bool
    payload: str = "null"
    error: dict[str, Any] | None = None
    duration_ms: float = 0.0
    init_ms: float | None = None
    max_memory_mb: int = 0
    timed_out: bool = False
    log_text: str = ""


def _utc_iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- the interpreter and the files a worker needs -------------------------------------------


_PYTHONS: dict[str, tuple[str, str | None]] = {}


def _python_version(path: str) -> str | None:
    try:
        out = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=20, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_runtime_python(runtime: str) -> tuple[str, str | None]:
    """The interpreter for a Lambda runtime name like "python3.12", and a warning if it is a stand-in.

    Looks at IMGPROC_LOCAL_PYTHON, then ``pythonX.Y`` on PATH, then pyenv's and the usual install
    folders; falls back to the current interpreter (with a warning: wheels built for the
    runtime's Python, such as Pillow's, will then not import).
    """
    if runtime in _PYTHONS:
        return _PYTHONS[runtime]
    wanted = runtime.removeprefix("python") if runtime.startswith("python") else ""
    candidates = [os.environ.get("IMGPROC_LOCAL_PYTHON", "")]
    if wanted:
        candidates.append(shutil.which(f"python{wanted}") or "")
        pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
        candidates += sorted(glob.glob(f"{pyenv_root}/versions/{wanted}*/bin/python{wanted}"), reverse=True)
        uv_root = os.path.expanduser("~/.local/share/uv/python")
        candidates += sorted(glob.glob(f"{uv_root}/cpython-{wanted}*/bin/python{wanted}"), reverse=True)
        candidates += [f"/usr/local/bin/python{wanted}", f"/usr/bin/python{wanted}"]
    for candidate in filter(None, candidates):
        if os.path.exists(candidate) and _python_version(candidate) == wanted:
            _PYTHONS[runtime] = (candidate, None)
            return _PYTHONS[runtime]
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    warning = (
        f"no interpreter for Lambda runtime {runtime!r} found; running it with Python {here} "
        f"({sys.executable}), where compiled wheels in the package (Pillow) will not import. "
        f"Install Python {wanted or '3.12'} (pyenv, uv, your OS) or set IMGPROC_LOCAL_PYTHON."
    )
    _PYTHONS[runtime] = (sys.executable, warning)
    return _PYTHONS[runtime]


def runtime_layer(cache_dir: Path) -> Path:
    """A folder with boto3 and its pure-Python dependencies: what Lambda's runtime provides."""
    layer = cache_dir / "runtime"
    layer.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        source = Path(spec.origin)
        if source.name == "__init__.py":
            source = source.parent
        link = layer / source.name
        if not link.exists():
            try:
                link.symlink_to(source)
            except FileExistsError:
                pass
    return layer


def unpack(code: bytes, cache_dir: Path) -> Path:
    """Unzip a deployment package once per content hash; returns the task folder."""
    digest = hashlib.sha256(code).hexdigest()
    target = cache_dir / "code" / digest
    if target.is_dir():
        return target
    tmp = cache_dir / "code" / f".{digest}.{os.getpid()}.{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(code)) as archive:
        archive.extractall(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another thread unpacked the same code first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


# --- CloudWatch Logs ------------------------------------------------------------------------


class LogSink:
    """Writes log events to CloudWatch Logs (the emulator's), creating group and stream as Lambda does."""

    def __init__(self, client_factory: Callable[[str], Any]):
        self._clients: dict[str, Any] = {}
        self._factory = client_factory
        self._lock = threading.Lock()

    def _client(self, region: str):
        with self._lock:
            if region not in self._clients:
                self._clients[region] = self._factory(region)
            return self._clients[region]

    def open_stream(self, region: str, group: str, stream: str) -> None:
        client = self._client(region)
        for call, kwargs in (
            (client.create_log_group, {"logGroupName": group}),
            (client.create_log_stream, {"logGroupName": group, "logStreamName": stream}),
        ):
            try:
                call(**kwargs)
            except client.exceptions.ResourceAlreadyExistsException:
                pass

    def write(self, region: str, group: str, stream: str, lines: list[tuple[int, str]]) -> None:
        if not lines:
            return
        client = self._client(region)
        events = [{"timestamp": ts, "message": msg} for ts, msg in sorted(lines, key=lambda x: x[0])]
        for start in range(0, len(events), 5000):
            try:
                client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start:start + 5000])
            except client.exceptions.ResourceNotFoundException:
                # The group was deleted (e.g. by `imgproc destroy`) while the worker was warm.
                self.open_stream(region, group, stream)
                client.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start:start + 5000])


# --- one execution environment ----------------------------------------------------------------


class WorkerCrashed(Exception):
    pass


@dataclass
class Worker:
    """One warm execution environment: a child process running the bootstrap loop."""

    spec: FunctionSpec
    task_dir: Path
    python: str
    layer: Path
    endpoint: str
    sink: LogSink
    process: subprocess.Popen | None = None
    stream: str = ""
    init_ms: float | None = None
    init_error: dict[str, Any] | None = None
    _lines: queue.Queue[tuple[int, str] | None] = field(default_factory=queue.Queue)
    _token: str = field(default_factory=lambda: secrets.token_hex(8))
    _cold: bool = True

    def start(self) -> list[tuple[int, str]]:
        """Start the process and run the init phase; returns the log lines printed during init."""
        now = datetime.now(UTC)
        self.stream = f"{now:%Y/%m/%d}/[{self.spec.version}]{uuid.uuid4().hex}"
        self.sink.open_stream(self.spec.region, self.spec.log_group, self.stream)
        env = self._environment()
        self.process = subprocess.Popen(
            [self.python, "-u", "-s", str(BOOTSTRAP), str(self.task_dir), str(self.layer), self.spec.handler, self._token],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, cwd=self.task_dir, text=True, encoding="utf-8", errors="replace", bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True, name=f"worker-out-{self.process.pid}").start()
        lines, kind, payload = self._collect(max(INIT_TIMEOUT_S, 1.0))
        if kind == "READY":
            self.init_ms = payload["init_ms"]
        elif kind == "INIT_ERROR":
            self.init_ms = payload["init_ms"]
            self.init_error = payload["error"]
        else:
            self.init_error = {"errorType": "Runtime.ExitError", "errorMessage": "Runtime exited during init"}
        return lines

    def _environment(self) -> dict[str, str]:
        spec = self.spec
        env = {
            # What Lambda's python runtime sets (reserved variables), pointed at the emulator.
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "HOME": os.environ.get("HOME", "/tmp"),
            "LAMBDA_TASK_ROOT": str(self.task_dir),
            "LAMBDA_RUNTIME_DIR": str(self.layer),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            # The role's credentials in AWS; any value works against the emulator.
            "AWS_ACCESS_KEY_ID": "emulator",
            "AWS_SECRET_ACCESS_KEY": "emulator",
            "AWS_SESSION_TOKEN": "emulator",
            "AWS_ENDPOINT_URL": self.endpoint,
            "PYTHONUNBUFFERED": "1",
            # Compiled modules are cached beside the unpacked code, never in the package or the venv.
            "PYTHONPYCACHEPREFIX": str(self.task_dir.parent.parent / "pycache"),
        }
        env.update(spec.environment)
        return env

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put((_now_ms(), line.rstrip("\n")))
        self._lines.put(None)

    def _collect(self, timeout_s: float) -> tuple[list[tuple[int, str]], str | None, dict[str, Any]]:
        """Log lines until the next control line; kind None means timeout or exit."""
        deadline = time.monotonic() + timeout_s
        lines: list[tuple[int, str]] = []
        marker = f"\x1e{self._token} "
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return lines, None, {"timeout": True}
            try:
                item = self._lines.get(timeout=remaining)
            except queue.Empty:
                return lines, None, {"timeout": True}
            if item is None:
                return lines, None, {"exited": True}
            _ts, text = item
            if text.startswith(marker):
                kind, _, body = text[len(marker):].partition(" ")
                return lines, kind, json.loads(body)
            lines.append(item)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and self.init_error is None

    def invoke(self, event: Any, request_id: str, pending_lines: list[tuple[int, str]] | None = None) -> Invocation:
        """One invocation: START, the handler's lines, END, REPORT into the log stream."""
        spec = self.spec
        cold, self._cold = self._cold, False
        log = list(pending_lines or [])
        start_ms = _now_ms()
        log.append((start_ms, f"START RequestId: {request_id} Version: {spec.version}"))
        began = time.perf_counter()
        result = Invocation(request_id=request_id, ok=False, init_ms=self.init_ms if cold else None)
        if self.init_error is not None:
            result.error = dict(self.init_error, requestId=request_id)
            status = f"error\tError Type: {self.init_error.get('errorType', 'Runtime.Unknown')}"
        else:
            assert self.process is not None and self.process.stdin is not None
            message = {
                "event": event, "request_id": request_id, "function_arn": spec.arn,
                "timeout_ms": spec.timeout_s * 1000,
                "trace_id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0",
            }
            try:
                self.process.stdin.write(json.dumps(message) + "\n")
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                pass
            lines, kind, payload = self._collect(spec.timeout_s)
            log.extend(lines)
            if kind == "DONE":
                result.ok = payload["ok"]
                result.payload = payload.get("payload", "null")
                result.error = payload.get("error")
                result.max_memory_mb = math.ceil(payload.get("max_rss_mb", 0))
                status = ""  # an exception in the handler is a function error, not a runtime failure
                if result.max_memory_mb > spec.memory_mb:
                    # Lambda kills an environment that goes over its memory size; so do we (after the fact).
                    self.stop()
                    result.ok = False
                    result.error = {"errorType": "Runtime.OutOfMemory",
                                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"}
                    log.append((_now_ms(), result.error["errorMessage"]))
                    status = "error\tError Type: Runtime.OutOfMemory"
            elif payload.get("timeout"):
                self.stop()
                result.timed_out = True
                timed_out = f"Task timed out after {spec.timeout_s:.2f} seconds"
                log.append((_now_ms(), f"{_utc_iso(_now_ms())} {request_id} {timed_out}"))
                result.error = {"errorType": "Sandbox.Timedout", "errorMessage": f"{_utc_iso(_now_ms())} {request_id} {timed_out}"}
                status = "timeout"
            else:
                code = self.process.wait()
                result.error = {"errorType": "Runtime.ExitError", "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {code}"}
                log.append((_now_ms(), result.error["errorMessage"]))
                status = "error\tError Type: Runtime.ExitError"
        result.duration_ms = (time.perf_counter() - began) * 1000
        end_ms = max(_now_ms(), log[-1][0])
        log.append((end_ms, f"END RequestId: {request_id}"))
        log.append((end_ms, self._report(result, status)))
        self.sink.write(spec.region, spec.log_group, self.stream, log)
        result.log_text = "\n".join(message for _, message in log) + "\n"
        return result

    def _report(self, result: Invocation, status: str) -> str:
        """Lambda's REPORT line (Billed Duration includes the init phase on cold starts, as since 2025)."""
        billed = math.ceil(result.duration_ms + (result.init_ms or 0))
        parts = [
            f"REPORT RequestId: {result.request_id}",
            f"Duration: {result.duration_ms:.2f} ms",
            f"Billed Duration: {billed} ms",
            f"Memory Size: {self.spec.memory_mb} MB",
            f"Max Memory Used: {result.max_memory_mb or self._rss_now()} MB",
        ]
        if result.init_ms is not None:
            parts.append(f"Init Duration: {result.init_ms:.2f} ms")
        if status:
            parts.append(f"Status: {status}")
        return "\t".join(parts) + "\t"

    def _rss_now(self) -> int:
        try:
            with open(f"/proc/{self.process.pid}/status", encoding="ascii") as fh:  # type: ignore[union-attr]
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return math.ceil(int(line.split()[1]) / 1024)
        except (OSError, AttributeError, ValueError):
            pass
        return 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.process.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


# --- the pool of execution environments ------------------------------------------------------


class Runner:
    """Invokes functions: picks an idle warm worker or starts a cold one; thread-safe."""

    def __init__(self, cache_dir: Path, endpoint: str, sink: LogSink, warn: Callable[[str], None] = print):
        self.cache_dir = Path(cache_dir).resolve()
        self.endpoint = endpoint
        self.sink = sink
        self.warn = warn
        self._idle: dict[str, list[Worker]] = {}
        self._busy: set[int] = set()
        self._all: list[Worker] = []
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    def invoke(self, spec: FunctionSpec, code: Callable[[], bytes], event: Any, request_id: str | None = None) -> Invocation:
        request_id = request_id or str(uuid.uuid4())
        key = spec.worker_key()
        worker, init_lines = None, None
        with self._lock:
            while self._idle.get(key):
                candidate = self._idle[key].pop()
                if candidate.alive():
                    worker = candidate
                    break
                candidate.stop()
        if worker is None:
            python, warning = find_runtime_python(spec.runtime or "python3.12")
            if warning and warning not in self._warned:
                self._warned.add(warning)
                self.warn(f"warning: {warning}")
            worker = Worker(spec, unpack(code(), self.cache_dir), python, runtime_layer(self.cache_dir), self.endpoint, self.sink)
            with self._lock:
                self._all.append(worker)
            init_lines = worker.start()
        try:
            return worker.invoke(event, request_id, init_lines)
        finally:
            with self._lock:
                if worker.alive():
                    self._idle.setdefault(key, []).append(worker)
                else:
                    worker.stop()
                    self._all = [w for w in self._all if w.alive()]

    def discard_stale(self, live_keys: set[str]) -> None:
        """Stop idle workers whose function was deleted or changed."""
        with self._lock:
            for key in list(self._idle):
                if key not in live_keys:
                    for worker in self._idle.pop(key):
                        worker.stop()

    def close(self) -> None:
        with self._lock:
            workers, self._all, self._idle = self._all, [], {}
        for worker in workers:
            worker.stop()

    def pids(self) -> list[int]:
        with self._lock:
            return [w.process.pid for w in self._all if w.process is not None and w.process.poll() is None]

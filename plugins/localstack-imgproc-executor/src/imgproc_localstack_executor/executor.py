"""LocalStack's RuntimeExecutor, backed by imgproc's local Lambda runner instead of a container.

LocalStack keeps doing what it does for Docker functions: it pools execution environments, keeps
them warm (LAMBDA_KEEPALIVE_MS), applies concurrency, retries async invocations, sends failures to
the function's on-failure destination and writes the returned log text to CloudWatch Logs. Each
execution environment it asks for here is one warm worker of `runner.py`: the function's unzipped
package imported once by the runtime's Python (python3.12 for runtime python3.12), then one
invocation at a time, with the function's timeout, an out-of-memory kill when the peak resident
memory (VmHWM) passes the memory size, and Lambda's START / END / REPORT lines.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import RuntimeExecutor

from imgproc_localstack_executor import runner
from localstack import config

LOG = logging.getLogger(__name__)

# LocalStack sets these for a container; the worker takes them over so the function acts with
# the role's credentials and logs to the stream LocalStack writes the returned lines to.
FROM_LOCALSTACK = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                   "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE")


def cache_dir() -> Path:
    """Where runtime libraries are linked: under LocalStack's temp folder, never elsewhere."""
    return Path(tempfile.gettempdir()) / "imgproc-executor"


class _LocalStackLogs(runner.LogSink):
    """LocalStack writes an invocation's log text itself (from InvocationResult.logs): nothing to do here."""

    def __init__(self) -> None:
        super().__init__(lambda region: None)

    def open_stream(self, region: str, group: str, stream: str) -> None:
        pass

    def write(self, region: str, group: str, stream: str, lines: list[tuple[int, str]]) -> None:
        pass


class _Worker(runner.Worker):
    """The runner's worker, with the environment LocalStack computed for this execution environment."""

    localstack_env: dict[str, str] | None = None

    def _environment(self) -> dict[str, str]:
        env = super()._environment()
        given = self.localstack_env or {}
        env.update({name: str(given[name]) for name in FROM_LOCALSTACK if given.get(name)})
        self.stream = env["AWS_LAMBDA_LOG_STREAM_NAME"]
        return env


def spec_for(version: FunctionVersion) -> runner.FunctionSpec:
    settings = version.config
    return runner.FunctionSpec(
        name=version.id.function_name,
        arn=version.qualified_arn,
        region=version.id.region,
        handler=settings.handler or "",
        runtime=str(settings.runtime or ""),
        timeout_s=int(settings.timeout),
        memory_mb=int(settings.memory_size),
        environment={k: str(v) for k, v in (settings.environment or {}).items()},
        code_sha256=getattr(settings.code, "code_sha256", "") or "",
        version=version.id.qualifier,
    )


class LocalProcessExecutor(RuntimeExecutor):
    """One LocalStack execution environment = one warm local worker process."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id, function_version)
        self.spec = spec_for(function_version)
        self._env: dict[str, str] = {}
        self._worker: _Worker | None = None
        self._init_lines: list[tuple[int, str]] = []
        self._last_logs = ""

    # --- version preparation (once per function version) -----------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        """Refuse what we cannot run (the function ends Failed with this reason); unzip the code."""
        settings = function_version.config
        runtime = str(settings.runtime or "")
        if not runtime.startswith("python") or settings.code is None:
            raise ValueError(f"the {__package__} executor runs zip-packaged python functions only, "
                             f"not {runtime or str(settings.package_type)}")
        _python, warning = runner.find_runtime_python(runtime)
        if warning:
            LOG.warning("%s", warning)
        settings.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        """Nothing beyond the workers (stopped by LocalStack); LocalStack owns the unzipped code."""

    @classmethod
    def validate_environment(cls) -> bool:
        return True

    # --- one execution environment ----------------------------------------------------------

    def _new_worker(self) -> _Worker:
        python, _warning = runner.find_runtime_python(self.spec.runtime)
        task_dir = Path(self.function_version.config.code.get_unzipped_code_location())
        worker = _Worker(self.spec, task_dir, python, runner.runtime_layer(cache_dir()),
                         self._env.get("AWS_ENDPOINT_URL") or self._endpoint(), _LocalStackLogs())
        worker.localstack_env = self._env
        self._init_lines = worker.start()
        self._last_logs = "\n".join(text for _, text in self._init_lines)
        return worker

    def start(self, env_vars: dict[str, str]) -> None:
        """Start the worker and run the init phase; an init error is reported by the first invoke, as Lambda does."""
        self._env = dict(env_vars)
        self._worker = self._new_worker()

    def stop(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        if self._worker is None or not (self._worker.alive() or self._worker.init_error):
            # The last invocation timed out or ran out of memory: Lambda starts a fresh environment.
            self._worker = self._new_worker()
        pending, self._init_lines = self._init_lines, []
        try:
            event = json.loads(payload.get("payload") or "null")
        except ValueError:
            body = {"errorType": "Runtime.InvalidEventPayload", "errorMessage": "the event is not JSON"}
            return InvocationResult(request_id, json.dumps(body).encode(), is_error=True, logs="")
        outcome = self._worker.invoke(event, request_id, pending)
        if self._worker.init_error:
            self._worker.stop()
            self._worker = None  # the next invocation re-runs the init phase, as Lambda does
        self._last_logs = outcome.log_text
        body = outcome.payload if outcome.ok else json.dumps(outcome.error or {})
        return InvocationResult(request_id, body.encode(), is_error=not outcome.ok, logs=outcome.log_text)

    def get_logs(self) -> str:
        return self._last_logs

    # --- addresses: everything is on this host's loopback -----------------------------------

    def _endpoint(self) -> str:
        return f"http://{self.get_endpoint_from_executor()}:{config.GATEWAY_LISTEN[0].port}"

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return "127.0.0.1"

    def get_runtime_endpoint(self) -> str:
        # No runtime-init callback: results come back through the worker's pipe, not over HTTP.
        return f"{self._endpoint()}/_localstack_lambda/{self.id}"

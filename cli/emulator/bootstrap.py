"""The Lambda runtime loop that `imgproc local` runs inside each function worker.

Run as a script by the function's Python (python3.12, like Lambda's runtime), never imported by
imgproc itself: ``python3.12 -u emulator_bootstrap.py TASK_DIR RUNTIME_DIR HANDLER TOKEN``.

It plays the part of Lambda's bootstrap: imports the handler module from the unpacked package
once (the cold start), then reads one invocation per line on stdin, calls the handler with the
event and a context object, and reports on stdout with a control line
``\\x1e<TOKEN> <KIND> <json>`` after flushing everything the handler printed, so the parent can
tell the handler's own output (which becomes CloudWatch log lines) from the protocol.
Only the standard library is used here: this file runs under another interpreter.
"""

import importlib
import json
import os
import resource
import sys
import time
import traceback


def _control(token, kind, payload):
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout.write(f"\x1e{token} {kind} {json.dumps(payload)}\n")
    sys.stdout.flush()


def _max_rss_mb():
    """Peak resident memory of this process, in MB.

    VmHWM first: on Linux, ru_maxrss survives execve, so a worker started by a 150 MB parent
    would report at least 150 MB; VmHWM belongs to this program's own address space.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        pass
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _error_payload(exc, skip_frames=0):
    frames = traceback.extract_tb(exc.__traceback__)[skip_frames:]
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_list(frames),
    }


def _log_error(payload):
    # Lambda's Python runtime logs an unhandled error as one record: "[ERROR] Type: message"
    # followed by the traceback; we print the same text (one log line per printed line).
    sys.stdout.write(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}\n")
    sys.stdout.write("Traceback (most recent call last):\n")
    for frame in payload["stackTrace"]:
        sys.stdout.write(frame if frame.endswith("\n") else frame + "\n")


class Context:
    """The attributes of Lambda's context object."""

    def __init__(self, invocation):
        env = os.environ
        self.function_name = env["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.invoked_function_arn = invocation["function_arn"]
        self.aws_request_id = invocation["request_id"]
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + invocation["timeout_ms"] / 1000.0

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv):
    task_dir, runtime_dir, handler_name, token = argv[1:5]
    # Lambda's search path: the package first, then the runtime's own libraries (boto3).
    sys.path[:] = [task_dir, runtime_dir] + [p for p in sys.path[1:] if p]
    os.chdir(task_dir)

    started = time.perf_counter()
    try:
        module_name, _, function_name = handler_name.rpartition(".")
        if not module_name:
            raise ValueError(f"Bad handler '{handler_name}': expected module.function")
        module = importlib.import_module(module_name.replace("/", "."))
        handler = getattr(module, function_name)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, like Runtime.ImportModuleError
        payload = _error_payload(exc)
        if isinstance(exc, SyntaxError):
            payload["errorType"] = "Runtime.UserCodeSyntaxError"
        elif isinstance(exc, ImportError):
            payload["errorType"] = "Runtime.ImportModuleError"
        elif isinstance(exc, AttributeError):
            payload["errorType"] = "Runtime.HandlerNotFound"
        payload["errorMessage"] = f"Unable to import module '{handler_name}': {exc}"
        sys.stdout.write(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}\n")
        _control(token, "INIT_ERROR", {"init_ms": (time.perf_counter() - started) * 1000, "error": payload})
        return 1
    _control(token, "READY", {"init_ms": (time.perf_counter() - started) * 1000})

    for line in sys.stdin:
        if not line.strip():
            continue
        invocation = json.loads(line)
        context = Context(invocation)
        os.environ["_X_AMZN_TRACE_ID"] = invocation.get("trace_id", "")
        begun = time.perf_counter()
        try:
            result = handler(invocation["event"], context)
            try:
                body = json.dumps(result)
                outcome = {"ok": True, "payload": body}
            except (TypeError, ValueError) as exc:
                error = _error_payload(exc)
                error["errorType"] = "Runtime.MarshalError"
                error["errorMessage"] = f"Unable to marshal response: {exc}"
                _log_error(error)
                outcome = {"ok": False, "error": error}
        except Exception as exc:  # noqa: BLE001 - an unhandled error in the function, as Lambda reports it
            error = _error_payload(exc, skip_frames=1)
            error["requestId"] = invocation["request_id"]
            _log_error(error)
            outcome = {"ok": False, "error": error}
        outcome["ms"] = (time.perf_counter() - begun) * 1000
        outcome["max_rss_mb"] = _max_rss_mb()
        _control(token, "DONE", outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""`imgproc local`: an AWS emulator on 127.0.0.1 that runs Lambda functions without Docker.

moto's server provides the AWS APIs (S3, Lambda, CloudFormation, IAM, Logs, SQS, ...). moto
stores S3 -> Lambda notifications but can only run a function through Docker, so the emulator
hooks two places inside the moto process it hosts:

* the S3 -> Lambda notification: the exact event moto built for the bucket's Lambda
  configuration is queued and delivered asynchronously (as S3 does) to the function;
* Lambda ``Invoke``: ``RequestResponse`` runs the function and returns its result,
  ``Event`` queues it like an S3 notification.

moto has no S3 Batch Operations: `batchops.BatchOperations` answers the S3 Control job calls
and runs LambdaInvoke jobs through the same runner (see there).

A function runs from the zip stored in the emulator (see `emulator_runner`), with async retries
(two by default, or the function's MaximumRetryAttempts) and its on-failure SQS destination.
It also applies what moto's CloudFormation ignores: a bucket's NotificationConfiguration,
LifecycleConfiguration and PublicAccessBlockConfiguration, and AWS::Lambda::EventInvokeConfig,
so `imgproc deploy` wires the pipeline as it does on AWS. AWS::S3::BucketPolicy stays
unapplied (see `emulator_cfn`).

Only local programs get through: `guard.LocalOnly` refuses browser cross-origin requests and
any Host but the emulator's own loopback address (see there why binding to 127.0.0.1 is not enough).

State: on shutdown every moto service's in-memory state (buckets and objects, stacks, functions,
roles, log groups, queues, parameters...) is saved, sealed with this user's key, to
``<state-dir>/state.pickle`` and restored at the next start by the same moto version; a file that
cannot be restored stops the start (see `state`). A crash (SIGKILL) loses what changed since the
last start.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.emulator import apigateway
from cli.emulator.batchops import BatchOperations
from cli.emulator.dispatcher import Dispatcher
from cli.emulator.guard import LocalOnly
from cli.emulator.queues import EventRoutes
from cli.emulator.settings import (
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    INFO_FILE,
    STATE_FILE,
    EmulatorError,
    make_private_dir,
    port_available,
    require_moto,
    write_private_file,
)
from cli.emulator.state import load_state, save_state


class Emulator:
    """moto's server + the dispatcher + saved state, in this process."""

    def __init__(self, port: int = DEFAULT_PORT, state_dir: Path = DEFAULT_STATE_DIR, host: str = "127.0.0.1",
                 concurrency: int = 2, persist: bool = True, say: Callable[[str], None] = print):
        self.host, self.port, self.state_dir = host, port, Path(state_dir)
        self.concurrency, self.persist, self.say = concurrency, persist, say
        self.server: GuardedMotoServer | None = None
        self.dispatcher: Dispatcher | None = None
        self.batch_operations: BatchOperations | None = None
        self.routes: EventRoutes | None = None

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
        make_private_dir(self.state_dir)
        if self.persist:
            self.say(load_state(self.state_dir / STATE_FILE))
        self.server = GuardedMotoServer(self.host, self.port, say=self.say)
        self.port = self.server.port
        apigateway.install(self.server, self.endpoint)  # REST APIs served under /_aws/execute-api/
        self.dispatcher = Dispatcher(self.endpoint, self.state_dir / "cache", self.concurrency, say=self.say).install()
        dispatcher = self.dispatcher

        def batch_operations(app: Any) -> BatchOperations:
            self.batch_operations = BatchOperations(app, dispatcher.function_for, dispatcher._client_for, self.say)
            return self.batch_operations

        self.server.wrap(batch_operations)  # moto has no S3 Batch Operations jobs
        # SQS event source mappings and EventBridge rules -> the function (queue, eventbridge triggers)
        self.routes = EventRoutes(self.dispatcher, self.concurrency, say=self.say).install()
        return self.endpoint

    def stop(self) -> None:
        # Queued invocations finish first (they need the server), then nothing new comes in.
        started = self.server is not None
        if self.batch_operations is not None:
            self.batch_operations.drain(10.0)
        if self.routes is not None:  # pollers first: they need the server and the dispatcher
            self.routes.uninstall()
            self.routes = None
        if self.dispatcher is not None:
            self.dispatcher.drain(10.0)
        if self.server is not None:
            self.server.stop()
            apigateway.uninstall(self.server)
            self.server = None
        if self.dispatcher is not None:
            self.dispatcher.uninstall(drain_s=0)
            self.dispatcher = None
        if self.persist and started:  # never overwrite saved state with a failed start's empty one
            size = save_state(self.state_dir / STATE_FILE)
            self.say(f"saved state to {self.state_dir / STATE_FILE} ({size} bytes)")


class GuardedMotoServer:
    """moto's WSGI app behind `LocalOnly`, served from a thread (moto's ThreadedMotoServer, guarded).

    The guard stays the outermost layer: other layers (an API Gateway proxy...) go inside it
    with `wrap`, so nothing a browser sends reaches them unchecked.
    """

    def __init__(self, host: str, port: int, say: Callable[[str], None] = print):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        moto_app = DomainDispatcherApplication(create_backend_app)
        self._http = make_server(host, port, moto_app, threaded=True, request_handler=MotoRequestHandler)
        self.port = int(self._http.server_port)  # the bound one when port is 0
        # Wrapped once the port is known: the Host and Origin the guard accepts name it.
        self.guard = LocalOnly(moto_app, self.port, say=say)
        self._http.app = self.guard
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True, name="emulator-http")
        self._thread.start()

    def wrap(self, layer: Callable[[Any], Any]) -> None:
        """Put ``layer(app)`` between the guard and the app it guards (requests reach it checked)."""
        self.guard.app = layer(self.guard.app)

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()


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
    write_private_file(info_path, json.dumps(info).encode("utf-8"))
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

"""`imgproc local up|down|status`: the whole pipeline on this machine, no Docker, no AWS account.

The emulator (cli/emulator/) is moto's server on 127.0.0.1 plus a dispatcher that runs the
deployed Lambda package on S3 uploads. Point every other command at it with AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import shutil
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cli.emulator import control, localstack_engine, server
from cli.emulator import settings as emulator
from cli.emulator.runner import find_runtime_python


class Engine(str, Enum):
    moto = "moto"
    localstack = "localstack"


local_app = typer.Typer(
    name="local",
    help="Run AWS (moto's server) and our Lambda function on 127.0.0.1, without Docker.",
    no_args_is_help=True,
)

StateDirOpt = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        help="Folder for the emulator's saved state, pid file, log and unpacked code.",
    ),
]


def _console() -> Console:
    return Console(highlight=False)


def _credentials_hints() -> list[str]:
    """What else a user with no AWS setup at all must export (the emulator accepts any values)."""
    import boto3

    session = boto3.Session()
    hints = []
    if session.get_credentials() is None:
        hints.append("export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test")
    if not session.region_name:
        hints.append("export AWS_DEFAULT_REGION=us-east-1")
    return hints


@local_app.command("up")
def up(
    port: Annotated[
        int, typer.Option("--port", help="Port on 127.0.0.1; 0 picks any free port.")
    ] = emulator.DEFAULT_PORT,
    state_dir: StateDirOpt = emulator.DEFAULT_STATE_DIR,
    detach: Annotated[
        bool,
        typer.Option("--detach/--foreground", help="Run in the background (default) or in this terminal until Ctrl-C."),
    ] = True,
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=32, help="Function invocations run at the same time.")
    ] = 2,
    reset: Annotated[bool, typer.Option("--reset", help="Forget the saved state and start empty.")] = False,
    persist: Annotated[
        bool, typer.Option("--persist/--no-persist", help="Save state on `local down` and restore it on `local up`.")
    ] = True,
    engine: Annotated[
        Engine,
        typer.Option("--engine", help="moto: our emulator on moto's server. localstack: real LocalStack on the host "
                     "(installed on first use under Python 3.13), functions run by our executor plugin."),
    ] = Engine.moto,
) -> None:
    """Start the AWS emulator on 127.0.0.1 and print the variable to export.

    S3 uploads to a bucket whose notifications point at a Lambda function run that function's deployed zip under python3.12; its output goes to the function's log group, so `deploy`, `push --wait`, `status`, `logs --follow`, `stats` and `destroy` work as on AWS.

    Example:
        imgproc local up && export AWS_ENDPOINT_URL=http://127.0.0.1:4567
    """
    console = _console()
    if engine is Engine.localstack:
        if not detach:
            raise typer.BadParameter("--engine localstack runs in the background only", param_hint="--foreground")
        info = localstack_engine.start_detached(port, state_dir, say=lambda line: console.print(line, markup=False))
        persist = False  # LocalStack's community edition keeps no state (PERSISTENCE=0)
    else:
        info = _start_moto(console, port, state_dir, detach, concurrency, reset, persist)
    console.print(f"AWS emulator ({info.get('engine', 'moto')}) running at [bold]{info['endpoint']}[/bold] (pid {info['pid']})")
    _python, warning = find_runtime_python("python3.12")
    if warning:
        console.print(f"[yellow]Warning:[/yellow] {escape(str(warning))}")
    console.print(f"  state: {escape(str(state_dir))}{' (saved by `imgproc local down`)' if persist else ' (not saved)'}")
    console.print(f"  log:   {escape(str(info['log']))}")
    console.print("Point imgproc, boto3 and the AWS CLI at it:")
    console.print(f"  export AWS_ENDPOINT_URL={info['endpoint']}", soft_wrap=True)
    for hint in _credentials_hints():
        console.print(f"  {hint}", soft_wrap=True)
    console.print("Then deploy, upload and look:")
    console.print("  imgproc deploy --api --yes && imgproc push examples/photos --wait", soft_wrap=True)
    console.print(f"  imgproc sign thumb/harbour.jpg     # a signed URL served by the local API "
                  f"({info['endpoint']}/_aws/execute-api/...)", soft_wrap=True, markup=False)
    console.print("  imgproc gallery -o gallery.html    # every upload with its renditions, for a browser",
                  soft_wrap=True, markup=False)
    console.print("  imgproc destroy --delete-data --yes  # start over: removes the stack and its data",
                  soft_wrap=True, markup=False)
    console.print("Stop it with: imgproc local down")


def _start_moto(console: Console, port: int, state_dir: Path, detach: bool, concurrency: int, reset: bool,
                persist: bool) -> dict:
    if reset:
        (state_dir / emulator.STATE_FILE).unlink(missing_ok=True)
        shutil.rmtree(state_dir / "cache", ignore_errors=True)
    if not detach:
        emulator.require_moto()
        raise typer.Exit(server.serve(port, state_dir, concurrency, persist, say=console.print))
    return control.start_detached(port, state_dir, concurrency, persist)


@local_app.command("down")
def down(
    state_dir: StateDirOpt = emulator.DEFAULT_STATE_DIR,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait before killing it.")] = 30.0,
) -> None:
    """Stop the emulator (and the function workers it started); its state is saved first.

    Example:
        imgproc local down
    """
    console = _console()
    info = control.stop(state_dir, timeout_s=timeout)
    if info is None:
        console.print(f"No emulator is running for {escape(str(state_dir))}.")
        return
    if not info["clean"]:
        console.print(f"[red]Error:[/red] the emulator (pid {info['pid']}) did not stop within {timeout:.0f} s and was killed; "
                      "its state was not saved")
        raise typer.Exit(1)
    console.print(f"Stopped the emulator at {info['endpoint']} (pid {info['pid']}).")


@local_app.command("status")
def status(state_dir: StateDirOpt = emulator.DEFAULT_STATE_DIR) -> None:
    """Say whether the emulator runs, where, and what to export; exit 1 when it is not running.

    Example:
        imgproc local status
    """
    console = _console()
    info = control.read_info(state_dir)
    if info is None:
        console.print(f"No emulator is running for {escape(str(state_dir))}. Start one with: imgproc local up")
        raise typer.Exit(1)
    console.print(f"AWS emulator ({info.get('engine', 'moto')}) running at [bold]{info['endpoint']}[/bold] (pid {info['pid']})")
    console.print(f"  export AWS_ENDPOINT_URL={info['endpoint']}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(local_app, name="local")

"""The `imgproc` command: one Typer app, one module per command group.

Only the module that owns the command being run is imported: `imgproc process`
does not pay for boto3-heavy modules such as deploy or local (about 60 ms of
every start). `--help` and an unknown command load them all.
"""

from __future__ import annotations

import importlib
import sys

import typer

# Command group module -> the commands it registers. Adding a group is one line here.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "process": ("process",),
    "invoke": ("invoke",),
    "deploy": ("package", "deploy", "status", "push", "destroy"),
    "logs": ("logs", "stats"),
    "local": ("local",),
    "api_cmd": ("sign",),
}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"imgproc {version('imgproc')}")
        raise typer.Exit()


def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Event-driven image processing: the same presets on your laptop and in AWS Lambda."""


def build(command: str | None = None) -> typer.Typer:
    """The app with every command, or with only the group that owns ``command``."""
    app = typer.Typer(
        name="imgproc",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    owners = [m for m, commands in COMMAND_MODULES.items() if command in commands]
    for module in owners or COMMAND_MODULES:
        importlib.import_module(f"cli.{module}").register(app)
    return app


def _command_in(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def __getattr__(name: str):
    # `from cli.app import app` (tests, docs) gets the full app, built on first use.
    if name == "app":
        globals()["app"] = full = build()
        return full
    raise AttributeError(name)


def main() -> None:
    build(_command_in(sys.argv[1:]))(prog_name="imgproc")

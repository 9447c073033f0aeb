"""The `imgproc` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from cli import api_cmd, deploy, invoke, local, logs, process

app = typer.Typer(
    name="imgproc",
    help="Event-driven image processing: the same presets on your laptop and in AWS Lambda.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module adds its own commands; adding a command group is one line here.
for module in (process, invoke, deploy, logs, local, api_cmd):
    module.register(app)


def main() -> None:
    app()

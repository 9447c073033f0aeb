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



def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"imgproc {version('imgproc')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Event-driven image processing: the same presets on your laptop and in AWS Lambda."""


# Each module adds its own commands; adding a command group is one line here.
for module in (process, invoke, deploy, logs, local, api_cmd):
    module.register(app)


def main() -> None:
    app()

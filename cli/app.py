"""The `imgproc` command: one Typer app, one module per command group under cli/commands/.

Only the module that owns the command being run is imported: `imgproc process`
does not pay for boto3-heavy modules such as deploy or local (about 60 ms of
every start). `--help` and an unknown command load them all. Every command
runs inside the one error edge (cli/edge.py).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

import typer

from cli import edge

# Command group module (cli/commands/<module>.py) -> the commands it registers.
# Adding a group is one line here.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "process": ("process",),
    "invoke": ("invoke",),
    "deploy": ("package", "deploy", "status", "destroy"),
    "push": ("push",),
    "reprocess": ("reprocess",),
    "logs": ("logs", "stats"),
    "local": ("local",),
    "sign": ("sign",),
    "gallery": ("gallery",),
}


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"imgproc {version('imgproc-aws')}")
        raise typer.Exit()


def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
    debug: bool = typer.Option(False, "--debug", envvar="IMGPROC_DEBUG",
                               help="Show the full traceback when a command fails."),
) -> None:
    """Event-driven image processing: the same presets on your laptop and in AWS Lambda.

    Example: imgproc process ./photos
    """
    edge.set_debug(debug)


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``command`` inside the error edge: known failures become one line and an exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (Exception, KeyboardInterrupt) as exc:  # the one edge: every failure is mapped here
            if _is_typers_own(exc):
                raise  # Typer's exits and usage errors already carry their code and message
            raise typer.Exit(edge.report(exc)) from None

    return run


def _escaped(text: str | None) -> str | None:
    from rich.markup import escape

    return escape(text) if text else text


def _escape_help(app: typer.Typer) -> None:
    """Help is plain text: escape it once so rich shows `[deploy].stack_name` instead of eating `[deploy]`."""
    import inspect
    import typing

    from typer.models import ArgumentInfo, OptionInfo

    for info in app.registered_commands:
        callback = info.callback
        if callback is None or getattr(callback, "_help_escaped", False):
            continue
        info.help = _escaped(info.help or inspect.getdoc(callback))
        hints = typing.get_type_hints(callback, include_extras=True)
        # Under `from __future__ import annotations` every evaluation makes new Option objects:
        # keep the evaluated ones, so the objects escaped here are the ones Typer reads.
        callback.__annotations__ = hints
        defaults = [p.default for p in inspect.signature(callback).parameters.values()]
        metadata = [m for h in hints.values() for m in getattr(h, "__metadata__", ())]
        for param in (*metadata, *defaults):
            # Option declarations are shared between commands: escape each object once.
            if isinstance(param, (OptionInfo, ArgumentInfo)) and not getattr(param, "_help_escaped", False):
                param.help = _escaped(param.help)
                param._help_escaped = True  # type: ignore[union-attr]  # our marker on Typer's object
        callback._help_escaped = True  # type: ignore[attr-defined]  # our marker: build() may run twice
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _escape_help(group.typer_instance)


# ctx: Typer 0.28 passes its private copy of click's Context (typer._click), older Typers click's own.
def _usage_metavar(self: Any, ctx: Any, *, usage: bool = False) -> str:
    """SRC, as click and man pages write a required argument, not Typer's {src}."""
    var = _typer_make_metavar(self, ctx, usage=usage)
    if usage and var.startswith("{") and var.endswith("}"):
        return var[1:-1].upper()
    return str(var)


# Typer (0.2x) wraps required arguments in braces in usage lines, which reads like a template
# placeholder; a subclass cannot be passed through typer.Argument, so the method is replaced here.
_typer_make_metavar = typer.core.TyperArgument.make_metavar
typer.core.TyperArgument.make_metavar = _usage_metavar  # type: ignore[method-assign]  # see comment above


def _is_typers_own(exc: BaseException) -> bool:
    # Typer 0.28 raises its private copy of click's exceptions (typer._click), older Typers click's own;
    # neither needs importing click, which Typer 0.28 no longer installs.
    return isinstance(exc, (typer.Exit, typer.Abort)) or type(exc).__module__.split(".")[0] in ("click", "typer")


def _guard_all(app: typer.Typer) -> None:
    for info in app.registered_commands:
        if info.callback is not None:
            info.callback = guarded(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _guard_all(group.typer_instance)


def build(command: str | None = None) -> typer.Typer:
    """The app with every command, or with only the group that owns ``command``."""
    app = typer.Typer(
        name="imgproc",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",  # help is escaped at registration (_escape_help): shown as written
    )
    app.callback()(_root)
    owners = [m for m, commands in COMMAND_MODULES.items() if command in commands]
    for module in owners or COMMAND_MODULES:
        importlib.import_module(f"cli.commands.{module}").register(app)
    _escape_help(app)
    _guard_all(app)
    return app


def _command_in(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def __getattr__(name: str) -> Any:
    # `from cli.app import app` (tests, docs) gets the full app, built on first use.
    if name == "app":
        globals()["app"] = full = build()
        return full
    raise AttributeError(name)


def main() -> None:
    build(_command_in(sys.argv[1:]))(prog_name="imgproc")

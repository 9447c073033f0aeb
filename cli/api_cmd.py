"""Placeholder: this command group is being built (see the issues)."""

import typer


def register(app: typer.Typer) -> None:
    pass

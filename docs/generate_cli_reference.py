"""Write docs/cli.md, the command reference, from the Typer app's own --help.

    python docs/generate_cli_reference.py          # rewrite docs/cli.md
    python docs/generate_cli_reference.py --check  # exit 1 when docs/cli.md has drifted

tests/cli/test_cli_reference.py runs the check, so a changed option or help text
fails the suite until the reference is regenerated.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "cli.md"
WIDTH = "100"


def command_paths(app) -> list[list[str]]:
    import typer.main

    click_app = typer.main.get_command(app)
    paths: list[list[str]] = [[]]

    def walk(cmd, prefix: list[str]) -> None:
        for name in sorted(getattr(cmd, "commands", {}) or {}):
            paths.append([*prefix, name])
            walk(cmd.commands[name], [*prefix, name])

    walk(click_app, [])
    return paths


def help_text(app, path: list[str]) -> str:
    from typer.testing import CliRunner

    env = {"COLUMNS": WIDTH, "TERM": "dumb", "NO_COLOR": "1", "_TYPER_FORCE_DISABLE_TERMINAL": "1"}
    result = CliRunner().invoke(app, [*path, "--help"], env=env, prog_name="imgproc")
    return result.output.rstrip() + "\n"


def render() -> str:
    os.environ.setdefault("COLUMNS", WIDTH)
    sys.path.insert(0, str(ROOT))
    from cli.app import build

    app = build()
    parts = ["# Command reference\n",
             "Generated from `imgproc --help` by `python docs/generate_cli_reference.py`; do not edit by hand.\n"]
    for path in command_paths(app):
        title = " ".join(["imgproc", *path])
        parts.append(f"\n## `{title}`\n\n```text\n{help_text(app, path)}```\n")
    return "".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run python docs/generate_cli_reference.py")
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Meta-test: every command (and sub-command) has help text with an example."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()


def _commands(group, prefix: tuple[str, ...] = ()):
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if hasattr(cmd, "commands"):  # a sub-app such as `imgproc local`
            yield from _commands(cmd, path)
        else:
            yield path


COMMANDS = list(_commands(typer.main.get_command(app)))


def test_the_core_commands_exist():
    assert ("process",) in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) for p in COMMANDS])
def test_every_command_has_help_with_an_example(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout, f"`imgproc {' '.join(path)} --help` shows no example"
    assert f"imgproc {' '.join(path)}" in result.stdout


def test_top_level_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "process" in result.stdout


def test_running_process_loads_neither_boto3_nor_the_cloud_commands(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from cli.app import main\n"
        f"sys.argv = ['imgproc', 'process', {str(tmp_path)!r}, '--dry-run']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(code, 'boto3' in sys.modules, 'cli.commands.deploy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 False False"

"""`imgproc local up --engine localstack` without what it needs: one clear line, nothing started or written.

The engine itself (install, start, the executor plugin, the whole pipeline) is exercised end to end
in test_e2e.py.
"""

from __future__ import annotations

from typer.testing import CliRunner

from cli.app import app
from cli.emulator import localstack_engine


def test_no_python_313_is_one_clear_line_and_installs_nothing(tmp_path, monkeypatch):
    venv = tmp_path / "cache" / "localstack-venv"
    monkeypatch.setenv("IMGPROC_LOCALSTACK_VENV", str(venv))
    monkeypatch.delenv("IMGPROC_LOCALSTACK_PYTHON", raising=False)
    monkeypatch.setattr(localstack_engine, "find_runtime_python", lambda runtime: ("/usr/bin/python3", "not found"))
    monkeypatch.setattr(localstack_engine.shutil, "which", lambda name: None)  # no uv either

    result = CliRunner().invoke(app, ["local", "up", "--engine", "localstack", "--port", "0",
                                      "--state-dir", str(tmp_path / "state")])

    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "LocalStack needs Python 3.13" in lines[0], result.output
    assert not venv.exists() and not (tmp_path / "state" / "emulator.json").exists()


def test_plugin_is_reinstalled_when_the_shared_runner_changes(monkeypatch, tmp_path):
    # runner.py is shared with the moto engine through a symlink: editing it must reach LocalStack's venv.
    plugin = tmp_path / "plugin"
    (plugin / "src").mkdir(parents=True)
    shared = tmp_path / "runner.py"
    shared.write_text("A = 1\n")
    (plugin / "src" / "runner.py").symlink_to(shared)
    monkeypatch.setattr(localstack_engine, "PLUGIN_DIR", plugin)
    before = localstack_engine.plugin_digest()
    shared.write_text("A = 2\n")
    assert localstack_engine.plugin_digest() != before

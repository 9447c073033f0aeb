"""Fixtures of the emulator's tests: their own config folder (for the state key), a state folder
whose emulator is always stopped."""

from __future__ import annotations

import os
import signal

import pytest

from cli.emulator import control


@pytest.fixture(autouse=True)
def _own_config_folder(tmp_path, monkeypatch):
    """$XDG_CONFIG_HOME for this test (and the `imgproc` it runs): the state key is made there."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


@pytest.fixture
def state_dir(tmp_path):
    """A state folder whose emulator is always stopped, even when the test fails."""
    folder = tmp_path / "state"
    try:
        yield folder
    finally:
        info = control.read_info(folder)
        if info:
            try:
                os.killpg(info["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass

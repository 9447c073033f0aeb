"""The emulator's tests keep its per-user state key in a folder of their own, never the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _own_config_folder(tmp_path, monkeypatch):
    """$XDG_CONFIG_HOME for this test (and the `imgproc` it runs): the state key is made there."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder

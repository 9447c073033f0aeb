"""docs/cli.md is generated from the app's --help: a changed option must come with a regenerated reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_reference_matches_the_help_of_every_command():
    result = subprocess.run([sys.executable, "docs/generate_cli_reference.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_help_text_keeps_every_word_and_bracket():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert "[deploy].stack_name" in text
    assert "has an [api] table" in text
    assert "{src}" not in text.lower() and "Usage: imgproc process [OPTIONS] SRC " in text

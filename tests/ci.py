"""Everything CI runs, in order: ruff, mypy, then the whole test suite under coverage.

    .venv/bin/python tests/ci.py            # what `.ci/run` and the README's Quickstart run
    .venv/bin/python tests/ci.py -k emulator  # extra arguments go to pytest

Coverage follows the subprocesses the tests start (the `imgproc` command, the local emulator)
through coverage's subprocess patch, and the report is printed per area.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
AREAS = {
    "core (engine)": ["core/*"],
    "handlers": ["lambda_entry.py", "lambda_api.py"],
    "cli commands + edge": ["cli/app.py", "cli/edge.py", "cli/errors.py", "cli/console.py", "cli/commands/*"],
    "cli/aws": ["cli/aws/*"],
    "cli/deploy": ["cli/deploy/*"],
    "cli/logs": ["cli/logs/*"],
    "cli/emulator": ["cli/emulator/*"],
    "cli/gallery": ["cli/gallery/*"],
    "cli/reprocess": ["cli/reprocess/*"],
    "cli/process": ["cli/process/*"],
}


def run(step: str, command: list[str], env: dict[str, str] | None = None) -> None:
    print(f"\n=== {step}: {' '.join(command)}", flush=True)
    code = subprocess.call(command, cwd=ROOT, env=env)
    if code != 0:
        print(f"=== {step} failed (exit {code})", flush=True)
        sys.exit(code)


def coverage_env() -> dict[str, str]:
    """Coverage data in one folder every test process may write to (tests also run `imgproc` as nobody)."""
    folder = ROOT / ".coverage-data"
    folder.mkdir(exist_ok=True)
    folder.chmod(0o1777)
    for stale in folder.glob(".coverage*"):
        stale.unlink()
    return dict(os.environ, COVERAGE_RCFILE=str(ROOT / "pyproject.toml"), COVERAGE_FILE=str(folder / ".coverage"))


def coverage_by_area(env: dict[str, str]) -> None:
    print("\n=== coverage per area", flush=True)
    for area, patterns in AREAS.items():
        out = subprocess.run([str(BIN / "coverage"), "report", "--format=total", "--include", ",".join(patterns)],
                             cwd=ROOT, capture_output=True, text=True, env=env)
        print(f"{area:24s} {out.stdout.strip() or 'n/a'}%", flush=True)
    total = subprocess.run([str(BIN / "coverage"), "report", "--format=total"], cwd=ROOT,
                           capture_output=True, text=True, env=env).stdout.strip()
    print(f"{'all':24s} {total}%", flush=True)


def main(pytest_args: list[str]) -> int:
    run("ruff", [str(BIN / "ruff"), "check", "."])
    run("mypy", [str(BIN / "mypy")])
    env = coverage_env()
    code = subprocess.call([str(BIN / "coverage"), "run", "-m", "pytest", *pytest_args], cwd=ROOT, env=env)
    subprocess.call([str(BIN / "coverage"), "combine", "-q"], cwd=ROOT, env=env)
    coverage_by_area(env)
    if code != 0:
        print(f"=== pytest failed (exit {code})", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

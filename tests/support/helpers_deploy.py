"""Helpers for the deploy/status/push/destroy tests: run the CLI as a subprocess, read the stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3

IMGPROC = str(Path(sys.executable).parent / "imgproc")
ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "imgproc"
IN_BUCKET = f"{STACK}-input-{ACCOUNT}-{REGION}"
OUT_BUCKET = f"{STACK}-output-{ACCOUNT}-{REGION}"


def imgproc(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """`imgproc ARGS` in ``cwd`` with the test's environment (AWS_ENDPOINT_URL -> moto's server)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1"})
    full_env.update(env or {})
    return subprocess.run([IMGPROC, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout, input=stdin if stdin is not None else "")


def ok(proc: subprocess.CompletedProcess, code: int = 0) -> subprocess.CompletedProcess:
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


def write_config(folder: Path, deploy: str = "", presets: str = "") -> Path:
    """imgproc.toml with a [deploy] table (and optional presets) in ``folder``."""
    path = folder / "imgproc.toml"
    path.write_text(presets + ("\n[deploy]\n" + deploy if deploy else ""), encoding="utf-8")
    return path


def client(service: str):
    return boto3.client(service, region_name=REGION)


def deploy(folder: Path, *extra: str) -> subprocess.CompletedProcess:
    return ok(imgproc("deploy", "--yes", *extra, cwd=folder))

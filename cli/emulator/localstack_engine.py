"""`imgproc local up --engine localstack`: real LocalStack on 127.0.0.1, on the host, without Docker.

LocalStack (localstack-core, Python 3.13 only) is installed on first use into its own cached venv
together with our runtime-executor plugin (plugins/localstack-imgproc-executor), which runs each
Lambda function as a local python3.12 worker instead of a container. Everything LocalStack writes
goes under ``<state-dir>/localstack/``; it listens on loopback only and refuses cross-origin
browser requests for every service (see `settings_env`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.emulator.control import _terminate, read_info
from cli.emulator.runner import find_runtime_python
from cli.emulator.settings import INFO_FILE, LOG_FILE, EmulatorError, port_available

ENGINE = "localstack"
# The versions measured to start on the host (EMULATORS.md): cbor2 6 and pyOpenSSL 26 break start-up,
# and localstack-twisted 26 (April 2026) imports service_identity, which nothing installs.
REQUIREMENTS = ("localstack-core[runtime]==2026.3.0", "cbor2<6", "pyopenssl<26", "cryptography<47",
                "localstack-twisted<26")
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "localstack-imgproc-executor"
PLUGIN_NAME = "imgproc"  # the plugin's entry-point name, selected by LAMBDA_RUNTIME_EXECUTOR
SERVICES = "s3,lambda,cloudformation,iam,sts,logs,sqs,ssm,apigateway,cloudwatch,sns,events,kms,s3control"
STAMP = "imgproc-install.json"
START_TIMEOUT_S = 90.0


class LocalStackUnavailable(EmulatorError):
    """No Python 3.13 to run LocalStack, or its installation failed."""

    exit_code = 2


def venv_dir() -> Path:
    """The cached venv LocalStack runs from (shared by every state folder and by tests)."""
    if os.environ.get("IMGPROC_LOCALSTACK_VENV"):
        return Path(os.environ["IMGPROC_LOCALSTACK_VENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "imgproc" / "localstack-venv"


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def find_python313() -> str:
    """A Python 3.13 interpreter: IMGPROC_LOCALSTACK_PYTHON, PATH, pyenv, uv; else a one-line error."""
    chosen = os.environ.get("IMGPROC_LOCALSTACK_PYTHON")
    if chosen:
        return chosen
    python, warning = find_runtime_python("python3.13")
    if warning is None:
        return python
    uv = shutil.which("uv")
    if uv:
        found = subprocess.run([uv, "python", "find", "3.13"], capture_output=True, text=True, check=False)
        if found.returncode == 0 and found.stdout.strip():
            return found.stdout.strip()
    raise LocalStackUnavailable(
        "LocalStack needs Python 3.13 and none was found (pyenv install 3.13, uv python install 3.13 or your OS's "
        "python3.13; or set IMGPROC_LOCALSTACK_PYTHON to one)"
    )


def plugin_digest() -> str:
    """A hash of the plugin's files (symlinked runner included): a change reinstalls the plugin."""
    digest = hashlib.sha256()
    for path in sorted(PLUGIN_DIR.rglob("*")):
        if path.is_file() and "egg-info" not in str(path) and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PLUGIN_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _pip(venv: Path, *args: str) -> None:
    result = subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise LocalStackUnavailable(f"installing LocalStack into {venv} failed: {last}")


def _install_plugin(venv: Path) -> None:
    """pip-install a copy of the plugin folder with its symlinks resolved (the checkout stays clean)."""
    if not (PLUGIN_DIR / "pyproject.toml").is_file():
        raise LocalStackUnavailable(f"the LocalStack executor plugin is missing ({PLUGIN_DIR}): "
                                    "use imgproc from its source checkout")
    with tempfile.TemporaryDirectory(prefix="imgproc-plugin-") as tmp:
        copy = Path(tmp) / PLUGIN_DIR.name
        shutil.copytree(PLUGIN_DIR, copy, symlinks=False,
                        ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
        _pip(venv, "--no-deps", "--force-reinstall", str(copy))


def ensure_installed(say: Callable[[str], None] = print) -> Path:
    """LocalStack's venv, installed or updated as needed; returns its python. Safe to call concurrently."""
    venv = venv_dir()
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel `local up`s (tests) install once
        stamp_path = venv / STAMP
        try:
            stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            stamp = {}
        if stamp.get("requirements") != list(REQUIREMENTS) or not venv_python(venv).exists():
            if not venv_python(venv).exists():
                python = find_python313()
                say(f"installing LocalStack ({REQUIREMENTS[0]}) into {venv} with {python}; this takes about 30 s, once")
                subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
            _pip(venv, *REQUIREMENTS)  # over an existing venv: only what changed
            stamp = {"requirements": list(REQUIREMENTS)}
        digest = plugin_digest()
        if stamp.get("plugin") != digest:
            _install_plugin(venv)
            stamp["plugin"] = digest
        stamp_path.write_text(json.dumps(stamp), encoding="utf-8")
    return venv_python(venv)


def settings_env(port: int, root: Path) -> dict[str, str]:
    """LocalStack's configuration: loopback only, state under ``root``, our executor, strict CORS."""
    host = f"127.0.0.1:{port}"
    return {
        "GATEWAY_LISTEN": host,
        "LOCALSTACK_HOST": host,
        "SERVICES": SERVICES,
        "PERSISTENCE": "0",
        "DISABLE_EVENTS": "1",  # no analytics calls home
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "DNS_ADDRESS": "0",  # no DNS server on port 53
        "OVERRIDE_IN_DOCKER": "0",  # our machines are containers: otherwise it writes under /var/lib, /usr/lib
        "FILESYSTEM_ROOT": str(root / "root"),
        "TMPDIR": str(root / "tmp"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "LAMBDA_RUNTIME_EXECUTOR": PLUGIN_NAME,
        "LAMBDA_RETRY_BASE_DELAY": "1",  # async retries in seconds, not minutes
        # Cross-origin requests: LocalStack checks Origin/Referer against its own allow-list, except for
        # S3 and API Gateway (which it leaves to their CORS rules); make the check cover them too, allow
        # no extra origins, and send no Access-Control-* headers, so no web page can read a response.
        "DISABLE_CORS_CHECKS": "0",
        "EXTRA_CORS_ALLOWED_ORIGINS": "",
        "DISABLE_CUSTOM_CORS_S3": "1",
        "DISABLE_CUSTOM_CORS_APIGATEWAY": "1",
        "DISABLE_CORS_HEADERS": "1",
    }


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(endpoint: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
    try:
        with opener.open(f"{endpoint}/_localstack/health", timeout=2) as response:
            return response.status == 200 and "services" in json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False


def start_detached(port: int, state_dir: Path, say: Callable[[str], None] = print,
                   timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
    """Install if needed, start LocalStack in its own session, wait until healthy; returns the info file's content."""
    state_dir = Path(state_dir)
    running = read_info(state_dir)
    if running:
        raise EmulatorError(f"an emulator is already running at {running['endpoint']} (pid {running['pid']}); "
                            "stop it with `imgproc local down`")
    if port and not port_available("127.0.0.1", port):
        raise EmulatorError(f"port {port} on 127.0.0.1 is in use; choose another with --port, or --port 0 for any free port")
    python = ensure_installed(say)
    port = port or _free_port()
    root = (state_dir / "localstack").resolve()
    for folder in ("root", "tmp"):  # PERSISTENCE=0: nothing to keep from a previous run
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir(parents=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "LOCALSTACK_", "PYTHON")) and k not in ("VIRTUAL_ENV",)}
    env.update(settings_env(port, root))
    log_path = state_dir / LOG_FILE
    with open(log_path, "ab") as log:
        process = subprocess.Popen([str(python), "-m", "localstack.runtime.main"], stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, cwd=root)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while not healthy(endpoint):
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            raise EmulatorError(f"LocalStack exited during start-up: {tail[0] if tail else 'no output'} (see {log_path})")
        if time.monotonic() > deadline:
            _terminate(process.pid, group=True, timeout_s=10)
            raise EmulatorError(f"LocalStack did not become healthy within {timeout_s:.0f} s (see {log_path})")
        time.sleep(0.2)
    info = {"pid": process.pid, "endpoint": endpoint, "port": port, "state_dir": str(state_dir.resolve()),
            "started": time.time(), "detached": True, "engine": ENGINE, "log": str(log_path)}
    (state_dir / INFO_FILE).write_text(json.dumps(info), encoding="utf-8")
    return info

"""Starting and stopping the emulator process from the CLI: pid and info files, ports, signals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cli.emulator.settings import (
    INFO_FILE,
    LOG_FILE,
    STATE_FILE,
    EmulatorError,
    make_private_dir,
    open_private_file,
    port_available,
    require_moto,
)
from cli.emulator.state import read_sealed


def read_info(state_dir: Path) -> dict[str, Any] | None:
    """The running emulator's endpoint and pid, or None when none is running for this folder."""
    path = Path(state_dir) / INFO_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not _is_emulator(info.get("pid", 0)):
        path.unlink(missing_ok=True)
        return None
    return info


def _is_emulator(pid: int) -> bool:
    """True when ``pid`` is alive and is an emulator process (not a recycled pid)."""
    if pid <= 0:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the info file
    return b"cli.emulator" in cmdline or b"imgproc" in cmdline or b"localstack.runtime.main" in cmdline


def start_detached(port: int, state_dir: Path, concurrency: int = 2, persist: bool = True,
                   timeout_s: float = 30.0) -> dict[str, Any]:
    """Start `python -m cli.emulator serve` in its own session; returns its info once ready."""
    require_moto()
    state_dir = Path(state_dir)
    running = read_info(state_dir)
    if running:
        raise EmulatorError(f"an emulator is already running at {running['endpoint']} (pid {running['pid']}); "
                            "stop it with `imgproc local down`")
    if port and not port_available("127.0.0.1", port):
        raise EmulatorError(f"port {port} on 127.0.0.1 is in use (LocalStack? another `imgproc local up`?); "
                            "choose another with --port, or --port 0 for any free port")
    make_private_dir(state_dir)
    if persist and (state_dir / STATE_FILE).exists():
        read_sealed(state_dir / STATE_FILE)  # refused here, with a clean message, before a process starts
    log_path = state_dir / LOG_FILE
    command = [sys.executable, "-m", "cli.emulator.server", "serve", "--port", str(port), "--state-dir", str(state_dir),
               "--concurrency", str(concurrency)] + ([] if persist else ["--no-persist"])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH", "")]))
    with os.fdopen(open_private_file(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = read_info(state_dir)
        if info and info.get("pid") == process.pid:
            info["log"] = str(log_path)
            return info
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            # The log's last line is the emulator's `HH:MM:SS error: <why>`: the why is the message.
            why = re.sub(r"^\d\d:\d\d:\d\d (error: )?", "", tail[0]) if tail else "no output"
            raise EmulatorError(f"the emulator exited during start-up: {why} (see {log_path})")
        time.sleep(0.1)
    _terminate(process.pid, group=True, timeout_s=5)
    raise EmulatorError(f"the emulator did not become ready within {timeout_s:.0f} s (see {log_path})")


def _terminate(pid: int, group: bool, timeout_s: float) -> bool:
    """SIGTERM (to the process group when detached), then SIGKILL after the timeout; True if it exited."""
    send = (lambda sig: os.killpg(pid, sig)) if group else (lambda sig: os.kill(pid, sig))
    try:
        send(signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid, group):
            return True
        time.sleep(0.1)
    try:
        send(signal.SIGKILL)
    except ProcessLookupError:
        pass
    return False


def _alive(pid: int, group: bool) -> bool:
    try:
        if group:
            os.killpg(pid, 0)
        else:
            os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return not group


def stop(state_dir: Path, timeout_s: float = 30.0) -> dict[str, Any] | None:
    """Stop the emulator running for ``state_dir``; returns its info, or None if none was running."""
    info = read_info(state_dir)
    if info is None:
        return None
    clean = _terminate(info["pid"], group=bool(info.get("detached")), timeout_s=timeout_s)
    info["clean"] = clean
    (Path(state_dir) / INFO_FILE).unlink(missing_ok=True)
    return info

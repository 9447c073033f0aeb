"""`imgproc process` outlives its workers (issue 13 items 6, 9): a file that kills its worker or passes its
time limit fails alone; the pool is replaced and the run ends with a summary, JSON and exit 1."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

from bombs import many_scan_jpeg
from imaging import encode, photo
from testdata import subprocess_env

ROOT = Path(__file__).resolve().parents[2]


def folder(tmp_path: Path, limits: str) -> tuple[Path, Path]:
    """A slow scan bomb (~30 s of CPU) among four ordinary photos, and a config that lets the bomb in."""
    src = tmp_path / "photos"
    src.mkdir()
    (src / "a-slow.jpg").write_bytes(many_scan_jpeg(20_000))
    for i in range(4):
        (src / f"photo{i}.jpg").write_bytes(encode(photo(900, 600, seed=i), "JPEG"))
    config = tmp_path / "imgproc.toml"
    config.write_text(f"[limits]\nmax_scans = 100000\n{limits}")
    return src, config


def run(src: Path, config: Path, tmp_path: Path, cpu_seconds: int | None = None) -> subprocess.CompletedProcess:
    def limit_cpu():  # a real resource limit: the kernel sends SIGXCPU to a process past it
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 30))

    return subprocess.run(
        [sys.executable, "-c", "from cli.app import main; main()", "process", str(src), "-o", str(tmp_path / "out"),
         "--config", str(config), "-j", "2", "--json"],
        capture_output=True, text=True, timeout=180, cwd=ROOT, env=subprocess_env(),
        preexec_fn=limit_cpu if cpu_seconds else None,
    )


def test_a_worker_killed_by_a_resource_limit_fails_its_file_and_the_rest_go_on(tmp_path: Path):
    src, config = folder(tmp_path, "")

    proc = run(src, config, tmp_path, cpu_seconds=4)  # each forked worker has its own CPU clock

    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenProcessPool" not in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["processed"] == 4
    assert summary["failed"] == [{
        "path": str(src / "a-slow.jpg"), "type": "WorkerDied",
        "error": "a-slow.jpg: worker process was killed by SIGXCPU",
    }]
    assert len(list((tmp_path / "out").glob("photo*-web.webp"))) == 4


def test_a_file_past_its_time_limit_is_stopped_and_reported_as_a_timeout(tmp_path: Path):
    src, config = folder(tmp_path, "max_seconds = 2\n")

    proc = run(src, config, tmp_path)

    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["processed"] == 4
    assert summary["failed"] == [{
        "path": str(src / "a-slow.jpg"), "type": "ImageTimeout",
        "error": "a-slow.jpg: stopped after 2 s (limits.max_seconds); worker replaced",
    }]
    again = run(src, config, tmp_path)  # the manifest keeps the four; only the bomb is tried again
    assert json.loads(again.stdout)["unchanged"] == 4

"""The imgproc benchmark: the same job with imgproc and the tools users would pick instead.

Job: auto-orient, JPEG renditions at 1600 / 800 / 200 px on the long edge, quality
85, metadata stripped, every core. Each tool runs once to warm up, then in rounds
(every tool once per round, imgproc first, so a noisy minute hits all tools).
Reported: median wall time, images/s, peak RSS of the largest process, each tool's
time as a ratio to imgproc's, decode-only times, a quality check, a stage profile
of imgproc, the Lambda figures and the pillow-simd comparison.

    python bench/run.py --quick        # small corpus, under a minute
    python bench/run.py                # 40 x 12 MP + 4 x 24 MP, several minutes

Writes bench/results/results.md, results.json and chart.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "tools"))

import corpus  # noqa: E402
import job  # noqa: E402
from tools import cli_tools  # noqa: E402

CACHE = BENCH / ".cache"
RESULTS = BENCH / "results"
CONFIG = BENCH / "imgproc.toml"
TOOLS_DIR = BENCH / "tools"
SIMD_PYTHONS = {"pillow-simd": Path("/tmp/simd-venv/bin/python"), "pillow-simd AVX2": Path("/tmp/simd-avx2-venv/bin/python")}
MiB = 1024 * 1024

# Goals from issue 8.
GOAL_VS_NAIVE = 3.3
GOAL_VS_PYVIPS = 1.15
GOAL_WORKER_MIB = 80
GOAL_HANDLER_MIB = 100
GOAL_PSNR_DB = 0.3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- tools ---------------------------------------------------------------------------


@dataclass
class Tool:
    key: str
    label: str
    argv: list[str]  # SRC and OUT are appended
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""
    group: str = "main"  # "main": the comparison; "simd": engine under two Pillow builds
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system CPU seconds of the tool and its workers, per run
    rss: list[float] = field(default_factory=list)  # MiB, largest process per run
    error: str | None = None

    def command(self, src: Path, out: Path) -> list[str]:
        if self.key == "imgproc":
            return [*self.argv, "process", str(src), "-o", str(out), "--config", str(CONFIG), "--preset", "bench",
                    "--jobs", str(JOBS), "--force", "--json"]
        return [*self.argv, str(src), str(out), "--jobs", str(JOBS)]


JOBS = job.JOBS


def _imgproc_argv() -> list[str]:
    exe = Path(sys.executable).parent / "imgproc"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from cli.app import main; main()"]


def _pillow_version(python: Path) -> str | None:
    try:
        proc = subprocess.run([str(python), "-c", "import PIL; print(PIL.__version__)"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def build_tools(args) -> tuple[list[Tool], list[tuple[str, str]]]:
    py = sys.executable
    tools = [
        Tool("imgproc", "imgproc process", _imgproc_argv(),
             note="draft (DCT 1/2) + cascade, BICUBIC under 2x, LANCZOS from 2x, reducing_gap 2, 2 worker processes"),
        Tool("naive", "naive Pillow loop", [py, str(TOOLS_DIR / "pillow_naive.py")],
             note="full decode, exif_transpose, LANCZOS from full size per rendition, Pool(2)"),
    ]
    missing: list[tuple[str, str]] = []
    try:
        import pyvips  # noqa: F401

        tools += [
            Tool("pyvips", "pyvips thumbnail cascade", [py, str(TOOLS_DIR / "pyvips_runner.py"), "--mode", "cascade"],
                 note="thumbnail(file, 1600) shrink-on-load, 800/200 from it in memory, Pool(2), 1 thread each"),
            Tool("pyvips-each", "pyvips thumbnail per rendition", [py, str(TOOLS_DIR / "pyvips_runner.py"), "--mode", "each"],
                 note="thumbnail(file, size) for each size (shrink-on-load each time), Pool(2)"),
        ]
    except (ImportError, OSError) as exc:
        missing.append(("pyvips", f"not importable ({exc}); `pip install pyvips pyvips-binary`"))
    cli = [py, str(TOOLS_DIR / "cli_tools.py")]
    if cli_tools.find_imagemagick():
        tools.append(Tool("magick", "ImageMagick", [*cli, "magick"],
                          note="one convert per photo, -define jpeg:size, -auto-orient -strip -resize, 2 at a time, 1 thread each"))
    else:
        missing.append(("ImageMagick", "not installed (`apt-get install imagemagick`)"))
    if cli_tools.find_vipsthumbnail():
        tools.append(Tool("vipsthumbnail", "vipsthumbnail (Debian)", [*cli, "vipsthumbnail"],
                          note="one call per rendition over half the files, 2 at a time, 1 thread each"))
    else:
        missing.append(("vipsthumbnail", "not installed (`apt-get install libvips-tools`)"))
    if not args.no_simd:
        engine = str(TOOLS_DIR / "engine.py")
        simd = {name: p for name, p in SIMD_PYTHONS.items() if p.exists() and _pillow_version(p)}
        if args.simd_python:
            simd = {"pillow-simd": Path(args.simd_python)}
        if simd:
            import PIL

            tools.append(Tool("engine", f"imgproc engine, Pillow {PIL.__version__}", [py, engine],
                              env={"PYTHONPATH": str(REPO)}, group="simd",
                              note="core.pipeline.render in Pool(2), no CLI (baseline for pillow-simd)"))
            for name, python in simd.items():
                tools.append(Tool(f"engine-{name.replace(' ', '-').lower()}", f"imgproc engine, {name} {_pillow_version(python)}",
                                  [str(python), engine], env={"PYTHONPATH": str(REPO)}, group="simd",
                                  note=f"same engine under {python}"))
        else:
            missing.append(("pillow-simd", "no venv at /tmp/simd-venv (see bench/README.md)"))
    return tools, missing


# --- measuring -----------------------------------------------------------------------


def run_once(tool: Tool, src: Path, out: Path) -> tuple[float, float, int, str, float]:
    """Run one tool on ``src``; (wall s, peak RSS MiB of its largest process, exit code, stderr tail, CPU s).

    ``os.wait4`` returns the child's rusage, whose ``ru_maxrss`` is the largest
    resident set of the child and every descendant it waited for (the workers),
    and whose user + system time is the CPU the whole tool used: on a shared
    machine that moves far less with the other jobs' load than wall time does.
    """
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(os.environ, **tool.env)
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(tool.command(src, out), stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    return wall, usage.ru_maxrss / 1024, proc.returncode, " | ".join(tail), usage.ru_utime + usage.ru_stime


def per_process_peaks(tool: Tool, src: Path, out: Path, interval: float = 0.005) -> dict:
    """Peak RSS of the main process and of the largest worker, by polling /proc (psutil)."""
    import psutil

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    proc = subprocess.Popen(tool.command(src, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, **tool.env), cwd=REPO)
    peaks: dict[int, float] = {}
    root = psutil.Process(proc.pid)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = []
            for p in procs:
                try:
                    peaks[p.pid] = max(peaks.get(p.pid, 0.0), p.memory_info().rss / MiB)
                except psutil.Error:
                    pass
            time.sleep(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    thread.join()
    workers = [v for pid, v in peaks.items() if pid != proc.pid]
    return {"main_mib": peaks.get(proc.pid, 0.0), "largest_worker_mib": max(workers) if workers else None,
            "processes": len(peaks), "wait4_largest_mib": usage.ru_maxrss / 1024, "rc": proc.returncode}


def expected_outputs(src: Path) -> int:
    return len(job.sources(src)) * len(job.SIZES)


def count_outputs(out: Path) -> int:
    return sum(1 for p in out.rglob("*.jpg"))


def subset(name: str, src: Path, files: list[Path]) -> Path:
    """A folder of hard links to some corpus files (cheap, same bytes)."""
    folder = CACHE / "subsets" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for f in files:
        try:
            os.link(f, folder / f.name)
        except OSError:
            shutil.copy2(f, folder / f.name)
    return folder


def run_json(argv: list[str], env: dict | None = None, timeout: float = 900) -> dict:
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=dict(os.environ, **(env or {})), timeout=timeout)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def package_size() -> dict:
    """`imgproc package` if that command exists: build into a temp dir, report the zip size."""
    exe = _imgproc_argv()
    probe = subprocess.run([*exe, "package", "--help"], capture_output=True, text=True, cwd=REPO)
    if probe.returncode != 0:
        return {"available": False, "reason": "`imgproc package` does not exist yet"}
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "imgproc-lambda.zip"
        flag = "--output" if "--output" in probe.stdout else ("--out" if "--out" in probe.stdout else None)
        argv = [*exe, "package", *([flag, str(target)] if flag else [])]
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO if flag else tmp, timeout=600)
        zips = [target] if target.exists() else list(Path(tmp).rglob("*.zip")) + list(REPO.glob("*.zip"))
        if proc.returncode != 0 or not zips:
            return {"available": False, "reason": f"`{' '.join(argv[-3:])}` failed: "
                    + ((proc.stderr or proc.stdout).strip().splitlines() or ["?"])[-1][:200]}
        z = zips[0]
        return {"available": True, "bytes": z.stat().st_size, "command": "imgproc package " + (f"{flag} FILE" if flag else "")}


# --- the run ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small corpus and fewer rounds (under a minute)")
    parser.add_argument("--runs", type=int, help="timed rounds after the warm-up (default 5, quick 1)")
    parser.add_argument("--tools", help="comma-separated tool keys to run (default: all available)")
    parser.add_argument("--no-simd", action="store_true", help="skip the pillow-simd comparison")
    parser.add_argument("--simd-python", help="python of a venv with pillow-simd (default: /tmp/simd-venv)")
    parser.add_argument("--no-lambda", action="store_true", help="skip the Lambda figures")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write results.md/json/chart.png")
    args = parser.parse_args(argv)
    quick = args.quick
    runs = args.runs or (1 if quick else 5)
    started = time.perf_counter()
    load_start = os.getloadavg()

    spec = corpus.QUICK if quick else corpus.FULL
    src = corpus.ensure(spec, log=log)
    sources = job.sources(src)
    megapixels = {}
    from PIL import Image

    for f in sources:
        with Image.open(f) as img:
            megapixels[f.name] = img.width * img.height / 1e6
    total_mp = sum(megapixels.values())
    log(f"corpus: {len(sources)} photos, {total_mp:.0f} MP, {sum(f.stat().st_size for f in sources) / MiB:.0f} MiB in {src}")

    tools, missing = build_tools(args)
    if args.tools:
        keep = set(args.tools.split(","))
        tools = [t for t in tools if t.key in keep or t.key == "imgproc"]
    for name, why in missing:
        log(f"skip {name}: {why}")

    # Warm-up: also proves each tool does the whole job; a broken tool is reported, not timed.
    # --quick warms up on one rotated photo (libraries, .pyc, page cache) to stay under a minute.
    warm_src = subset("warm", src, [f for f in sources if "-002" in f.name][:1] or sources[:1]) if quick else src
    for f in sources:
        f.read_bytes()  # page cache: every tool then reads the corpus from memory
    want = expected_outputs(warm_src)
    for tool in tools:
        wall, rss, rc, err, _ = run_once(tool, warm_src, CACHE / "out" / tool.key)
        made = count_outputs(CACHE / "out" / tool.key)
        if rc != 0 or made != want:
            tool.error = f"exit {rc}, {made}/{want} outputs: {err}"
            log(f"warm-up {tool.label}: FAILED {tool.error}")
        else:
            log(f"warm-up {tool.label}: {wall:.2f} s")
    timed = [t for t in tools if t.error is None]
    harness_mib = _hwm_mib()
    round_loads = []
    for r in range(runs):
        for tool in timed:
            wall, rss, rc, err, cpu = run_once(tool, src, CACHE / "out" / tool.key)
            if rc != 0:
                tool.error = f"exit {rc} in round {r + 1}: {err}"
                continue
            tool.times.append(wall)
            tool.cpu.append(cpu)
            tool.rss.append(rss)
            log(f"round {r + 1}/{runs} {tool.label}: {wall:.2f} s ({cpu:.2f} CPU s), largest process {rss:.0f} MiB, "
                f"load {os.getloadavg()[0]:.1f}")
        round_loads.append(os.getloadavg()[0])
    timed = [t for t in timed if t.times]

    # Peak RSS per process on 12 MP photos only (the per-worker goal).
    twelve = [f for f in sources if round(megapixels[f.name]) == 12][: 4 if quick else 8]
    rss12 = {}
    if twelve:
        folder = subset("12mp", src, twelve)
        for tool in timed:
            if quick and tool.key != "imgproc":
                continue
            if tool.group == "simd":
                continue
            rss12[tool.key] = per_process_peaks(tool, folder, CACHE / "out" / f"rss-{tool.key}")
            log(f"12 MP peaks {tool.label}: {rss12[tool.key]}")

    # Fixed cost of one invocation (interpreter, imports, pool start-up): two tiny photos.
    startup = _startup_costs([t for t in timed if t.key in ("imgproc", "engine", "naive", "pyvips")], 3 if quick else 5)
    log(f"start-up: {startup}")

    # Quality of the 800 px renditions (last timed run's outputs) against the float reference.
    import quality

    picks = _quality_sources(sources, megapixels, quick)
    qual: dict[str, dict] = {}
    for tool in timed:
        rows = []
        for f in picks:
            p, s = quality.compare(f, job.output_path(CACHE / "out" / tool.key, f, 800))
            rows.append((f.name, p, s))
        qual[tool.key] = {"psnr": statistics.mean(r[1] for r in rows), "ssim": statistics.mean(r[2] for r in rows),
                          "worst_psnr": min(r[1] for r in rows), "per_file": rows}
    log(f"quality: {len(picks)} photos x {len(timed)} tools")

    decode = run_json([sys.executable, str(TOOLS_DIR / "decode_only.py"), str(src), "--limit", "2" if quick else "6",
                       "--repeat", "1" if quick else "3"])
    log("decode-only done")
    prof_src = subset("profile", src, picks)
    profile = run_json([sys.executable, str(TOOLS_DIR / "engine.py"), str(prof_src), str(CACHE / "out" / "profile"), "--profile"],
                       env={"PYTHONPATH": str(REPO)})
    log("stage profile done")
    lam = {"available": False, "reason": "skipped (--no-lambda)"}
    pkg = {"available": False, "reason": "skipped (--no-lambda)"}
    if not args.no_lambda:
        # The largest upright photo, and the largest rotated one (auto-orient needs a second full copy).
        by_size = sorted(sources, key=lambda f: (-megapixels[f.name], f.name))
        upright = [f for f in by_size if _orientation(f) == 1][:1] or by_size[:1]
        rotated = [f for f in by_size if _orientation(f) != 1 and megapixels[f.name] >= megapixels[upright[0].name]][:1]
        lam = run_json([sys.executable, str(TOOLS_DIR / "lambda_figures.py"), *map(str, upright + rotated),
                        "--imports", "3" if quick else "9"])
        if lam.get("available"):
            lam["orientation"] = {f.name: _orientation(f) for f in upright + rotated}
        log("lambda figures done")
        pkg = package_size() if not quick else {"available": False, "reason": "not built in --quick"}
        log(f"package: {pkg}")

    doc = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": quick, "runs": runs, "jobs": JOBS,
        "machine": _machine(), "load_start": load_start, "load_end": os.getloadavg(),
        "round_loads": round_loads,
        "corpus": {"name": spec.name, "photos": len(sources), "megapixels": total_mp,
                   "bytes": sum(f.stat().st_size for f in sources), "12mp": spec.count_12mp, "24mp": spec.count_24mp},
        "tools": [{"key": t.key, "label": t.label, "group": t.group, "note": t.note, "times": t.times, "cpu": t.cpu,
                   "rss": t.rss, "error": t.error} for t in tools],
        "missing": missing, "rss12": rss12, "startup": startup, "harness_mib": harness_mib, "quality": qual, "decode": decode, "profile": profile,
        "lambda": lam, "package": pkg, "seconds": time.perf_counter() - started,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "results.json").write_text(json.dumps(doc, indent=1, default=str))
    import report

    md = report.markdown(doc)
    (args.results / "results.md").write_text(md)
    chart = report.chart(doc, args.results / "chart.png")
    print(md)
    log(f"wrote {args.results / 'results.md'}" + (f" and {chart}" if chart else " (no chart: matplotlib missing)")
        + f" in {time.perf_counter() - started:.0f} s")
    return 0


def _orientation(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as img:
        return img.getexif().get(0x0112, 1)


def _hwm_mib() -> float:
    """This process's peak RSS: the floor of every child's ``ru_maxrss`` (Linux carries it across fork+exec)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _startup_costs(tools: list[Tool], repeat: int) -> dict[str, float]:
    """Median wall time of each tool on a folder of two 64x48 JPEGs: what every run pays before real work."""
    from PIL import Image

    folder = CACHE / "subsets" / "tiny"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, colour in enumerate(("red", "blue")):
        Image.new("RGB", (64, 48), colour).save(folder / f"tiny-{i}.jpg", quality=90)
    times: dict[str, list[float]] = {t.key: [] for t in tools}
    for _ in range(repeat):
        for tool in tools:
            wall, _, rc, _, _ = run_once(tool, folder, CACHE / "out" / f"tiny-{tool.key}")
            if rc == 0:
                times[tool.key].append(wall)
    return {k: statistics.median(v) for k, v in times.items() if v}


def _quality_sources(sources: list[Path], megapixels: dict, quick: bool) -> list[Path]:
    """Every photo in --quick; else 8 that cover each size and orientation."""
    if quick:
        return sources
    by = {f.name: f for f in sources}
    names = ["p12mp-000.jpg", "p12mp-002.jpg", "p12mp-007.jpg", "p12mp-012.jpg", "p12mp-020.jpg",
             "p24mp-000.jpg", "p24mp-002.jpg", "p24mp-003.jpg"]
    picked = [by[n] for n in names if n in by]
    return picked or sources[:8]


# CPU features that decide which SIMD paths libjpeg-turbo and libvips pick at run time (Pillow's
# resampling is plain C: the same code on every x86-64 CPU).
FLAGS_OF_INTEREST = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16")


def cpu_identity() -> dict:
    """What tells two machines' CPUs apart: model name, vendor, family/model/stepping, SIMD flags, caches.

    From ``lscpu`` when it is installed, else from /proc/cpuinfo. A virtual
    machine's model name can be as vague as "AMD EPYC": the family/model
    numbers then name the generation (AMD family 25 = Zen 3/Zen 4, Intel
    family 6 model 143 = Sapphire Rapids).
    """
    fields: dict[str, str] = {}
    try:
        proc = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, env=dict(os.environ, LC_ALL="C"))
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    cpuinfo: dict[str, str] = {}
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = line.partition(":")
            cpuinfo.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = set((fields.get("Flags") or cpuinfo.get("flags", "")).split())
    return {
        "model_name": fields.get("Model name") or cpuinfo.get("model name", "") or platform.processor(),
        "vendor": fields.get("Vendor ID") or cpuinfo.get("vendor_id", ""),
        "family": fields.get("CPU family") or cpuinfo.get("cpu family", ""),
        "model": fields.get("Model") or cpuinfo.get("model", ""),
        "stepping": fields.get("Stepping") or cpuinfo.get("stepping", ""),
        "mhz": cpuinfo.get("cpu MHz", ""),
        "hypervisor": fields.get("Hypervisor vendor", ""),
        "l2": fields.get("L2 cache", ""),
        "l3": fields.get("L3 cache", ""),
        "flags": [f for f in FLAGS_OF_INTEREST if f in flags],
        "arch": platform.machine(),
    }


def _machine() -> dict:
    import PIL

    cpu = cpu_identity()
    info = {"cpu": cpu["model_name"], "cpu_identity": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "pillow": PIL.__version__, "imagemagick": cli_tools.version("magick"),
            "vipsthumbnail": cli_tools.version("vipsthumbnail")}
    try:
        import pyvips

        info["pyvips"] = f"pyvips {pyvips.__version__}, libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
    except (ImportError, OSError):
        info["pyvips"] = ""
    return info


if __name__ == "__main__":
    sys.exit(main())

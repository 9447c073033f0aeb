"""Turn run.py's results document into results.md and chart.png."""

from __future__ import annotations

import statistics
from pathlib import Path

GOAL_VS_NAIVE = 3.3
GOAL_VS_PYVIPS = 1.15
GOAL_WORKER_MIB = 80
GOAL_HANDLER_MIB = 100
GOAL_PSNR_DB = 0.3


def _median(xs):
    return statistics.median(xs) if xs else None


def _tools(doc, group=None):
    return [t for t in doc["tools"] if t["times"] and (group is None or t["group"] == group)]


def _by_key(doc):
    return {t["key"]: t for t in doc["tools"] if t["times"]}


def _round_ratios(tool, base):
    """Per-round ratio tool/base (same round, so the same background load)."""
    return [a / b for a, b in zip(tool["times"], base["times"], strict=False)]


def _fmt(x, spec=".2f", none="n/a"):
    return none if x is None else format(x, spec)


def cpu_line(m) -> str:
    """The CPU as two kinds can be told apart: name, family/model/stepping, the SIMD flags that matter."""
    ident = m.get("cpu_identity")
    if not ident:
        return m.get("cpu") or "CPU"
    parts = [ident["model_name"] or "CPU"]
    if ident.get("family"):
        parts.append(f"{ident.get('vendor', '')} family {ident['family']} model {ident.get('model', '?')} "
                     f"stepping {ident.get('stepping', '?')}".strip())
    parts.append(", ".join(ident.get("flags") or []) or "no AVX")
    if ident.get("l3"):
        parts.append(f"L3 {ident['l3']}")
    if ident.get("hypervisor"):
        parts.append(f"{ident['hypervisor']} guest")
    return " (".join([parts[0], "; ".join(parts[1:])]) + ")"


def _yes(ok):
    return "yes" if ok else "**no**"


def goals(doc) -> list[tuple[str, str, str, str]]:
    """(goal, target, measured, met) rows."""
    t = _by_key(doc)
    rows = []
    ip = t.get("imgproc")
    med = {k: _median(v["times"]) for k, v in t.items()}
    if ip and "naive" in t:
        x = med["naive"] / med["imgproc"]
        rows.append(("imgproc vs naive Pillow loop", f">= {GOAL_VS_NAIVE}x faster", f"{x:.2f}x faster", _yes(x >= GOAL_VS_NAIVE)))
    if ip and "pyvips" in t:
        x = med["imgproc"] / med["pyvips"]
        rr = _median(_round_ratios(ip, t["pyvips"]))
        cpu = _median(ip.get("cpu") or []), _median(t["pyvips"].get("cpu") or [])
        cpu_text = f"; CPU {cpu[0] / cpu[1]:.2f}x pyvips' CPU seconds" if all(cpu) else ""
        rows.append(("imgproc vs pyvips thumbnail cascade", f"<= {GOAL_VS_PYVIPS}x pyvips' time",
                     f"{x:.2f}x pyvips' time (same-round {rr:.2f}x{cpu_text})", _yes(x <= GOAL_VS_PYVIPS)))
    for key, name in (("magick", "ImageMagick"), ("vipsthumbnail", "vipsthumbnail (Debian)")):
        if ip and key in t:
            x = med["imgproc"] / med[key]
            rows.append((f"imgproc vs {name}", "faster (< 1.00x its time)", f"{x:.2f}x its time", _yes(x < 1)))
        elif ip:
            rows.append((f"imgproc vs {name}", "faster", "tool not installed", "n/a"))
    r12 = doc.get("rss12", {}).get("imgproc")
    if r12:
        worst = max(r12["main_mib"], r12["largest_worker_mib"] or 0)
        rows.append(("peak RSS per process, 12 MP photos", f"< {GOAL_WORKER_MIB} MiB",
                     f"worker {_fmt(r12['largest_worker_mib'], '.0f')} MiB, main {r12['main_mib']:.0f} MiB",
                     _yes(worst < GOAL_WORKER_MIB)))
    lam = doc.get("lambda", {})
    mem = lam.get("memory_server", {}) if lam.get("available") else {}
    each = {k: v for k, v in (lam.get("memory_server_each") or {}).items() if v.get("peak_mib") and v.get("outcome") == "ok"}
    if each:
        orient = lam.get("orientation", {})
        worst = max(v["peak_mib"] for v in each.values())
        text = ", ".join(f"{v['peak_mib']:.0f} MiB ({'upright' if orient.get(k, 1) == 1 else f'EXIF orientation {orient[k]}'})"
                         for k, v in each.items())
        rows.append(("one 24 MP photo through the handler", f"< {GOAL_HANDLER_MIB} MiB incl. interpreter", text,
                     _yes(worst < GOAL_HANDLER_MIB)))
    elif mem.get("peak_mib"):
        rows.append(("one 24 MP photo through the handler", f"< {GOAL_HANDLER_MIB} MiB incl. interpreter",
                     f"{mem['peak_mib']:.0f} MiB", _yes(mem["peak_mib"] < GOAL_HANDLER_MIB)))
    else:
        rows.append(("one 24 MP photo through the handler", f"< {GOAL_HANDLER_MIB} MiB", lam.get("reason") or mem.get("error", "n/a"), "n/a"))
    q = doc.get("quality", {})
    main_q = {k: v for k, v in q.items() if t.get(k, {}).get("group") == "main"}
    if "imgproc" in main_q:
        best_key = max(main_q, key=lambda k: main_q[k]["psnr"])
        gap = main_q[best_key]["psnr"] - main_q["imgproc"]["psnr"]
        rows.append(("800 px PSNR vs best tool", f"within {GOAL_PSNR_DB} dB",
                     f"{gap:.2f} dB below {t[best_key]['label']}" if gap > 0 else "imgproc is the best",
                     _yes(gap <= GOAL_PSNR_DB)))
    return rows


def markdown(doc) -> str:
    m, c = doc["machine"], doc["corpus"]
    out = [f"# imgproc benchmark{' (quick)' if doc['quick'] else ''}", ""]
    out.append(
        f"{doc['when']} · {cpu_line(m)} · {m['cores']} cores · Python {m['python']} · Pillow {m['pillow']} · "
        f"{m.get('pyvips') or 'pyvips absent'} · {m.get('imagemagick') or 'ImageMagick absent'} · "
        f"vipsthumbnail {m.get('vipsthumbnail') or 'absent'}"
    )
    out.append("")
    out.append(
        f"Corpus: {c['photos']} photo-like JPEGs ({c['12mp']} x 12 MP + {c['24mp']} x 24 MP, q90, some with EXIF "
        f"orientation 3/6/8), {c['megapixels']:.0f} MP, {c['bytes'] / 1e6:.0f} MB. Job: auto-orient, 1600/800/200 px "
        f"JPEG q85, metadata stripped, {doc['jobs']} processes. One warm-up{' (on one photo)' if doc['quick'] else ''}, "
        f"then {doc['runs']} timed round(s), every "
        f"tool once per round, imgproc first."
    )
    out.append("")
    out.append(
        f"**Noise:** the machine's {m['cores']} cores are shared with other jobs (load average "
        f"{doc['load_start'][0]:.1f} at start, {doc['load_end'][0]:.1f} at end"
        + (f", {min(doc['round_loads']):.1f}-{max(doc['round_loads']):.1f} after each round" if doc.get("round_loads") else "")
        + "). Absolute times move between runs; the medians and the same-round ratios are what to compare, and "
        "CPU seconds (user + system of the tool and its workers), which another job's load moves much less than "
        "wall time."
    )
    out.append("")
    t = _by_key(doc)
    ip = t.get("imgproc")
    ip_med = _median(ip["times"]) if ip else None
    q = doc.get("quality", {})
    out += ["## Speed, memory and quality", "",
            "| tool | median s | images/s | MP/s | time vs imgproc | same-round ratio | CPU s | CPU vs imgproc | "
            "peak RSS, largest process | 800 px PSNR dB | SSIM |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ip_cpu = _median(ip.get("cpu") or []) if ip else None
    for tool in _tools(doc, "main"):
        med = _median(tool["times"])
        ratio = med / ip_med if ip_med else None
        rr = _median(_round_ratios(tool, ip)) if ip else None
        qq = q.get(tool["key"], {})
        cpu = _median(tool.get("cpu") or [])
        cpu_ratio = cpu / ip_cpu if cpu and ip_cpu else None
        out.append(
            f"| {tool['label']} | {med:.2f} | {c['photos'] / med:.2f} | {c['megapixels'] / med:.0f} | "
            f"{_fmt(ratio)}x | {_fmt(rr)}x | {_fmt(cpu)} | {_fmt(cpu_ratio)}{'x' if cpu_ratio else ''} | {max(tool['rss']):.0f} MiB | "
            f"{_fmt(qq.get('psnr'))} | {_fmt(qq.get('ssim'), '.4f')} |"
        )
    out += ["", "Time vs imgproc = tool's median / imgproc's median (2.00x = takes twice as long). Peak RSS: the "
            "largest single process of the run (`ru_maxrss` via `wait4`, max over rounds; 24 MP photos included; "
            f"a child's `ru_maxrss` cannot read below the harness's own {doc.get('harness_mib') or 0:.0f} MiB, which Linux "
            "carries across fork+exec, so small main processes are measured by polling in the 12 MP table). "
            "PSNR/SSIM: mean over the checked photos of the 800 px rendition against a float LANCZOS resize of "
            "the full-size decode (JPEG q85 loss included, equally for all)."]
    failed = [x for x in doc["tools"] if x["error"]]
    for x in failed:
        out.append(f"- {x['label']}: **failed** — {x['error']}")
    for name, why in doc.get("missing", []):
        out.append(f"- {name}: not run — {why}")
    out += ["", "## Goals (issue 8)", "", "| goal | target | measured | met |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c_} | {d} |" for a, b, c_, d in goals(doc)]

    eng = t.get("engine")
    if eng and ip:
        eng_med = _median(eng["times"])
        rows = []
        ip_med = _median(ip["times"])
        if "naive" in t:
            n = _median(t["naive"]["times"])
            rows.append(f"vs the naive Pillow loop: imgproc process {n / ip_med:.2f}x faster, the engine alone {n / eng_med:.2f}x faster")
        if "pyvips" in t:
            v = _median(t["pyvips"]["times"])
            rows.append(f"vs the pyvips cascade: imgproc process {ip_med / v:.2f}x pyvips' time, the engine alone {eng_med / v:.2f}x")
        start = doc.get("startup") or {}
        out += ["", "## The CLI's share", "",
                f"`bench/tools/engine.py` runs the same `core.pipeline.render` in a pool of {doc['jobs']} without the CLI "
                f"(no typer/rich, no manifest or progress): median {eng_med:.2f} s vs {_median(ip['times']):.2f} s for "
                f"`imgproc process` ({(_median(ip['times']) / eng_med - 1) * 100:+.0f}%)."]
        out += [f"- {r}" for r in rows]
        if start:
            out += ["", "Fixed cost of one invocation (median wall time on two 64x48 JPEGs: interpreter, imports, "
                    "worker pool): " + ", ".join(f"{t[k]['label']} {v:.2f} s" for k, v in start.items() if k in t) + "."]

    r12 = doc.get("rss12") or {}
    if r12:
        out += ["", "## Peak RSS per process on 12 MP photos", "",
                "Polled every 5 ms (psutil) on a folder of 12 MP photos only; `wait4` gives the exact largest peak.", "",
                "| tool | main process | largest worker | processes | largest (wait4) |", "|---|---:|---:|---:|---:|"]
        for key, r in r12.items():
            out.append(f"| {t[key]['label']} | {r['main_mib']:.0f} MiB | {_fmt(r['largest_worker_mib'], '.0f')} MiB | "
                       f"{r['processes']} | {r['wait4_largest_mib']:.0f} MiB |")

    simd = _tools(doc, "simd")
    if simd:
        base = simd[0]
        base_med = _median(base["times"])
        out += ["", "## pillow-simd (investigated, not adopted)", "",
                "The same engine (`bench/tools/engine.py`: `core.pipeline.render` in a pool of 2, no CLI) under stock "
                "Pillow and under pillow-simd built from PyPI sources in a throwaway venv.", "",
                "| build | median s | images/s | time vs stock | same-round ratio | 800 px PSNR dB |", "|---|---:|---:|---:|---:|---:|"]
        for tool in simd:
            med = _median(tool["times"])
            out.append(f"| {tool['label']} | {med:.2f} | {c['photos'] / med:.2f} | {med / base_med:.2f}x | "
                       f"{_median(_round_ratios(tool, base)):.2f}x | {_fmt(q.get(tool['key'], {}).get('psnr'))} |")

    dec = doc.get("decode") or {}
    if dec and "error" not in dec:
        out += ["", "## Decode only (one thread, ms per photo, median)", "",
                "| photos | Pillow full | Pillow 1/2 | Pillow 1/4 | Pillow 1/8 | libvips full | libvips 1/2 | libvips 1/4 | libvips 1/8 |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for cls, row in dec.items():
            cells = [_fmt(row.get(f"{lib}_1/{s}"), ".0f") for lib in ("pillow", "vips") for s in (1, 2, 4, 8)]
            out.append(f"| {cls} (n={row['files']}) | " + " | ".join(cells) + " |")
        out += ["", "1/2 is the practical limit for this job: a 1600 px rendition of a 4000 px photo needs 1600 px, "
                "and 1/4 gives only 1000."]

    prof = doc.get("profile") or {}
    if prof.get("rows"):
        out += ["", "## Where imgproc's time goes (stage profile)", "",
                f"`core.pipeline.render` serially in one process (Pillow {prof.get('pillow')}), mean ms per photo; "
                "decode = open + limit checks + draft + load + orient.", ""]
        out += _profile_table(prof["rows"])

    lam = doc.get("lambda", {})
    out += ["", "## Lambda figures", ""]
    if lam.get("available"):
        ms, mi = lam["memory_server"], lam["memory_inprocess"]
        out.append(f"- Cold import of `lambda_entry` (fresh interpreter, median of {len(lam['import_ms'])}): "
                   f"**{lam['import_ms_median']:.0f} ms**")
        if "peak_mib" in ms:
            out.append(f"- One 24 MP JPEG through `lambda_entry.handler` (built-in presets: thumb + web JPEG + WebP), "
                       f"moto as a separate server: peak RSS (VmHWM) **{ms['peak_mib']:.0f} MiB** incl. interpreter "
                       f"({ms['rss_before_handler_mib']:.0f} MiB after importing lambda_entry; outcome {ms['outcome']}, "
                       f"stages ms {ms.get('ms')})")
        else:
            out.append(f"- Handler memory (moto server): failed: {ms.get('error')}")
        orient = lam.get("orientation", {})
        for k, v in (lam.get("memory_server_each") or {}).items():
            if orient.get(k, 1) != 1 and "peak_mib" in v:
                out.append(f"- The same for a rotated 24 MP photo ({k}, EXIF orientation {orient[k]}, resized as "
                           f"stored and turned upright after): peak RSS (VmHWM) **{v['peak_mib']:.0f} MiB**")
        if "peak_mib" in mi:
            out.append(f"- Same with moto in-process (`mock_aws`, as the tests do): {mi['peak_mib']:.0f} MiB "
                       f"({mi['rss_before_handler_mib']:.0f} MiB before the handler: moto, boto3 and the stored object)")
    else:
        out.append(f"- Handler figures not available: {lam.get('reason')}")
    pkg = doc.get("package", {})
    if pkg.get("available"):
        out.append(f"- Package zip (`{pkg['command']}`): **{pkg['bytes'] / 1e6:.1f} MB**")
    else:
        out.append(f"- Package zip size: not available ({pkg.get('reason')})")

    out += ["", "## How each tool was run", ""]
    for tool in doc["tools"]:
        out.append(f"- **{tool['label']}**: {tool['note']}")
    out += ["", f"Run time of the whole benchmark: {doc['seconds']:.0f} s. Raw numbers: results.json.", ""]
    return "\n".join(out)


def _profile_table(rows) -> list[str]:
    stages = ["read", "decode", "resize_1600", "encode_1600", "resize_800", "encode_800", "resize_200", "encode_200",
              "write", "render_other"]
    classes: dict[str, list[dict]] = {}
    for r in rows:
        classes.setdefault(f"{round(r['megapixels'])} MP", []).append(r)
    lines = ["| stage | " + " | ".join(f"{k} (n={len(v)})" for k, v in classes.items()) + " | share |",
             "|---|" + "---:|" * (len(classes) + 1)]
    total_all = sum(r["total"] for r in rows)
    for s in stages:
        cells = [f"{statistics.mean(r.get(s, 0) for r in v):.1f}" for v in classes.values()]
        share = sum(r.get(s, 0) for r in rows) / total_all * 100
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {share:.0f}% |")
    cells = [f"{statistics.mean(r['total'] for r in v):.1f}" for v in classes.values()]
    lines.append("| **total** | " + " | ".join(cells) + " | 100% |")
    groups = {"decode": ["decode"], "resize": ["resize_1600", "resize_800", "resize_200"],
              "encode": ["encode_1600", "encode_800", "encode_200"], "I/O": ["read", "write"]}
    summary = ", ".join(f"{g} {sum(r.get(s, 0) for r in rows for s in ss) / total_all * 100:.0f}%" for g, ss in groups.items())
    lines += ["", f"Summary: {summary}."]
    return lines


def chart(doc, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tools = _tools(doc, "main") + list(_tools(doc, "simd"))
    if not tools:
        return None
    ip = _by_key(doc).get("imgproc")
    ip_med = _median(ip["times"]) if ip else None
    labels = [t["label"] for t in tools]
    meds = [_median(t["times"]) for t in tools]
    # Right panel: the per-process peak on 12 MP photos where measured (the goal's terms);
    # otherwise the largest process over the whole corpus (24 MP included), hatched.
    r12 = doc.get("rss12") or {}
    rss = [r12[t["key"]]["wait4_largest_mib"] if t["key"] in r12 else max(t["rss"]) for t in tools]
    hatch = [None if t["key"] in r12 else "//" for t in tools]
    colours = ["#d62728" if t["key"] == "imgproc" else ("#9467bd" if t["group"] == "simd" else "#1f77b4") for t in tools]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 0.55 * len(tools) + 1.8), sharey=True)
    y = range(len(tools))
    ax1.barh(y, meds, color=colours)
    ax1.set_yticks(list(y), labels)
    ax1.invert_yaxis()
    ax1.set_xlabel("median wall time, s (lower is better)")
    for i, (t, m) in enumerate(zip(tools, meds, strict=False)):
        note = f"{m:.1f} s" + (f"  ({m / ip_med:.2f}x)" if ip_med and t["group"] == "main" else "")
        ax1.text(m, i, " " + note, va="center", fontsize=8)
    ax1.set_xlim(0, max(meds) * 1.35)
    for i, (r, h, col) in enumerate(zip(rss, hatch, colours, strict=False)):
        ax2.barh(i, r, color=col, hatch=h, edgecolor="white" if h else None)
    ax2.axvline(GOAL_WORKER_MIB, color="grey", linestyle="--", linewidth=1, label="80 MiB per-worker goal (12 MP)")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_xlabel("peak RSS of the largest process on 12 MP photos, MiB\n(hatched: whole corpus incl. 24 MP)")
    for i, r in enumerate(rss):
        ax2.text(r, i, f" {r:.0f}", va="center", fontsize=8)
    ax2.set_xlim(0, max(rss) * 1.25)
    c = doc["corpus"]
    ident = doc["machine"].get("cpu_identity") or {}
    cpu = doc["machine"].get("cpu") or "CPU"
    if ident.get("family"):
        cpu += f" (family {ident['family']} model {ident.get('model', '?')}{', AVX-512' if 'avx512f' in ident.get('flags', []) else ''})"
    fig.suptitle(f"Same job on {c['photos']} photos ({c['megapixels']:.0f} MP), {doc['jobs']} processes, "
                 f"median of {doc['runs']} round(s) · {cpu} · {doc['when']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

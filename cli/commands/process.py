"""`imgproc process`: run presets over a local folder, on every core, incrementally."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.commands.options import ConfigOpt
from cli.console import ExitCode, err_console, human_bytes, load_config
from cli.errors import fail
from cli.process.workers import Pool
from core import batch, memory
from core.codec import check_codecs
from core.errors import ImgprocError
from core.recipe import Limits, Rendition


@dataclass
class Summary:
    plan: batch.Plan
    src: Path
    out: Path
    results: list[batch.FileResult] = field(default_factory=list)
    seconds: float = 0.0
    manifest_error: str | None = None
    report: Path | None = None  # OUT/index.html when --report wrote it

    @property
    def processed(self) -> list[batch.FileResult]:
        return [r for r in self.results if r.ok]

    @property
    def failed(self) -> list[tuple[str, str, str]]:
        """(source path, error type, message) for collisions and failed renders."""
        rows = [(str(self.src / c.relative), "OutputCollision", c.message) for c in self.plan.collisions]
        rows += [(str(self.src / rel), "UnsafeOutput", message) for rel, message in self.plan.unsafe]
        rows += [(str(self.src / r.relative), r.error_type or "", r.error or "") for r in self.results if not r.ok]
        if self.manifest_error:
            rows.append((str(self.out / batch.MANIFEST_NAME), "StorageError", self.manifest_error))
        return rows

    @property
    def warnings(self) -> list[str]:
        """Codec warnings, one line per distinct message per file, naming the file; collisions reported before."""
        seen = [f"{c.message} (reported before; skipped)" for c in self.plan.acknowledged]
        return seen + [line for r in self.results for line in r.warnings]

    @property
    def skipped(self) -> int:
        return len(self.plan.unchanged) + len(self.plan.not_images) + len(self.plan.acknowledged)

    def to_json(self) -> dict:
        return {
            "processed": len(self.processed),
            "skipped": self.skipped,
            "failed": [{"path": p, "error": msg, "type": kind} for p, kind, msg in self.failed],
            "warnings": self.warnings,
            # Every file written, including the renditions of a source whose other rendition failed.
            "outputs": [
                {"source": str(self.src / r.relative), "path": str(self.out / o.path), "width": o.width,
                 "height": o.height, "format": o.format, "bytes": o.bytes}
                for r in self.results for o in r.outputs
            ],
            "unchanged": len(self.plan.unchanged),
            "collisions_skipped": len(self.plan.acknowledged),
            "not_images": len(self.plan.not_images),
            "bytes_in": sum(r.source_bytes for r in self.processed),
            "bytes_out": sum(o.bytes for r in self.results for o in r.outputs),
            "seconds": round(self.seconds, 3),
            **({"report": str(self.report)} if self.report else {}),
        }


# --- running jobs ------------------------------------------------------------

def _failed_job(job: batch.Job, kind: str, message: str) -> batch.FileResult:
    return batch.FileResult(job.relative, error=f"{job.relative}: {message}", error_type=kind)


def run_jobs(
    jobs: tuple[batch.Job, ...], src: Path, out: Path, renditions: tuple[Rendition, ...], limits: Limits, workers: int
) -> Iterator[batch.FileResult]:
    """Results as they finish, from worker processes (even for one worker: only a
    separate process can be stopped when a file passes ``limits.max_seconds``).

    A worker that dies or overruns costs its file (WorkerDied / ImageTimeout), not the run.
    """
    work = functools.partial(batch.run_job, src, out, renditions=renditions, limits=limits)
    memory.keep_freed_blocks()  # set before the workers fork: each reuses its freed image memory
    pool = Pool(min(workers, len(jobs)) or 1, work, _failed_job, limits.max_seconds)
    yield from pool.run(jobs)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]processing"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} img/s"), TimeElapsedColumn(),
        console=console, transient=True,
    )


#: The manifest is rewritten (temp file + rename) at most this often while a run goes, so a
#: run killed with SIGKILL or a power cut redoes only the files finished since the last one.
CHECKPOINT_SECONDS = 1.0


def execute(summary: Summary, renditions, limits, workers: int, console: Console) -> None:
    """Run the plan with a progress bar, recording results and checkpointing the manifest."""
    manifest = batch.load_manifest(summary.out)
    started = last_saved = time.perf_counter()
    try:
        with _progress(console) as progress:
            task = progress.add_task("process", total=len(summary.plan.jobs), rate="-")
            for result in run_jobs(summary.plan.jobs, summary.src, summary.out, renditions, limits, workers):
                summary.results.append(result)
                if result.ok:
                    manifest[result.relative] = batch.manifest_entry(result, summary.plan.recipe)
                else:
                    manifest.pop(result.relative, None)
                now = time.perf_counter()
                if now - last_saved >= CHECKPOINT_SECONDS:
                    _save_manifest(summary, manifest)
                    last_saved = now
                progress.update(task, advance=1, rate=f"{len(summary.results) / max(1e-9, now - started):.1f}")
    finally:
        summary.seconds = time.perf_counter() - started
        for collision in summary.plan.collisions:  # reported now; not failed again while unchanged
            manifest[collision.relative] = batch.collision_entry(collision, summary.plan.recipe)
        if summary.results or summary.plan.collisions:
            _save_manifest(summary, manifest)


def _save_manifest(summary: Summary, manifest: dict) -> None:
    """Write the manifest; failing to is reported once (the outputs are written), not a traceback."""
    try:
        batch.save_manifest(summary.out, manifest)
    except OSError as exc:
        if summary.manifest_error is None:
            summary.manifest_error = (f"{summary.out / batch.MANIFEST_NAME}: cannot write the manifest "
                                      f"({exc.strerror or exc}); the next run redoes these files")


# --- rendering ---------------------------------------------------------------


def render_summary(summary: Summary, console: Console) -> None:
    data = summary.to_json()
    for line in summary.warnings:
        console.print(f"[yellow]warning[/] {escape(line)}", soft_wrap=True)
    for _path, _kind, message in summary.failed:
        console.print(f"[red]failed[/] {escape(message)}", soft_wrap=True)
    table = Table(title="imgproc process", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rate = data["processed"] / summary.seconds if summary.seconds else 0
    table.add_row("output", escape(str(summary.out)))
    table.add_row("processed", str(data["processed"]))
    collided = f", {data['collisions_skipped']} collisions reported before" if data["collisions_skipped"] else ""
    table.add_row("skipped", f"{data['skipped']} ({data['unchanged']} up to date, {data['not_images']} not images{collided})")
    table.add_row("failed", f"[red]{len(data['failed'])}[/]" if data["failed"] else "0")
    table.add_row("bytes in → out", f"{human_bytes(data['bytes_in'])} → {human_bytes(data['bytes_out'])}")
    table.add_row("time", f"{summary.seconds:.2f} s ({rate:.1f} images/s)")
    if summary.report:
        table.add_row("report", str(summary.report))
    console.print(table)


def render_dry_run(summary: Summary, console: Console) -> None:
    for job in summary.plan.jobs:
        for path in job.outputs:
            console.print(f"{summary.src / job.relative} → {summary.out / path}", soft_wrap=True, highlight=False,
                          markup=False)
    console.print(
        f"dry run: {len(summary.plan.jobs)} to process, {len(summary.plan.unchanged)} up to date, "
        f"{len(summary.plan.not_images)} not images, {len(summary.plan.collisions)} collisions; nothing written",
        highlight=False,
    )


def write_gallery(summary: Summary) -> Path:
    """OUT/index.html for every source in OUT (this run's and earlier ones), with this run's failures."""
    from cli.gallery import local  # only --report pays for the page builder

    failures = [(Path(path).relative_to(summary.src).as_posix(), message) for path, _kind, message in summary.failed]
    gallery = local.from_output_folder(summary.src, summary.out, summary.results, failures)
    return local.write_report(summary.out, gallery)


# --- the command -------------------------------------------------------------


def process(
    src: Annotated[Path, typer.Argument(help="Folder of photos (searched recursively).", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", metavar="DIR", help="Output folder. Default: SRC-processed beside SRC.",
                                            show_default=False)] = None,
    preset: Annotated[list[str] | None, typer.Option("--preset", "-p", metavar="NAME", help="Preset to apply (repeatable). Default: all.",
                                                     show_default=False)] = None,
    config: ConfigOpt = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Parallel workers. Default: every core.",
                                             show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo files whose outputs are up to date.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be written; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout instead of the table.")] = False,
    report: Annotated[bool, typer.Option("--report", help="Also write OUT/index.html: every source's renditions "
                                         "side by side, with sizes and failures (opens offline).")] = False,
) -> None:
    """Apply presets to every image under SRC and write the renditions to OUT.

    Writes OUT/<relative path>/<stem>-<rendition>.<ext>. Reruns skip sources whose
    outputs are up to date for the same recipe. Exit code 0 when every file
    succeeded, 1 when any failed, 2 for a usage or config error.

    Example:

        imgproc process ./photos -o ./web --preset thumb --preset web --jobs 4 --report
    """
    src, out = _resolve_folders(src, out)
    cfg = load_config(config)
    try:
        renditions = cfg.select(preset)
        check_codecs(renditions)
    except ImgprocError as exc:
        fail(str(exc))
    stdout = Console(highlight=False)
    summary = Summary(batch.plan(src, out, renditions, batch.load_manifest(out), force, cfg.naming), src, out)
    if dry_run:
        render_dry_run(summary, stdout)
        raise typer.Exit(int(ExitCode.OK))
    _check_writable(out)
    try:
        execute(summary, renditions, cfg.limits, jobs or os.cpu_count() or 1, err_console())
    except KeyboardInterrupt:
        fail("interrupted; finished outputs are kept, nothing half-written", ExitCode.INTERRUPTED)
    if report:
        summary.report = write_gallery(summary)
    if as_json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        render_summary(summary, stdout)
    raise typer.Exit(int(ExitCode.FAILED if summary.failed else ExitCode.OK))


def _resolve_folders(src: Path, out: Path | None) -> tuple[Path, Path]:
    if not src.is_dir():
        fail(f"{src}: no such folder" if not src.exists() else f"{src}: not a folder")
    src = src.resolve()
    out = (out or src.parent / f"{src.name}-processed").resolve()
    if out == src:
        fail("the output folder cannot be the source folder (inputs are never overwritten)")
    return src, out


def _check_writable(out: Path) -> None:
    """One line and exit 1 for an output folder that cannot be written, not a failure per file."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        if not os.access(out, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        fail(f"{out}: cannot write to the output folder ({exc.strerror or exc})", ExitCode.FAILED)


def register(app: typer.Typer) -> None:
    app.command("process")(process)

"""Lambda figures: cold import of lambda_entry, peak memory of one photo through the handler.

Every measurement runs in a fresh subprocess (a cold start each time); peak
memory is that process's high-water RSS (``VmHWM``), i.e. including the
interpreter, boto3 and Pillow, which is what Lambda's "Max Memory Used" also
counts. (Not ``ru_maxrss``: on Linux a child's ``ru_maxrss`` starts at its
parent's peak at fork+exec time, which here is the harness with moto loaded.)

Two memory set-ups:
- ``server``: moto runs as a separate process (like S3 is elsewhere on AWS); the
  measured process holds only the handler path. This is the figure for the goal.
- ``inprocess``: moto's ``mock_aws`` in the same process (as the test suite does);
  moto's own modules and its stored copy of the object inflate the figure.

    python bench/tools/lambda_figures.py PHOTO.jpg [MORE.jpg ...] [--imports N]   # prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IN, OUT, KEY = "bench-in", "bench-out", "uploads/photo 24mp.jpg"

_IMPORT = "import time; t = time.perf_counter(); import lambda_entry; print((time.perf_counter() - t) * 1000)"

# Run in the measured child. argv: photo path, mode ("server" or "inprocess").
_CHILD = r'''
import json, os, resource, sys, urllib.parse
photo, mode = sys.argv[1], sys.argv[2]
IN, OUT, KEY = "bench-in", "bench-out", "uploads/photo 24mp.jpg"

def _status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024

def rss_mib():
    return _status("VmRSS")

class Context:
    function_name = "imgproc-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:imgproc-bench"
    aws_request_id = "bench-0001"
    log_group_name = "/aws/lambda/imgproc-bench"
    log_stream_name = "bench"
    def get_remaining_time_in_millis(self):
        return 300000

size = os.path.getsize(photo)
event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
    "eventTime": "2026-11-26T14:00:00.000Z", "eventName": "ObjectCreated:Put",
    "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": IN, "arn": "arn:aws:s3:::" + IN},
           "object": {"key": urllib.parse.quote_plus(KEY), "size": size, "eTag": "x"}}}]}

def run():
    import lambda_entry
    before = rss_mib()
    import io, contextlib
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        result = lambda_entry.handler(event, Context())
    lines = [json.loads(l) for l in buf.getvalue().splitlines() if l.strip().startswith("{")]
    image = next((l for l in lines if l.get("event") == "image"), {})
    return before, result, image

if mode == "inprocess":
    from moto import mock_aws
    with mock_aws():
        import boto3
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=IN)
        s3.create_bucket(Bucket=OUT)
        with open(photo, "rb") as fh:
            s3.put_object(Bucket=IN, Key=KEY, Body=fh.read())
        before, result, image = run()
else:
    before, result, image = run()
# VmHWM, not ru_maxrss: Linux carries the spawning parent's peak into a child's ru_maxrss
# across fork+exec, so ru_maxrss would report the harness (moto server, boto3) instead.
peak = _status("VmHWM")
print(json.dumps({"peak_mib": peak, "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_before_handler_mib": before, "result": result,
                  "outcome": image.get("outcome"), "ms": image.get("ms"),
                  "renditions": [(r.get("name"), r.get("width"), r.get("height")) for r in image.get("renditions", [])],
                  "error": image.get("error")}))
'''


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in list(env):
        if var.startswith("IMGPROC_") or var.startswith("AWS_"):
            del env[var]
    env.update(
        PYTHONPATH=str(REPO), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
        IMGPROC_OUTPUT_BUCKET=OUT, IMGPROC_INPUT_BUCKET=IN, **extra,
    )
    return env


def handler_available() -> str | None:
    """None when lambda_entry.handler can be imported, else why not."""
    proc = subprocess.run(
        [sys.executable, "-c", "import lambda_entry; lambda_entry.handler"],
        cwd=REPO, env=_env(), capture_output=True, text=True,
    )
    return None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["import failed"])[-1]


def cold_imports(n: int) -> list[float]:
    """ms to import lambda_entry in a fresh interpreter, n times (after one run to write .pyc)."""
    times = []
    for i in range(n + 1):
        proc = subprocess.run([sys.executable, "-c", _IMPORT], cwd=REPO, env=_env(), capture_output=True, text=True, check=True)
        if i:
            times.append(float(proc.stdout.strip().splitlines()[-1]))
    return times


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def handler_memory(photo: Path, mode: str) -> dict:
    if mode == "inprocess":
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(photo), mode], cwd=REPO, env=_env(),
                              capture_output=True, text=True)
        return _parse(proc)
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{port}"
        # moto's backends are per process, not per server: start from empty buckets, or the
        # handler would find the previous run's outputs and skip the photo.
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=IN)
        s3.create_bucket(Bucket=OUT)
        s3.put_object(Bucket=IN, Key=KEY, Body=photo.read_bytes())
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(photo), mode], cwd=REPO,
                              env=_env(AWS_ENDPOINT_URL=url), capture_output=True, text=True)
        return _parse(proc)
    finally:
        server.stop()


def _parse(proc: subprocess.CompletedProcess) -> dict:
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", type=Path, nargs="+", help="one or more photos; each gets its own cold handler run")
    parser.add_argument("--imports", type=int, default=7)
    args = parser.parse_args(argv)
    why = handler_available()
    if why:
        print(json.dumps({"available": False, "reason": why}))
        return 0
    started = time.perf_counter()
    imports = cold_imports(args.imports)
    doc = {
        "available": True,
        "import_ms": imports,
        "import_ms_median": statistics.median(imports),
        "memory_server_each": {p.name: handler_memory(p, "server") for p in args.photo},
        "memory_inprocess": handler_memory(args.photo[0], "inprocess"),
        "seconds": time.perf_counter() - started,
    }
    doc["memory_server"] = doc["memory_server_each"][args.photo[0].name]
    print(json.dumps(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())

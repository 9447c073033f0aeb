"""Measure the Lambda handler's cold import time and peak memory (not a test; run by hand).

    .venv/bin/python tests/support/measure_handler.py            # 7 runs each, 24 MP JPEG
    .venv/bin/python tests/support/measure_handler.py --runs 3 --megapixels 12

1. Cold import: a fresh interpreter times ``import lambda_entry`` itself (median
   over runs), plus the ``-X importtime`` cumulative figure for lambda_entry.
2. Full cold start: ``import lambda_entry`` + ``lambda_entry.runtime()`` (settings,
   presets, Pillow, boto3 client) in a fresh interpreter.
3. Peak memory: a fresh interpreter runs the handler once on one JPEG stored in
   moto's server (started here, in another process than the handler), and
   reports its own ``ru_maxrss`` after import and after the invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "support"))

ENV = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "IMGPROC_OUTPUT_BUCKET": "measure-out",
       "PYTHONPATH": str(ROOT)}

HANDLER_RUN = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import lambda_entry
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t1 = time.perf_counter()
result = lambda_entry.handler(json.loads(sys.argv[1]), None)
t2 = time.perf_counter()
rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"result": result, "rss_import_kb": rss_import, "rss_peak_kb": rss_peak, "vmhwm_kb": hwm,
                  "import_s": t1 - t0, "invoke_s": t2 - t1}), file=sys.stderr)
"""

# ru_maxrss survives fork+exec: a child forked from this (large) process would report our
# RSS. A tiny launcher forks the handler process instead and reports RUSAGE_CHILDREN.
LAUNCHER = r"""
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)
"""


def timed(code: str, runs: int) -> float:
    """Median seconds ``code`` takes in a fresh interpreter, timed inside it (no start-up noise)."""
    probe = f"import time\nt = time.perf_counter()\n{code}\nprint(time.perf_counter() - t)"
    return statistics.median(
        float(subprocess.run([sys.executable, "-c", probe], env=ENV, cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.split()[-1])
        for _ in range(runs))


def importtime_us(runs: int) -> float:
    """Cumulative microseconds -X importtime attributes to lambda_entry (median)."""
    values = []
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lambda_entry"], env=ENV, cwd=ROOT,
                             check=True, capture_output=True, text=True).stderr
        for line in err.splitlines():
            parts = [p.strip() for p in line.split("|")]
            if len(parts) == 3 and parts[2] == "lambda_entry":
                values.append(float(parts[1]))
    return statistics.median(values)


def peak_memory(megapixels: float) -> dict:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from core.events import put_event

    from imaging import encode, photo

    width = int((megapixels * 1e6 * 1.5) ** 0.5)
    height = int(width / 1.5)
    data = encode(photo(width, height, seed=7), "JPEG", quality=90)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="measure-in")
        s3.create_bucket(Bucket="measure-out")
        s3.put_object(Bucket="measure-in", Key="uploads/big photo.jpg", Body=data)
        event = json.dumps(put_event("measure-in", ["uploads/big photo.jpg"]))
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, sys.executable, "-c", HANDLER_RUN, event],
                              env={**ENV, "AWS_ENDPOINT_URL": url}, cwd=ROOT, check=True, capture_output=True, text=True)
        *_, report_line, child_maxrss = proc.stderr.strip().splitlines()
        report = {**json.loads(report_line), "child_maxrss_kb": int(child_maxrss)}
        line = json.loads(proc.stdout.splitlines()[0])
    finally:
        server.stop()
    return {"width": width, "height": height, "jpeg_bytes": len(data), **report, "ms": line["ms"],
            "renditions": [(r["output_key"], r["bytes"]) for r in line["renditions"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--megapixels", type=float, default=24.0)
    args = parser.parse_args()

    light = timed("import lambda_entry", args.runs)
    full = timed("import lambda_entry\nlambda_entry.runtime().client('s3')", args.runs)
    print(f"python {sys.version.split()[0]}, {args.runs} runs each (medians)")
    print(f"cold import of lambda_entry:          {1000 * light:7.1f} ms  (timed in a fresh interpreter)")
    print(f"  -X importtime cumulative:           {importtime_us(args.runs) / 1000:7.1f} ms")
    print(f"import + cold-start runtime + client: {1000 * full:7.1f} ms  (settings, presets, Pillow, boto3)")
    mem = peak_memory(args.megapixels)
    print(f"one {mem['width']}x{mem['height']} JPEG ({mem['jpeg_bytes'] / 1e6:.1f} MB) through the handler (moto server):")
    print(f"  peak RSS (ru_maxrss of the process): {mem['child_maxrss_kb'] / 1024:7.1f} MB  (VmHWM "
          f"{mem['vmhwm_kb'] / 1024:.1f} MB; after import {mem['rss_import_kb'] / 1024:.1f} MB)")
    print(f"  invocation wall time:               {mem['invoke_s'] * 1000:7.0f} ms  stages: {mem['ms']}")
    print(f"  result: {mem['result']}  renditions: {mem['renditions']}")


if __name__ == "__main__":
    main()

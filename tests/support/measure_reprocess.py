"""Measure `imgproc reprocess` at the issue's scale against `imgproc local up` (not a test: run once).

    .venv/bin/python tests/support/measure_reprocess.py [--count 500]

1. deploy, remove the bucket's notification, upload COUNT photos (nothing renders them);
2. one `reprocess --yes` (asynchronous invocations): time to send, time until every source
   is current, counts;
3. a second `reprocess --yes`: sends nothing;
4. a preset change (thumb 100 -> 120 px) and `reprocess --yes --batch-operations --wait`:
   an S3 Batch Operations job; the completion report must list every task succeeded and
   only the thumb renditions may change.
Prints one JSON document with the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from reprocess_scenario import LocalUp, deploy, output_heads, report_rows, upload_without_trigger, wait_until_current


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    numbers: dict = {"count": args.count}
    with tempfile.TemporaryDirectory() as home, LocalUp(Path(home)) as local:
        deploy(local, thumb=100)
        t = time.monotonic()
        keys = upload_without_trigger(local, args.count, "bulk/")
        numbers["upload_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        first = local.json("reprocess", "--yes", timeout=900)
        numbers["first_run"] = {"counts": first["plan"]["counts"], "plan_s": first["plan"]["seconds"],
                                "sent": first["sent"]["sent"], "how": first["sent"]["how"],
                                "send_s": first["sent"]["seconds"], "failed": len(first["sent"]["failed"])}
        plan, _waited = wait_until_current(local, args.count, timeout=1800)
        numbers["first_run"]["all_current_after_s"] = round(time.monotonic() - t, 1)
        numbers["first_run"]["current"] = plan["counts"]["current"]
        numbers["first_run"]["rate_per_s"] = round(args.count / (time.monotonic() - t), 1)

        second = local.json("reprocess", "--yes", timeout=900)
        numbers["second_run"] = {"to_send": second["plan"]["to_send"], "sent": second.get("sent", {}).get("sent", 0),
                                 "plan_s": second["plan"]["seconds"]}

        before = output_heads(local, keys)
        deploy(local, thumb=120)
        t = time.monotonic()
        changed_run = local.json("reprocess", "--yes", "--batch-operations", "--wait", "--timeout", "1800",
                                 timeout=2000)
        job = changed_run["job"]
        after = output_heads(local, keys)
        changed = {k for k in before if after[k]["ETag"] != before[k]["ETag"]}
        rows = report_rows(local, job["report"])
        numbers["preset_change_batch_operations"] = {
            "plan_counts": changed_run["plan"]["counts"], "to_render": changed_run["plan"]["renditions_to_render"],
            "job_status": job["status"], "tasks": job["total"], "succeeded": job["succeeded"], "failed": job["failed"],
            "report_rows": len(rows), "report_all_succeeded": {r[3] for r in rows} == {"succeeded"},
            "renditions_changed": len(changed), "only_thumbs_changed": all(k.startswith("thumb/") for k in changed),
            "seconds": round(time.monotonic() - t, 1),
        }
        third = local.json("reprocess", "--yes", timeout=900)
        numbers["after_preset_change_rerun_to_send"] = third["plan"]["to_send"]
    print(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

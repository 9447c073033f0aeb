"""A tiny Lambda function (and its zip) that the emulator tests deploy: it copies objects and logs."""

from __future__ import annotations

import io
import zipfile

HANDLER = r'''
import json, os, sys, time
from urllib.parse import unquote_plus
import boto3

print("init in", os.environ["AWS_LAMBDA_FUNCTION_NAME"])
s3 = boto3.client("s3")

def handler(event, context):
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "fail" in event:
        raise ValueError(event["fail"])
    if "echo" in event:
        return {
            "python": "%d.%d" % sys.version_info[:2],
            "env": {k: os.environ.get(k) for k in event["echo"]},
            "request_id": context.aws_request_id,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "function_name": context.function_name,
            "memory": context.memory_limit_in_mb,
        }
    for record in event["Records"]:
        raw = record["s3"]["object"]["key"]
        key = unquote_plus(raw)
        if key.endswith(".bad"):
            raise RuntimeError("cannot handle " + key)
        s3.copy_object(Bucket=os.environ["OUT"], Key="copy/" + key,
                       CopySource={"Bucket": record["s3"]["bucket"]["name"], "Key": key})
        print(json.dumps({"event": "image", "key": key, "raw_key": raw,
                          "configuration": record["s3"]["configurationId"],
                          "request_id": context.aws_request_id}))
    return {"ok": True}
'''


def make_zip(source: str = HANDLER, name: str = "app.py") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr(name, source)
    return buf.getvalue()

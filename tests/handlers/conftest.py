"""The handlers' shared fixture: moto buckets and a fresh cold start, configured like a deployed function."""

from __future__ import annotations

import os

import boto3
import pytest

import lambda_entry


@pytest.fixture
def handler_s3(aws, monkeypatch, request):
    """The test module's IN and OUT buckets in moto, no other IMGPROC_* setting; yields the S3 client."""
    inp, out = request.module.IN, request.module.OUT
    for var in [v for v in os.environ if v.startswith("IMGPROC_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("IMGPROC_INPUT_BUCKET", inp)
    monkeypatch.setenv("IMGPROC_OUTPUT_BUCKET", out)
    client = boto3.client("s3")
    client.create_bucket(Bucket=inp)
    client.create_bucket(Bucket=out)
    lambda_entry.reset()
    yield client
    lambda_entry.reset()

"""A CloudWatch dashboard of the function's metrics, one per stack.

The first row is what the handler itself reports as Embedded Metric Format lines
(`lambda_entry.emf_line`: namespace "imgproc", dimension FunctionName): images processed,
failed and skipped, processing ms per image, bytes in and out. The second row is what
Lambda and SQS report for the same function: invocations, errors, throttles, duration
against the timeout, and the depth of the failure (and, in queue mode, upload and
dead-letter) queues.

The body is JSON inside `Fn::Sub`, so the function's and queues' names are filled in by
CloudFormation. Dashboards are global to an account, hence the region in the name.
"""

from __future__ import annotations

import json
from typing import Any

from cli.deploy.settings import DeploySettings

Doc = dict[str, Any]
#: The handler's EMF namespace and metric names (lambda_entry.NAMESPACE and emf_line; a test keeps them equal).
NAMESPACE = "imgproc"
IMAGE_COUNTS = ("ImagesProcessed", "ImagesFailed", "ImagesSkipped")
PROCESSING_MS = "ProcessingMs"
BYTES = ("BytesIn", "BytesOut")
EMF_METRICS = (*IMAGE_COUNTS, PROCESSING_MS, *BYTES)
PERIOD_S = 300
WIDTH, HEIGHT = 8, 6  # three widgets per 24-column row
FUNCTION = "${Function}"  # Fn::Sub: the function's name


def _metric(namespace: str, name: str, dimension: tuple[str, str], stat: str, label: str, **extra: Any) -> list:
    return [namespace, name, dimension[0], dimension[1], {"stat": stat, "label": label, **extra}]


def _widget(title: str, metrics: list[list], x: int, y: int, *, stacked: bool = False,
            annotations: list[Doc] | None = None) -> Doc:
    properties: Doc = {"title": title, "region": "${AWS::Region}", "view": "timeSeries", "stacked": stacked,
                       "period": PERIOD_S, "metrics": metrics}
    if annotations:
        properties["annotations"] = {"horizontal": annotations}
    return {"type": "metric", "x": x, "y": y, "width": WIDTH, "height": HEIGHT, "properties": properties}


def _emf_row() -> list[Doc]:
    fn = ("FunctionName", FUNCTION)
    return [
        _widget("Images (imgproc)", [_metric(NAMESPACE, m, fn, "Sum", m.removeprefix("Images").lower())
                                      for m in IMAGE_COUNTS], 0, 0, stacked=True),
        _widget("Processing ms per image (imgproc)",
                [_metric(NAMESPACE, PROCESSING_MS, fn, stat, stat) for stat in ("p50", "p95", "Maximum")], WIDTH, 0),
        _widget("Bytes in and out (imgproc)", [_metric(NAMESPACE, m, fn, "Sum", m.removeprefix("Bytes").lower())
                                                for m in BYTES], 2 * WIDTH, 0),
    ]


def _aws_row(s: DeploySettings) -> list[Doc]:
    fn = ("FunctionName", FUNCTION)
    queues = [("FailureQueue", "failure queue")]
    if s.trigger == "queue":
        queues = [("UploadQueue", "upload queue"), ("UploadDeadLetterQueue", "dead-letter queue"), *queues]
    return [
        _widget("Invocations, errors, throttles (Lambda)",
                [_metric("AWS/Lambda", m, fn, "Sum", m.lower()) for m in ("Invocations", "Errors", "Throttles")],
                0, HEIGHT),
        _widget("Duration ms (Lambda)",
                [_metric("AWS/Lambda", "Duration", fn, stat, stat) for stat in ("p50", "p95", "Maximum")],
                WIDTH, HEIGHT, annotations=[{"label": "timeout", "value": s.timeout * 1000}]),
        _widget("Messages waiting (SQS)",
                [_metric("AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", f"${{{q}.QueueName}}"),
                         "Maximum", label) for q, label in queues], 2 * WIDTH, HEIGHT),
    ]


def dashboard_body(s: DeploySettings) -> str:
    """The dashboard's JSON with ${...} placeholders for Fn::Sub."""
    return json.dumps({"widgets": [*_emf_row(), *_aws_row(s)]}, separators=(",", ":"))


def dashboard_resources(s: DeploySettings, presets: tuple[str, ...]) -> Doc:
    """The dashboard and its console address (a template resource group)."""
    return {
        "Resources": {"Dashboard": {"Type": "AWS::CloudWatch::Dashboard", "Properties": {
            "DashboardName": {"Fn::Sub": f"{s.stack_name}-${{AWS::Region}}"},
            "DashboardBody": {"Fn::Sub": dashboard_body(s)},
        }}},
        "Outputs": {"DashboardUrl": {
            "Description": "The function's metrics in the CloudWatch console",
            "Value": {"Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home"
                                 "?region=${AWS::Region}#dashboards:name=${Dashboard}"},
        }},
    }

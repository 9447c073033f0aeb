"""The stack's CloudWatch dashboard: its widgets chart the metrics the handler really emits, for this function."""

from __future__ import annotations

import json
import re

import lambda_entry
from cli.deploy.settings import DeploySettings
from cli.deploy.template import template

PRESETS = ("thumb", "web")


def body(settings: DeploySettings) -> dict:
    """The dashboard body as CloudFormation would fill it in (names from the stack's resources)."""
    doc = template(settings, PRESETS)
    text = doc["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = {"Function": "fn-name", "AWS::Region": "eu-west-1", "FailureQueue.QueueName": "failure-q",
             "UploadQueue.QueueName": "upload-q", "UploadDeadLetterQueue.QueueName": "dlq-q"}
    placeholders = set(re.findall(r"\$\{([^}]+)\}", text))
    assert placeholders <= set(names), placeholders - set(names)  # every placeholder is a real resource
    for name in placeholders:
        assert name.split(".")[0] in doc["Resources"] or name.startswith("AWS::")
        text = text.replace("${" + name + "}", names[name])
    return json.loads(text)


def charted(widgets: list[dict]) -> set[tuple[str, str, str, str]]:
    """(namespace, metric, dimension name, dimension value) of every line on the dashboard."""
    return {tuple(m[:4]) for w in widgets for m in w["properties"]["metrics"]}


def emitted() -> tuple[str, list[str], list[list[str]]]:
    """Namespace, metric names and dimension sets of the handler's own EMF line."""
    line = lambda_entry.emf_line({"outcome": "ok", "ms": {"total": 1.0}}, "fn-name")
    directive = line["_aws"]["CloudWatchMetrics"][0]
    return directive["Namespace"], [m["Name"] for m in directive["Metrics"]], directive["Dimensions"]


def test_dashboard_charts_every_emf_metric_the_handler_emits_for_this_function():
    namespace, metrics, dimensions = emitted()
    assert dimensions == [["FunctionName"]]
    lines = charted(body(DeploySettings())["widgets"])
    emf_lines = {line for line in lines if line[0] == namespace}
    # Every metric the handler emits is on the dashboard, under its dimension and this function's name,
    # and nothing on it is a name the handler does not emit (a typo would chart an empty line).
    assert {line[1] for line in emf_lines} == set(metrics)
    assert {(line[2], line[3]) for line in emf_lines} == {("FunctionName", "fn-name")}


def test_dashboard_shows_lambda_figures_against_the_timeout_and_the_queues_of_the_trigger():
    widgets = body(DeploySettings().replace(timeout=120))["widgets"]
    lines = charted(widgets)
    assert {("AWS/Lambda", m, "FunctionName", "fn-name") for m in ("Invocations", "Errors", "Throttles",
                                                                   "Duration")} <= lines
    assert {line[3] for line in lines if line[0] == "AWS/SQS"} == {"failure-q"}
    duration = next(w for w in widgets if w["properties"]["title"].startswith("Duration"))
    assert duration["properties"]["annotations"]["horizontal"] == [{"label": "timeout", "value": 120_000}]
    queued = charted(body(DeploySettings().replace(trigger="queue"))["widgets"])
    assert {line[3] for line in queued if line[0] == "AWS/SQS"} == {"failure-q", "upload-q", "dlq-q"}
    # Widgets do not overlap on the 24-column grid.
    cells = [(w["x"] + dx, w["y"] + dy) for w in widgets for dx in range(w["width"]) for dy in range(w["height"])]
    assert len(cells) == len(set(cells)) and max(x for x, _ in cells) < 24


def test_dashboard_name_is_unique_per_region_and_its_address_is_an_output():
    doc = template(DeploySettings().replace(stack_name="shop-images"), PRESETS)
    assert doc["Resources"]["Dashboard"]["Properties"]["DashboardName"] == {"Fn::Sub": "shop-images-${AWS::Region}"}
    assert "#dashboards:name=${Dashboard}" in doc["Outputs"]["DashboardUrl"]["Value"]["Fn::Sub"]

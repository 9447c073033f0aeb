"""CloudWatch alarms for an unattended stack, and the `status` check that lists those in ALARM.

Every alarm goes to one SNS topic (an e-mail subscription when `[deploy] alarm_email` is set):
function errors, throttles, duration close to the timeout, anything in the failure or
dead-letter queue, and in queue mode the age of the oldest waiting upload.
The topic is not KMS-encrypted: CloudWatch cannot publish to a topic under the AWS-managed SNS
key, and alarm messages carry metric names only.
"""

from __future__ import annotations

from typing import Any

from cli.aws.errors import AWS_ERRORS, aws_error
from cli.deploy.checkov import checkov_skip
from cli.deploy.checks import Check
from cli.deploy.settings import DeploySettings

Doc = dict[str, Any]
PERIOD_S = 300
DURATION_SHARE = 0.8  # alarm when an invocation used 80% of the timeout
QUEUE_AGE_S = 900  # uploads waiting 15 minutes: the function is not keeping up


def _alarm(description: str, namespace: str, metric: str, dimension: tuple[str, Any], statistic: str,
           threshold: float) -> Doc:
    return {"Type": "AWS::CloudWatch::Alarm", "Properties": {
        "AlarmDescription": description,
        "Namespace": namespace, "MetricName": metric,
        "Dimensions": [{"Name": dimension[0], "Value": dimension[1]}],
        "Statistic": statistic, "Period": PERIOD_S, "EvaluationPeriods": 1,
        "Threshold": threshold, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
        "AlarmActions": [{"Ref": "AlarmTopic"}], "OKActions": [{"Ref": "AlarmTopic"}],
    }}


def alarm_resources(s: DeploySettings, presets: tuple[str, ...]) -> Doc:
    """The alarm topic and the alarms (a template resource group)."""
    fn = ("FunctionName", {"Ref": "Function"})
    resources: Doc = {
        "AlarmTopic": {"Type": "AWS::SNS::Topic", "Properties": {"DisplayName": f"imgproc {s.stack_name} alarms"},
                       "Metadata": checkov_skip(CKV_AWS_26=(
                           "CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key; the "
                           "messages are alarm states, no data"))},
        "FunctionErrorsAlarm": _alarm("imgproc: the function failed (an invocation raised or timed out)",
                                      "AWS/Lambda", "Errors", fn, "Sum", 1),
        "FunctionThrottlesAlarm": _alarm("imgproc: invocations were throttled (concurrency limit reached)",
                                         "AWS/Lambda", "Throttles", fn, "Sum", 1),
        "FunctionDurationAlarm": _alarm(f"imgproc: an invocation used {DURATION_SHARE:.0%} of the {s.timeout} s timeout",
                                        "AWS/Lambda", "Duration", fn, "Maximum", DURATION_SHARE * s.timeout * 1000),
        "FailureQueueAlarm": _alarm("imgproc: events failed every retry (see the failure queue)", "AWS/SQS",
                                    "ApproximateNumberOfMessagesVisible",
                                    ("QueueName", {"Fn::GetAtt": ["FailureQueue", "QueueName"]}), "Maximum", 1),
    }
    if s.trigger == "queue":
        upload = ("QueueName", {"Fn::GetAtt": ["UploadQueue", "QueueName"]})
        resources["DeadLetterQueueAlarm"] = _alarm(
            f"imgproc: uploads were received {s.max_receive_count} times without success (see the dead-letter queue)",
            "AWS/SQS", "ApproximateNumberOfMessagesVisible",
            ("QueueName", {"Fn::GetAtt": ["UploadDeadLetterQueue", "QueueName"]}), "Maximum", 1)
        resources["QueueAgeAlarm"] = _alarm(
            f"imgproc: the oldest upload has waited {QUEUE_AGE_S // 60} minutes (the function is not keeping up)",
            "AWS/SQS", "ApproximateAgeOfOldestMessage", upload, "Maximum", QUEUE_AGE_S)
    if s.alarm_email:
        resources["AlarmEmail"] = {"Type": "AWS::SNS::Subscription", "Properties": {
            "TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": s.alarm_email}}
    return {"Resources": resources,
            "Outputs": {"AlarmTopicArn": {"Description": "Alarms are sent here", "Value": {"Ref": "AlarmTopic"}}}}


def check_alarms(target: Any, stack_name: str) -> Check:
    """`status`: the stack's alarms in ALARM state, by name."""
    try:
        pages = target.client("cloudwatch").get_paginator("describe_alarms").paginate(
            AlarmNamePrefix=f"{stack_name}-", StateValue="ALARM")
        firing = [a["AlarmName"] for page in pages for a in page.get("MetricAlarms", [])]
    except AWS_ERRORS as exc:
        return Check("alarms", False, aws_error(exc), "check the CloudWatch permissions of this profile")
    if not firing:
        return Check("alarms", True, "none in ALARM")
    # Reported, not counted as a wiring problem: the wiring may be fine while the function fails.
    return Check("alarms", True, f"in ALARM: {', '.join(sorted(firing))}",
                 "see `imgproc logs --errors` and `imgproc stats`; the alarm topic has the details", notice=True)

"""The role S3 Batch Operations assumes to run `imgproc reprocess --batch-operations` jobs.

A job reads its CSV manifest from the artifacts bucket, invokes the function once per
source (LambdaInvoke) and writes its completion report back to the artifacts bucket, all
under ``reprocess/<stack>/``: the role may do exactly that and nothing else.
"""

from __future__ import annotations

from typing import Any

from cli.deploy.settings import DeploySettings

Doc = dict[str, Any]
BATCH_PRINCIPAL = "batchoperations.s3.amazonaws.com"
ARTIFACTS_BUCKET = "imgproc-artifacts-${AWS::AccountId}-${AWS::Region}"  # cli.deploy.artifacts.artifact_bucket_name


def reprocess_prefix(stack_name: str) -> str:
    """Where manifests and completion reports of this stack's jobs live in the artifacts bucket."""
    return f"reprocess/{stack_name}/"


def batch_operations_resources(s: DeploySettings, presets: tuple[str, ...]) -> Doc:
    """A template resource group: the role and its ARN as an output."""
    objects = {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{ARTIFACTS_BUCKET}/{reprocess_prefix(s.stack_name)}*"}
    bucket = {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{ARTIFACTS_BUCKET}"}
    function = {"Fn::GetAtt": ["Function", "Arn"]}
    statements = [
        {"Sid": "InvokeTheFunction", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
         "Resource": [function, {"Fn::Sub": "${Function.Arn}:*"}]},
        {"Sid": "ReadManifests", "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectVersion"],
         "Resource": [objects]},
        {"Sid": "WriteReports", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [objects]},
        {"Sid": "LocateArtifactsBucket", "Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": [bucket]},
    ]
    return {
        "Resources": {"BatchOperationsRole": {"Type": "AWS::IAM::Role", "Properties": {
            "Description": "imgproc reprocess: S3 Batch Operations invokes the function per source",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": BATCH_PRINCIPAL}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}}]},
            "Policies": [{"PolicyName": "imgproc-batch-operations",
                          "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}],
        }}},
        "Outputs": {"BatchOperationsRoleArn": {
            "Description": "Role for `imgproc reprocess --batch-operations` jobs",
            "Value": {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}}},
    }

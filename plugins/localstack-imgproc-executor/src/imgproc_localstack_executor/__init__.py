"""A LocalStack Lambda runtime executor that runs Python functions as local processes, no Docker.

Select it with ``LAMBDA_RUNTIME_EXECUTOR=imgproc``. See the README next to pyproject.toml.
"""

PLUGIN_NAME = "imgproc"

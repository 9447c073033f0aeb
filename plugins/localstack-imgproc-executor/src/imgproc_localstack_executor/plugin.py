"""The entry point LocalStack finds (group ``localstack.lambda.runtime_executor``, name ``imgproc``).

Kept import-light: LocalStack lists plugins at start-up; the executor (and the runner it uses) is
imported only when LocalStack loads it for the first function.
"""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin

from imgproc_localstack_executor import PLUGIN_NAME


class ImgprocExecutorPlugin(RuntimeExecutorPlugin):
    name = PLUGIN_NAME

    def load(self, *args, **kwargs):
        from imgproc_localstack_executor.executor import LocalProcessExecutor

        return LocalProcessExecutor

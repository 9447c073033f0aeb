#!/bin/bash
# LocalStack runs this once its services are ready (/etc/localstack/init/ready.d/).
# It creates nothing: `imgproc deploy --localstack` is the one way to create the stack, exactly as
# on AWS. It only reports whether the services imgproc uses are available in this LocalStack.
set -euo pipefail

readonly REQUIRED=(s3 lambda cloudformation iam sts logs sqs)
readonly HEALTH_URL="http://localhost:4566/_localstack/health"

health="$(curl -fsS "$HEALTH_URL" 2>/dev/null || true)"
missing=()
for service in "${REQUIRED[@]}"; do
    if ! grep -Eq "\"${service}\": *\"(available|running)\"" <<<"$health"; then
        missing+=("$service")
    fi
done

if ((${#missing[@]} > 0)); then
    echo "imgproc: LocalStack is up but these services are not available: ${missing[*]}" >&2
    echo "imgproc: check SERVICES and LOCALSTACK_AUTH_TOKEN in localstack/docker-compose.yml" >&2
else
    echo "imgproc: LocalStack is ready. Next: imgproc deploy --localstack"
fi

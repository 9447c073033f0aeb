"""Every option more than one command takes, declared once: same name, help, default and env.

Help text is shown as written (the app renders no rich markup in help), so
`[deploy].stack_name` keeps its brackets.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cli.aws.target import LOCALSTACK_URL

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Presets file. Default: ./imgproc.toml if present, else the built-in presets.",
        show_default=False, dir_okay=False, envvar="IMGPROC_CONFIG",
    ),
]
StackOpt = Annotated[
    str | None,
    typer.Option("--stack", help="Stack name. Default: [deploy].stack_name in imgproc.toml, else 'imgproc'.",
                 show_default=False, envvar="IMGPROC_STACK"),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="Send AWS calls here (imgproc local up, LocalStack). "
                 "Default: AWS_ENDPOINT_URL, else [aws].endpoint_url, else real AWS.", show_default=False),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", help="AWS profile. Default: AWS_PROFILE, else [aws].profile.", show_default=False),
]
RegionOpt = Annotated[
    str | None,
    typer.Option("--region", help="AWS region, e.g. eu-west-1. Default: AWS_REGION, AWS_DEFAULT_REGION, "
                 "[aws].region, else the profile's region.", show_default=False),
]
LocalstackOpt = Annotated[
    bool, typer.Option("--localstack", help=f"Shortcut for --endpoint-url {LOCALSTACK_URL}.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (scripts and CI).")]


class Arch(str, Enum):
    x86_64 = "x86_64"
    arm64 = "arm64"


ArchOpt = Annotated[
    Arch | None,
    typer.Option("--arch", help="Lambda architecture. Default: [deploy].architecture, else x86_64.",
                 show_default=False),
]

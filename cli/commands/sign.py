"""`imgproc sign`: a signed, expiring URL for the retrieval API (`imgproc deploy --api`).

The key comes from the SSM SecureString parameter the API function reads
(`{"key-id": "secret", ...}`, first key signs), or offline from `--secret` /
IMGPROC_SIGNING_SECRET. The URL's base is `--base-url`, or the `ApiUrl` output
of `--stack` (default: the deployed stack, when not signing offline); without
one the path and query are printed, ready to append.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from cli.aws.target import AwsTarget
from cli.commands.options import ConfigOpt, EndpointOpt, LocalstackOpt, ProfileOpt, RegionOpt, StackOpt
from cli.console import err_console, load_config
from cli.deploy.api_keys import DEFAULT_STACK, SignRequest, build_url, read_keyring, stack_outputs
from cli.deploy.template_api import ApiSettings
from cli.errors import UsageError
from core.errors import ImgprocError


def register(app: typer.Typer) -> None:
    @app.command("sign")
    def sign(
        path: Annotated[str, typer.Argument(
            help="PRESET/KEY or /images/PRESET/KEY, with the key exactly as stored in S3 (spaces, unicode ok).",
            show_default=False)],
        expires: Annotated[str, typer.Option("--expires", "-e", help="Validity: 90s, 15m, 1h, 7d (max 366d).")] = "1h",
        key_id: Annotated[str | None, typer.Option("--key-id", help="Sign with this key (default: the first).",
                                                   show_default=False)] = None,
        base_url: Annotated[str | None, typer.Option("--base-url", help="API base URL, e.g. https://ID.execute-api."
                                                     "REGION.amazonaws.com/prod.", show_default=False)] = None,
        stack: StackOpt = None,
        param: Annotated[str | None, typer.Option("--param", help="SSM parameter with the keys. Default: the "
                                                  "stack's SigningKeysParam, else /imgproc/signing-keys.",
                                                  show_default=False)] = None,
        secret: Annotated[str | None, typer.Option("--secret", envvar="IMGPROC_SIGNING_SECRET",
                                                   help="Offline: a bare secret or a JSON key ring; no AWS call.",
                                                   show_default=False)] = None,
        config: ConfigOpt = None,
        endpoint_url: EndpointOpt = None,
        profile: ProfileOpt = None,
        region: RegionOpt = None,
        localstack: LocalstackOpt = False,
    ) -> None:
        """Print a signed, expiring URL for GET /images/PRESET/KEY.

        Example: imgproc sign "thumb/uploads/cat 1.jpg" --expires 1h --stack imgproc
        """
        cfg = load_config(config)
        try:
            api = ApiSettings.from_table(cfg.extra.get("api"), cfg.source)
            req = SignRequest.create(path, expires, key_id, base_url, stack, param, secret, api, time.time())
        except ImgprocError as exc:
            raise UsageError(str(exc)) from None
        target = AwsTarget.resolve(endpoint_url, profile, region, localstack, defaults=cfg.extra.get("aws"))
        # Without --stack/--base-url/--secret the deployed stack ([deploy].stack_name or "imgproc") is tried.
        stack_name = req.stack or str((cfg.extra.get("deploy") or {}).get("stack_name") or DEFAULT_STACK)
        outputs: dict[str, str] = {}
        if req.stack and not req.base_url:
            outputs = stack_outputs(target, req.stack)
        elif not (req.base_url or req.secret):
            try:
                outputs = stack_outputs(target, stack_name)
            except ImgprocError:
                pass  # not deployed (yet): print a relative URL
        ring = read_keyring(req, target, outputs, stack_name)
        url = build_url(req, ring, outputs)
        Console(soft_wrap=True, highlight=False).print(url, markup=False)
        until = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(req.expires))
        err_console().print(f"valid until {until}" + ("" if url.startswith("http") else
                            " (relative: add --base-url or --stack for a full URL)"), markup=False)



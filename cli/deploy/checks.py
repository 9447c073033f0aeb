"""What `imgproc status` works on: the deployed stack (`Deployed`), its template's values
resolved (`Resolver`), and one check's result (`Check`). Shared by the wiring, trigger and
alarm checks without importing one another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cli.errors import DeployError


class Resolver:
    """Evaluates Ref / Fn::GetAtt / Fn::Sub / Fn::Join of the deployed template."""

    def __init__(self, stack: dict, resources: dict[str, str], arns: dict[str, str]):
        _, partition, _, region, account, _ = stack["StackId"].split(":", 5)
        self.refs = {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account,
                     "AWS::StackName": stack["StackName"], **resources}
        self.refs.update({p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []})
        self.arns = arns

    def att(self, name: str, attr: str) -> str:
        if attr == "Arn" and name in self.arns:
            return self.arns[name]
        raise DeployError(f"cannot resolve {name}.{attr} of the deployed template")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self.refs[value["Ref"]]
        if "Fn::GetAtt" in value:
            name, attr = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else value["Fn::GetAtt"].split(".")
            return self.att(name, attr)
        if "Fn::Sub" in value:
            import re

            def repl(m: re.Match) -> str:
                token = m.group(1)
                if "." in token:
                    return self.att(*token.split(".", 1))
                return self.refs[token]

            return re.sub(r"\$\{([^}!]+)\}", repl, value["Fn::Sub"])
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self(p)) for p in parts)
        return {k: self(v) for k, v in value.items()}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    repair: Callable[[], None] | None = None
    #: Shown to the user but not a wiring problem (an alarm firing): no repair, no exit 1.
    notice: bool = False


@dataclass
class Deployed:
    """Everything status needs to know about one deployed stack."""

    stack: dict
    outputs: dict[str, str]
    function: dict = field(default_factory=dict)
    template: dict = field(default_factory=dict)
    resolve: Resolver | None = None

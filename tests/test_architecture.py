"""The layering, checked on the import graph (every import, module-level and lazy).

- core/ is the pure engine: no boto3/botocore, typer, click or rich, no cli or handlers,
  no environment reads, no print().
- the handlers (lambda_entry, lambda_api) import core only: never cli, typer or rich.
- only the command layer (cli/app.py, cli/commands/) imports Typer or click.
- the CLI's libraries (cli/aws, cli/deploy, cli/logs, cli/emulator, ...) never import commands.
- no import cycles between modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOREIGN_TO_CORE = ("boto3", "botocore", "typer", "click", "rich", "cli", "lambda_entry", "lambda_api")
UI_LIBRARIES = ("typer", "click")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files = [*ROOT.glob("core/**/*.py"), *ROOT.glob("cli/**/*.py"), ROOT / "lambda_entry.py", ROOT / "lambda_api.py"]
    return {module_name(p): p for p in files}


MODULES = project_modules()


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute names imported by the file (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            # `from cli.deploy import stack` imports the module cli.deploy.stack
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES)
    return found


def is_under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == r or name.startswith(r + ".") for r in roots)


def is_command_layer(name: str) -> bool:
    return name == "cli.app" or is_under(name, ("cli.commands",))


@pytest.mark.parametrize("name", sorted(n for n in MODULES if is_under(n, ("core",))))
def test_core_is_pure(name):
    path = MODULES[name]
    bad = sorted(i for i in imports_of(path) if is_under(i, FOREIGN_TO_CORE))
    assert not bad, f"{name} imports {bad}"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and getattr(node.value, "id", "") == "os":
            pytest.fail(f"{name}:{node.lineno} reads the environment (parse settings at the edge)")
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "print":
            pytest.fail(f"{name}:{node.lineno} prints (core returns values; the edges render)")


@pytest.mark.parametrize("name", ["lambda_entry", "lambda_api"])
def test_handlers_import_only_core(name):
    bad = sorted(i for i in imports_of(MODULES[name]) if is_under(i, ("cli", "typer", "click", "rich")))
    assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if is_under(n, ("cli",)) and not is_command_layer(n)))
def test_libraries_import_no_ui_framework_and_no_command(name):
    imported = imports_of(MODULES[name])
    ui = sorted(i for i in imported if is_under(i, UI_LIBRARIES))
    commands = sorted(i for i in imported if is_command_layer(i))
    assert not ui, f"{name} imports {ui}: only cli/app.py and cli/commands/ may use Typer"
    assert not commands, f"{name} imports the command layer {commands}"


def test_command_modules_do_not_import_each_other():
    for name in (n for n in MODULES if is_under(n, ("cli.commands",))):
        others = sorted(i for i in imports_of(MODULES[name])
                        if is_under(i, ("cli.commands",)) and i not in (name, "cli.commands", "cli.commands.options"))
        assert not others, f"{name} imports {others}: shared code belongs in a library subpackage"


def import_cycles() -> list[list[str]]:
    """Cycles in the graph of imports between project modules (every import, lazy ones too)."""
    graph = {n: sorted(i for i in imports_of(p) if i in MODULES and i != n) for n, p in MODULES.items()}
    cycles, state, stack = [], dict.fromkeys(graph, 0), []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state[nxt] == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if state[node] == 0:
            visit(node)
    return cycles


def test_there_are_no_import_cycles():
    assert import_cycles() == []


def test_the_graph_check_sees_a_cycle_when_there_is_one(tmp_path, monkeypatch):
    # The checker itself must be able to fail: two modules that import each other.
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("from a import x\n")
    fake = {"a": tmp_path / "a.py", "b": tmp_path / "b.py"}
    monkeypatch.setitem(globals(), "MODULES", fake)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert import_cycles() == [["a", "b", "a"]]

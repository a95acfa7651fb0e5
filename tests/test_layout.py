"""The code's shape, held: imports point one way (no cycle, counting the imports inside
functions and under TYPE_CHECKING), and no function runs past 60 lines without a reason."""

from __future__ import annotations

import ast
from pathlib import Path

import neuronatlas

SRC = Path(neuronatlas.__file__).parent
#: functions allowed past 60 lines, each with its reason
LONG = {
    ("readability.py", "measure"): "one method's every measure, in the order of the "
                                   "benchmark's table; split, each piece would need them all",
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = ("neuronatlas", *path.relative_to(SRC).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every neuronatlas module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            mod = f"{base}.{node.module}" if node.module else base
            found |= {f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod
                      for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return {m for m in found if m in modules and m != name}


def test_no_import_cycle():
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    done, path, cycles = set(), [], []

    def visit(m):
        if m in path:
            cycles.append([*path[path.index(m):], m])
            return
        if m in done:
            return
        path.append(m)
        for n in sorted(graph[m]):
            visit(n)
        path.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    assert cycles == []


def test_no_function_over_60_lines_without_a_reason():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                key = (str(path.relative_to(SRC)), node.name)
                if node.end_lineno - node.lineno + 1 > 60 and key not in LONG:
                    long.append((*key, node.end_lineno - node.lineno + 1))
    assert long == []

"""The layout reads as the data flow: one package per stage, each importing only the stages
before it, and no import cycle anywhere in ``harness/`` (type-only imports included).

Stages, first to last (docs/architecture.md): the foundation (``errors``, ``util``,
``signals``) → ``scenario`` → ``artifacts`` (the contract runs write and analysis reads) → the
run's parts (``stack``, ``traffic``, ``faults``, ``meter``, ``profiling``, ``otel``,
``instrument``, ``images``) → ``run`` → ``cost`` (the ledger) → ``report`` → ``compare`` →
``gate`` → ``cli``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "harness"
STAGES: tuple[tuple[str, ...], ...] = (
    ("errors", "util", "signals"),
    ("scenario",),
    ("artifacts",),
    ("stack", "traffic", "faults", "meter", "profiling", "otel", "instrument", "images"),
    ("run",),
    ("cost",),
    ("report",),
    ("compare",),
    ("gate",),
    ("cli",),
)
RANK = {name: rank for rank, names in enumerate(STAGES) for name in names}
MODULES = {".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
           for p in ROOT.rglob("*.py")}
MAX_LINES = 400


def modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imports(path: Path) -> set[str]:
    """Every ``harness.*`` module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "harness" or node.module.startswith("harness."):
                # ``from pkg import mod`` imports the module pkg.mod (else a name of pkg)
                subs = {f"{node.module}.{a.name}" for a in node.names}
                found |= {m for m in subs if m in MODULES} or {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("harness.")}
    return found


def stage(module: str) -> str:
    return module.split(".")[1]


def test_every_module_belongs_to_a_stage() -> None:
    loose = [m for m, _ in modules() if m != "harness" and stage(m) not in RANK]
    assert not loose, f"modules outside every stage: {loose}"


def test_a_stage_imports_only_the_stages_before_it() -> None:
    wrong = []
    for module, path in modules():
        if module == "harness":
            continue
        for target in imports(path):
            if RANK[stage(target)] > RANK[stage(module)]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports from a later stage:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    known = {m for m, _ in modules()}
    graph = {m: {t for t in imports(p) if t in known and t != m} for m, p in modules()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_is_over_the_size_limit() -> None:
    big = {m: n for m, p in modules()
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_every_package_says_what_it_takes_and_returns() -> None:
    bare = [m for m, p in modules() if p.name == "__init__.py" and m != "harness"
            and not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))]
    assert not bare, f"packages without a docstring: {bare}"

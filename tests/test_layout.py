"""The package layout: data flows one way, and no module imports in a circle.

Every import counts: at the top of a module, inside a function, or under
``TYPE_CHECKING`` (a type shared across layers lives in the lower one). The
order below is the one docs/architecture.md draws; a package may import only
itself and the packages before it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "graylink"

# Lowest first. "" is graylink/ itself: the values every layer shares.
LAYERS = [
    "",
    "system",
    "config",
    "store",
    "rclone",
    "source",
    "links",
    "drive",
    "triggers",
    "notify",
    "reconcile",
    "alerts",
    "report",
    "web",
    "service",
    "cli",
]
ROOT_MODULES = {"__init__", "__main__", "errors", "checks", "story", "words", "i18n"}
ENTRY_POINTS = {"graylink.__main__"}  # python -m graylink: the command line


def _modules(root: Path = PACKAGE) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = ["graylink", *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _owner(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The graylink modules that ``module`` imports, wherever in the file."""
    base = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                anchor = base
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                target = f"{anchor}.{target}" if target else anchor
            # "from graylink.x import y" names module graylink.x.y when y is one
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
        for name in names:
            owner = _owner(name, modules) if name.startswith("graylink") else None
            if owner and owner != module:
                out.add(owner)
    return out


def graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if module in ENTRY_POINTS:
        return "cli"
    if (len(parts) == 2 and parts[1] in ROOT_MODULES) or module == "graylink":
        return ""
    return parts[1]


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    bad = []
    for module, targets in edges.items():
        for target in targets:
            if target == "graylink":
                continue  # the package face (__version__)
            if rank[layer_of(target)] > rank[layer_of(module)]:
                bad.append(f"{module} -> {target}")
    return sorted(bad)


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in edges:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_every_package_has_a_layer() -> None:
    packages = {layer_of(m) for m in graph()}
    assert packages <= set(LAYERS), f"packages without a place in LAYERS: {sorted(packages - set(LAYERS))}"


def test_only_shared_values_sit_flat_in_graylink() -> None:
    flat = {p.stem for p in PACKAGE.glob("*.py")}
    assert flat <= ROOT_MODULES, f"modules flat in graylink/: {sorted(flat - ROOT_MODULES)}"


def test_no_import_runs_against_the_flow() -> None:
    assert upward_imports(graph()) == []


def test_no_import_circle() -> None:
    assert circles(graph()) == []


def test_every_package_says_what_it_holds_and_may_import() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text("utf-8"))) or ""
        assert doc, f"{init.parent.name}/__init__.py has no docstring"
        assert "import" in doc, f"{init.parent.name}/__init__.py does not say which packages it may import"


@pytest.mark.parametrize(
    ("files", "expect_upward", "expect_circle"),
    [
        ({"store/a.py": "from graylink.cli import x\n"}, ["graylink.store.a -> graylink.cli"], []),
        ({"cli/a.py": "from graylink.store import b\n", "store/b.py": ""}, [], []),
        (
            {
                "store/a.py": "from graylink.store import b\n",
                "store/b.py": "def f():\n    from graylink.store.a import g\n",
            },
            [],
            [["graylink.store.a", "graylink.store.b"]],
        ),
        ({"store/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from graylink.web import x\n"},
         ["graylink.store.a -> graylink.web"], []),
    ],
)
def test_the_checks_find_what_they_look_for(
    tmp_path: Path, files: dict[str, str], expect_upward: list[str], expect_circle: list[list[str]]
) -> None:
    root = tmp_path / "graylink"
    for pkg in ("store", "cli", "web"):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    for rel, text in files.items():
        (root / rel).write_text(text)
    edges = graph(root)
    assert upward_imports(edges) == expect_upward
    assert circles(edges) == expect_circle

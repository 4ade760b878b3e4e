"""The code's structure, read from its imports (ast, nothing imported): the package layers hold, and the run
folder's layout is named in one module only."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# lower layers first: a package may import only from its own layer or below
LAYERS = [
    {"core.dataset", "core.npyio", "core.csvsafe"},
    {"core.retrieval"},
    {"core.workspace"},
    {"core.ingest", "core.tuning"},
    {"core.generate"},
    {"core.insight"},
]
RUN_FOLDER_NAMES = {"results.json", "per_query.csv", "rankings.json", "rankings_deep.npz", "progress.jsonl",
                    "error.json", "status.json", "ending.json"}


def _sources() -> list[Path]:
    return sorted(list((ROOT / "core").rglob("*.py")) + list((ROOT / "ui").glob("*.py"))
                  + list((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"])


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "core" or len(parts) == 1:
        return parts[0]
    return ".".join(parts[:2])


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _project_imports(path: Path) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("core", "ui"):
            out.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] in ("core", "ui")]
    return out


def _package_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in _sources():
        if path.parts[-2] != "core" and "core" not in path.relative_to(ROOT).parts[:1]:
            continue
        src = _package(_module_of(path))
        for module, _ in _project_imports(path):
            dst = _package(module)
            if dst != src:
                edges.setdefault(src, set()).add(dst)
    return edges


def test_no_import_cycle_between_core_packages():
    edges = _package_edges()
    seen: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(edges.get(node, ())):
            assert seen.get(nxt) != 1, "import cycle: " + " -> ".join(path + [node, nxt])
            if nxt not in seen:
                visit(nxt, path + [node])
        seen[node] = 2

    for node in sorted(edges):
        if node not in seen:
            visit(node, [])


def test_core_packages_import_only_their_layer_or_below():
    layer = {pkg: i for i, pkgs in enumerate(LAYERS) for pkg in pkgs}
    wrong = []
    for path in (ROOT / "core").rglob("*.py"):
        src = _package(_module_of(path))
        if src not in layer:
            continue  # core's entry points (cli, execute, console, sample) sit above every package
        for module, line in _project_imports(path):
            dst = _package(module)
            if dst in layer and layer[dst] > layer[src]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({src}) imports {module} (a higher layer)")
    assert not wrong, "\n".join(wrong)


def test_only_the_run_folder_module_names_the_run_folder_files():
    owner = ROOT / "core" / "workspace" / "run_folder.py"
    found = []
    for path in _sources():
        if path == owner:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in RUN_FOLDER_NAMES:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, "read and write these through core.workspace.run_folder:\n" + "\n".join(found)


def test_tests_mirror_the_core_packages():
    """A module's tests are found by its path: tests/<package>/ for each package of core (pages/ and e2e/ hold
    the app's page and browser tests; core's top-level modules are tested in tests/ itself)."""
    packages = {p.name for p in (ROOT / "core").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    folders = {p.name for p in (ROOT / "tests").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert folders - {"pages", "e2e"} == packages

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


# Core files no test needs to import, each with why; every other module under core/ is imported by a test file.
NOT_IMPORTED_BY_TESTS = {
    "core/__main__.py": "`python -m core`: importing it runs the CLI; tests run it as a subprocess (tests/test_cli.py) "
                        "and call core.cli.main",
    "core/__init__.py": "the package's docstring and two re-exports of core.dataset (tested through core.dataset)",
    "core/generate/__init__.py": "a docstring only (each module of the package is imported by its tests)",
    "core/ingest/__init__.py": "empty: a package marker",
    "core/insight/__init__.py": "empty: a package marker",
    "core/retrieval/__init__.py": "empty: a package marker",
    "core/tuning/__init__.py": "empty: a package marker",
    "core/workspace/__init__.py": "a docstring only (each module of the package is imported by its tests)",
}


def _tested_modules() -> set[str]:
    """Every module a test file imports: ``import a.b``, ``from a.b import c`` (a.b, and a.b.c when c is a module)."""
    found: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
    return found


def test_every_core_module_is_imported_by_a_test_file():
    """A module no test imports is tested, at best, by accident (through another module or a subprocess)."""
    tested = _tested_modules()
    missing = []
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in NOT_IMPORTED_BY_TESTS and _module_of(path) not in tested:
            missing.append(f"{rel} ({_module_of(path)})")
    assert not missing, ("no test file imports these modules: add tests/<package>/test_<module>.py (core's top-level "
                         "modules: tests/test_<module>.py) that imports each and checks what it does:\n"
                         + "\n".join(missing))


def test_the_untested_allow_list_holds_only_the_entry_point_and_package_markers_without_code():
    for rel, why in NOT_IMPORTED_BY_TESTS.items():
        path = ROOT / rel
        assert path.exists(), f"{rel} is gone: drop it from NOT_IMPORTED_BY_TESTS"
        assert why, rel
        assert path.name in ("__main__.py", "__init__.py"), f"{rel}: only __main__ and __init__ files may be listed"
        if path.name == "__init__.py":  # a package's __init__ with code of its own needs tests like any module
            defs = [n.name for n in ast.parse(path.read_text(encoding="utf-8")).body
                    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
            assert not defs, f"{rel} defines {defs}: test it and drop it from NOT_IMPORTED_BY_TESTS"

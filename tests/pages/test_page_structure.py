"""Where a page's code lives (``ui/__init__.py``): pages numbered in the sidebar's order with URLs that do not
change, page scripts without functions of their own, and ui modules in layers with no import circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from streamlit.source_util import page_icon_and_name

ROOT = Path(__file__).resolve().parents[2]
# The URL path of each page, in the sidebar's order: deep links and bookmarks use these, so they never change.
URL_PATHS = ["Data", "Questions", "Train", "Embedding_map", "Compare", "Runs"]
# ui modules by layer: each may import only modules of a lower layer.
LAYERS = {"resources": 0, "state": 1, "widgets": 2}
PAGE_LAYER = 3  # ui/<page>.py: data, questions, train, embedding_map, compare


def navigation_pages() -> list[str]:
    """The page files of app.py's st.navigation, in the order the sidebar shows them."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page"
            and node.args and isinstance(node.args[0], ast.Constant)]


def ui_imports(path: Path) -> list[tuple[str, bool]]:
    """(ui module imported, whether the import sits inside a function) for each import of a ui module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    local = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
             for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "ui":
            out += [(a.name, id(node) in local) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ui."):
            out.append((node.module.split(".")[1], id(node) in local))
        elif isinstance(node, ast.Import):
            out += [(a.name.split(".")[1], id(node) in local) for a in node.names if a.name.startswith("ui.")]
    return out


def test_pages_are_numbered_one_to_six_in_the_sidebars_order_and_keep_their_urls():
    pages = navigation_pages()
    assert len(pages) == 6
    numbers = [int(re.match(r"pages/(\d+)_", p).group(1)) for p in pages]
    assert numbers == [1, 2, 3, 4, 5, 6]
    on_disk = sorted(p.name for p in (ROOT / "pages").glob("*.py"))
    assert sorted(p.removeprefix("pages/") for p in pages) == on_disk  # every page file is in the navigation
    assert len({name.split("_", 1)[0] for name in on_disk}) == len(on_disk)  # no number twice
    # st.Page infers the URL path from the file name without its number: the deep links stay the same
    assert [page_icon_and_name(Path(p))[1] for p in pages] == URL_PATHS


def test_page_scripts_define_no_functions():
    """A page draws its sections in order; its panels and forms live in ui/<name>.py."""
    for path in sorted((ROOT / "pages").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        assert not defs, f"{path.name} defines {defs}: move them to its ui module"


def test_ui_modules_form_layers_with_no_import_circle():
    modules = {p.stem: p for p in (ROOT / "ui").glob("*.py") if p.stem != "__init__"}
    graph = {name: {m for m, _ in ui_imports(path)} for name, path in modules.items()}
    assert set().union(*graph.values()) <= set(modules)  # imports name real modules (the parser reads them)
    assert graph["resources"] == set(), f"ui.resources imports {graph['resources']}"  # the lowest layer
    assert graph["state"] == {"resources"}, f"ui.state imports {graph['state']}"

    # no circle, whatever the layers say: a depth-first search over the import graph
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import circle: {' -> '.join([*path, name])}"
        if name in done:
            return
        for dep in graph[name]:
            visit(dep, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])
    # each import goes down a layer: page modules never import one another
    for name, deps in graph.items():
        for dep in deps:
            assert LAYERS.get(dep, PAGE_LAYER) < LAYERS.get(name, PAGE_LAYER), f"ui.{name} imports ui.{dep}"


def test_project_imports_sit_at_module_top():
    """Function-local imports are for heavy libraries; the core modules that import plotly (so that it loads in
    a background thread, not at start-up) are the only project modules imported inside a function."""
    allowed = {"core.insight.plots", "core.insight.map_figure"}
    for path in [ROOT / "app.py", *sorted((ROOT / "ui").glob("*.py")), *sorted((ROOT / "pages").glob("*.py"))]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for f in ast.walk(tree):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(f):
                names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                         else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                for name in names:
                    if name.split(".")[0] in ("core", "ui"):
                        assert name in allowed, f"{path.name}:{node.lineno} imports {name} inside {f.name}()"

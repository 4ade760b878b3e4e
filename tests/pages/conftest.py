"""Page tests with Streamlit's AppTest: each module gets its own workspace ($ETL_WORKSPACE).

The app's cached resources (store, job runner, run views) are keyed by the workspace root, so
switching workspaces between modules never mixes their data.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
FINISHED = ("done", "failed", "cancelled", "interrupted")


def open_app(page: str | None = None, timeout: float = 90):
    """AppTest of app.py (sidebar and sample dataset included), optionally switched to ``pages/<page>``."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page:
        at.switch_page(f"pages/{page}").run()
    return at


def texts(at) -> str:
    """Every markdown, caption, info, warning, error and success text of the page, joined, with the
    Markdown escapes of user text (``ui.plain``) removed."""
    parts = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader", "title"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def wait_for_run(store, run_id: str, timeout: float = 300) -> str:
    """Wait for the app's job of ``run_id`` to end (its snapshot, not a guess); returns the status."""
    from ui.resources import get_runner

    job = get_runner().get(run_id)
    assert job is not None, f"no job for run {run_id} in this process"
    if not job.wait(timeout):
        raise AssertionError(f"run {run_id} still {job.snapshot().status} after {timeout} s")
    return job.snapshot().status


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A fresh workspace for the module, set as $ETL_WORKSPACE while its tests run."""
    ws = tmp_path_factory.mktemp("pages-ws")
    mp = pytest.MonkeyPatch()
    mp.setenv("ETL_WORKSPACE", str(ws))
    yield ws
    mp.undo()


@pytest.fixture(scope="module")
def tiny_dataset(workspace):
    """(store, dataset id) of a 30-question synthetic dataset (24 train, 6 eval against all passages)."""
    from core.dataset import QADataset
    from core.workspace.store import Store

    ds = make_tiny_dataset(30)
    q = ds.query_ids
    train = ds.subset(q[:24], [f"d{i}" for i in range(24)])
    ev = QADataset({k: ds.queries[k] for k in q[24:]}, ds.corpus, {k: ds.relevant_docs[k] for k in q[24:]})
    store = Store(workspace)
    return store, store.save_dataset("tiny", train, ev)


def make_finished_run(store, ds_id: str, name: str = "tiny adapter") -> str:
    """A finished adapter run on ``ds_id``, made by core directly (as a job would)."""
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import Job

    run_id = create_run(store, ds_id, RunSpec.for_method("adapter", epochs=5), name=name)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error
    return run_id


@pytest.fixture(scope="module")
def finished_run(tiny_dataset):
    """(store, run id) of a finished adapter run shared by a module's read-only tests."""
    store, ds_id = tiny_dataset
    return store, make_finished_run(store, ds_id)


def save_cheap_projection(store, run_id: str) -> None:
    """Write the default-settings map of a run without UMAP (first two vector dimensions), so page
    tests exercise loading and drawing without UMAP's ~45 s JIT warm-up on 2 cores."""
    import pandas as pd

    from core.insight.explore import open_run
    from core.insight.projection import Projection, ProjectionParams

    view = open_run(store, run_id)
    frames = []
    for space, q, d in (("base", view.base_q, view.base_d), ("tuned", view.tuned_q, view.tuned_d)):
        frames.append(
            pd.DataFrame(
                {
                    "space": space,
                    "kind": ["query"] * len(q) + ["passage"] * len(d),
                    "id": view.query_ids + view.passage_ids,
                    "x": list(q[:, 0]) + list(d[:, 0]),
                    "y": list(q[:, 1]) + list(d[:, 1]),
                }
            )
        )
    params = ProjectionParams()
    Projection(pd.concat(frames, ignore_index=True), params).save(
        store.run_dir(run_id) / f"projection-{params.key()}.npz"
    )
    save_cheap_clouds(view, params)


def save_cheap_clouds(view, params=None) -> None:
    """Write a run's "questions vs passages" pictures without UMAP: the first two dimensions of each model's
    vectors (as ``explore.clouds_projection`` would save them), for the same reason as ``save_cheap_projection``."""
    import pandas as pd

    from core.insight.explore import CLOUDS_FILE
    from core.insight.projection import Projection, ProjectionParams

    params = params or ProjectionParams()
    frames = [pd.DataFrame({"space": space, "kind": ["query"] * len(q) + ["passage"] * len(d),
                            "id": view.query_ids + view.passage_ids,
                            "x": list(q[:, 0]) + list(d[:, 0]), "y": list(q[:, 1]) + list(d[:, 1])})
              for space, q, d in (("base", view.base_q, view.base_d), ("tuned", view.tuned_q, view.tuned_d))]
    Projection(pd.concat(frames, ignore_index=True), params).save(view.run_dir / CLOUDS_FILE.format(key=params.key()))

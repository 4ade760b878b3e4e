"""Shared fixtures: offline mode, a throwaway workspace, the default model loaded once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _no_job_left_running(_workspace):
    """At the session's end, cancel and wait for any run a test launched in a thread and left going (a page
    test's launch): a daemon thread still inside torch when the interpreter exits aborts the process
    ("terminate called without an active exception", exit 134) after every test passed."""
    yield
    import gc

    from core.workspace.jobs import Job

    # type(), not isinstance(): gc also holds weak proxies, and isinstance() on a dead one raises ReferenceError
    for job in [o for o in gc.get_objects() if issubclass(type(o), Job)]:
        if job.thread is not None and job.thread.is_alive():
            job.cancel()
            job.wait(300)


@pytest.fixture(autouse=True, scope="session")
def _workspace(tmp_path_factory):
    """Every test session writes to its own workspace, never the user's."""
    ws = tmp_path_factory.mktemp("workspace")
    os.environ["ETL_WORKSPACE"] = str(ws)
    yield ws


@pytest.fixture(scope="session")
def model():
    from core.retrieval.embedding import load_model

    return load_model(device="cpu")


@pytest.fixture(scope="session")
def eval_subset():
    """60 evaluation questions of the bundled sample (sample_data/, always present: no skip) against
    their passages + 40 distractors."""
    from core.dataset import QADataset
    from core.sample import load_sample

    _, ev, _ = load_sample()
    qids = ev.query_ids[:60]
    docs = list(dict.fromkeys(d for q in qids for d in ev.relevant_docs[q]))
    extra = [d for d in ev.corpus if d not in docs][:40]
    return QADataset({q: ev.queries[q] for q in qids}, {d: ev.corpus[d] for d in docs + extra},
                     {q: list(ev.relevant_docs[q]) for q in qids})


TOPICS = ["pump", "valve", "hose", "filter", "cylinder", "accumulator", "seal", "cooler", "motor", "reservoir"]
ISSUES = ["leaks oil", "runs hot", "makes noise", "loses pressure", "vibrates", "sticks"]


def make_tiny_dataset(n: int = 30, tag: str = ""):
    """A small synthetic QA dataset (n questions, n passages) for smoke runs."""
    from core.dataset import QADataset

    queries, corpus, rel = {}, {}, {}
    for i in range(n):
        t, s = TOPICS[i % len(TOPICS)], ISSUES[(i // len(TOPICS)) % len(ISSUES)]
        queries[f"q{i}{tag}"] = f"why the {t} {s} case {i}"
        corpus[f"d{i}{tag}"] = f"When the {t} {s}, inspect item {i}: check mounting, fluid level and fittings."
        rel[f"q{i}{tag}"] = [f"d{i}{tag}"]
    return QADataset(queries, corpus, rel)


@pytest.fixture
def tiny_store(tmp_path):
    """A store holding one tiny dataset (train 24 questions, eval 6 against all passages)."""
    from core.dataset import QADataset
    from core.workspace.store import Store

    ds = make_tiny_dataset(30)
    q = ds.query_ids
    train = ds.subset(q[:24], [f"d{i}" for i in range(24)])
    ev = QADataset({k: ds.queries[k] for k in q[24:]}, ds.corpus, {k: ds.relevant_docs[k] for k in q[24:]})
    store = Store(tmp_path / "ws")
    ds_id = store.save_dataset("tiny", train, ev)
    return store, ds_id

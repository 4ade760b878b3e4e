"""Shared fixtures: offline mode, a throwaway workspace, the default model loaded once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parent.parent
SEC_DIR = ROOT.parent / "shared" / "data" / "sec-10k-qa"


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
def sec_val() -> dict:
    path = SEC_DIR / "val_dataset.json"
    if not path.exists():
        pytest.skip(f"benchmark data not found at {path}")
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def sec_subset(sec_val):
    """60 questions of the sec-10k val set against their passages + 40 distractors."""
    from core.dataset import QADataset

    qids = list(sec_val["queries"])[::13][:60]
    docs = []
    for q in qids:
        docs += [d for d in sec_val["relevant_docs"][q] if d not in docs]
    extra = [d for d in sec_val["corpus"] if d not in docs][:40]
    corpus = {d: sec_val["corpus"][d] for d in docs + extra}
    return QADataset(
        {q: sec_val["queries"][q] for q in qids}, corpus, {q: list(sec_val["relevant_docs"][q]) for q in qids}
    )


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
    from core.store import Store

    ds = make_tiny_dataset(30)
    q = ds.query_ids
    train = ds.subset(q[:24], [f"d{i}" for i in range(24)])
    ev = QADataset({k: ds.queries[k] for k in q[24:]}, ds.corpus, {k: ds.relevant_docs[k] for k in q[24:]})
    store = Store(tmp_path / "ws")
    ds_id = store.save_dataset("tiny", train, ev)
    return store, ds_id

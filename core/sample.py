"""The sample dataset shipped in sample_data/: loaded into the workspace on first start."""

from __future__ import annotations

import csv
from pathlib import Path

from core.dataset import QADataset, join_train_eval
from core.ingest.qafiles import load_qa_file

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
SAMPLE_NAME = "Hydraulics maintenance (sample)"


def _with_sources(ds: QADataset, csv_path: Path) -> QADataset:
    """Attach each passage's source document from the CSV's ``source`` column."""
    by_text: dict[str, str] = {}
    with open(csv_path, encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            by_text[" ".join(row["passage"].split())] = row.get("source") or ""
    ds.sources = {d: by_text.get(" ".join(t.split()), "") for d, t in ds.corpus.items()}
    return ds


def load_sample() -> tuple[QADataset, QADataset, dict]:
    """(train, eval, report) from sample_data/qa_train.csv and qa_eval.csv.

    The eval corpus is every passage of both files.
    """
    parts = {}
    reports = {}
    for split in ("train", "eval"):
        path = SAMPLE_DIR / f"qa_{split}.csv"
        res = load_qa_file(path.name, path.read_bytes())
        parts[split] = _with_sources(res.dataset, path)
        reports[split] = res.report.summary()
    train, ev = join_train_eval(parts["train"], parts["eval"])
    return train, ev, {"files": reports, "split": "given by the sample files (by passage)"}


def ensure_sample(store) -> tuple[str, bool]:
    """Save the sample dataset unless one of that name exists. Returns (id, created)."""
    found = store.find_dataset(SAMPLE_NAME)
    if found:
        return found["id"], False
    train, ev, report = load_sample()
    ds_id = store.save_dataset(SAMPLE_NAME, train, ev, report=report,
                               meta={"origin": "sample_data", "split_by": "passage"})
    return ds_id, True

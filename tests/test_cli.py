"""`python -m core ...` end to end on small files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, make_tiny_dataset


def _run(args, tmp_path):
    env = {**os.environ, "ETL_WORKSPACE": str(tmp_path / "ws"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_evaluate_json_has_dense_bm25_hybrid(tmp_path, sec_subset):
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(sec_subset.to_json()))
    proc = _run(["evaluate", "--data", str(path), "--hybrid", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"dense (default)", "BM25", "hybrid (RRF)"}
    assert 0 < out["dense (default)"]["Accuracy@10"] <= 1 and out["BM25"]["MRR@10"] > 0


def test_evaluate_table_and_bad_file(tmp_path):
    path = tmp_path / "pairs.csv"
    ds = make_tiny_dataset(12)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "passage"])
        w.writerows([ds.queries[q], ds.corpus[ds.relevant_docs[q][0]]] for q in ds.query_ids)
    proc = _run(["evaluate", "--data", str(path), "--bm25"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Accuracy@10" in proc.stdout and "BM25" in proc.stdout
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02binary")
    proc = _run(["evaluate", "--data", str(bad)], tmp_path)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_train_adapter_prints_table(tmp_path):
    ds = make_tiny_dataset(40)
    path = tmp_path / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"query": ds.queries[q], "passage": ds.corpus[ds.relevant_docs[q][0]]})
                              for q in ds.query_ids))
    proc = _run(["train", "--train", str(path), "--method", "adapter", "--epochs", "3"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("base", "tuned (adapter)", "BM25", "hybrid"):
        assert name in proc.stdout

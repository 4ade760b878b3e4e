"""core.insight.export: the model zip of each method, from fake run folders (no training needed)."""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest

from core.insight.export import model_card, model_zip

RESULTS = {
    "systems": {
        "base": {
            "Accuracy@1": 0.5,
            "Accuracy@10": 0.8,
            "MRR@10": 0.6,
            "nDCG@10": 0.65,
            "Recall@10": 0.8,
            "MAP@100": 0.6,
            "seconds": 1.0,
        },
        "tuned (full)": {
            "Accuracy@1": 0.6,
            "Accuracy@10": 0.9,
            "MRR@10": 0.7,
            "nDCG@10": 0.75,
            "Recall@10": 0.9,
            "MAP@100": 0.7,
            "seconds": 1.0,
        },
    },
    "order": ["base", "tuned (full)"],
    "n_eval_questions": 6,
    "n_eval_passages": 30,
}


def _run_dir(tmp_path, method: str, name: str = "run-1"):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"method": method, "dataset_id": "ds-1", "epochs": 2}))
    (d / "results.json").write_text(json.dumps(RESULTS))
    (d / "status.json").write_text(json.dumps({"name": "my run", "method": method}))
    (d / "per_query.csv").write_text("not exported\n")
    return d


def _names(data: bytes) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        return set(zf.namelist())


def test_full_model_zip_holds_model_folder_and_papers(tmp_path):
    d = _run_dir(tmp_path, "full")
    (d / "model" / "1_Pooling").mkdir(parents=True)
    (d / "model" / "model.safetensors").write_bytes(b"\0" * 1000)
    (d / "model" / "modules.json").write_text("[]")
    (d / "model" / "1_Pooling" / "config.json").write_text("{}")
    outside = tmp_path / "secret.txt"
    outside.write_text("do not export")
    os.symlink(outside, d / "model" / "link.txt")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.txt").write_text("outside the run")
    os.symlink(tmp_path / "elsewhere", d / "model" / "linked_dir")
    names = _names(model_zip(d))
    assert names == {
        "run-1/README.md",
        "run-1/config.json",
        "run-1/results.json",
        "run-1/model/model.safetensors",
        "run-1/model/modules.json",
        "run-1/model/1_Pooling/config.json",
    }
    assert all(not n.startswith("/") and ".." not in n for n in names)


def test_adapter_and_nudge_zips(tmp_path):
    d = _run_dir(tmp_path, "adapter", "run-a")
    with open(d / "adapter.npz", "wb") as fh:
        np.savez(fh, weight=np.eye(4, dtype=np.float32), bias=np.zeros(4, dtype=np.float32))
    assert "run-a/adapter.npz" in _names(model_zip(d))
    d = _run_dir(tmp_path, "nudge", "run-n")
    np.save(d / "nudged.npy", np.zeros((2, 4), dtype=np.float32))
    (d / "nudged_ids.json").write_text('["a", "b"]')
    assert {"run-n/nudged.npy", "run-n/nudged_ids.json", "run-n/README.md"} <= _names(model_zip(d))


def test_readme_has_scores_and_usage(tmp_path):
    d = _run_dir(tmp_path, "adapter")
    card = model_card(d)
    assert "# my run" in card and "| tuned (full) | 0.6000 | 0.9000" in card
    assert 'np.load("adapter.npz"' in card and "6 held-out questions" in card


def test_unfinished_run_refused(tmp_path):
    d = _run_dir(tmp_path, "full")
    with pytest.raises(FileNotFoundError, match="did not finish"):
        model_zip(d)
    with pytest.raises(FileNotFoundError):
        model_zip(tmp_path / "nothing-here")

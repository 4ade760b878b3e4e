"""`python -m core ...` end to end on small files, and how the CLI turns flags into a run spec."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from core.cli import build_parser, build_spec
from tests.conftest import ROOT, make_tiny_dataset


def _run(args, tmp_path):
    env = {**os.environ, "ETL_WORKSPACE": str(tmp_path / "ws"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def _spec(argv: list[str]):
    args = build_parser().parse_args(argv)
    return build_spec(args, "shootout" if args.command == "shootout" else args.method)


def test_flags_given_are_flags_used_for_every_method():
    ad = _spec(["train", "--train", "x", "--method", "adapter", "--lr", "0.01", "--epochs", "2", "--batch-size", "16"])
    # before: --lr was dropped for the adapter (key mismatch) and --epochs 2 (the full default) became 30
    assert (ad.settings.lr, ad.settings.epochs, ad.settings.batch_size) == (0.01, 2, 16)
    full = _spec(["train", "--train", "x", "--lr", "1e-4", "--epochs", "3", "--passage-tokens", "256",
                  "--validation-share", "0", "--set", "warmup_ratio=0.2"])
    assert (full.settings.learning_rate, full.settings.epochs, full.settings.warmup_ratio) == (1e-4, 3, 0.2)
    assert (full.scoring.passage_tokens, full.scoring.validation_share) == (256, 0)
    assert _spec(["train", "--train", "x", "--nproc", "2"]).settings.processes == 2
    scored = _spec(["train", "--train", "x", "--backend", "onnx-int8", "--windows"]).scoring
    assert scored.backend == "onnx-int8" and scored.windows
    assert _spec(["train", "--train", "x", "--method", "adapter"]).settings.epochs == 30  # defaults untouched
    so = _spec(["shootout", "--train", "x", "--epochs", "1", "--set", "adapter.epochs=4", "--methods", "adapter"])
    assert so.settings.full.epochs == 1 and so.settings.adapter.epochs == 4 and so.settings.methods == ["adapter"]
    mixed = _spec(["train", "--train", "x", "--hard-negatives", "1", "--set", "negatives_from=bm25", "--set",
                   "merge_base=true"]).settings
    assert (mixed.hard_negatives, mixed.negatives_from, mixed.merge_base) == (1, "bm25", True)
    assert _spec(["train", "--train", "x", "--set", "merge_base=off"]).settings.merge_base is False


@pytest.mark.parametrize("argv, message", [
    (["train", "--train", "x", "--method", "nudge", "--epochs", "3"], "--epochs does not apply to the nudge method"),
    (["train", "--train", "x", "--method", "adapter", "--max-seq-length", "64"], "does not apply to the adapter"),
    (["train", "--train", "x", "--set", "epoch=3"], "FullSettings has no setting 'epoch'"),
    (["train", "--train", "x", "--method", "adapter", "--nproc", "2"], "--nproc does not apply to the adapter"),
    (["train", "--train", "x", "--set", "epochs=many"], "expected a int"),
    (["train", "--train", "x", "--set", "merge_base=maybe"], "expected a bool"),
    (["train", "--train", "x", "--set", "negatives_from=sparse"], "use 'dense' .* or 'bm25'"),
])
def test_flags_a_method_cannot_use_are_refused(argv, message):
    with pytest.raises(ValueError, match=message):
        _spec(argv)


def _pairs_file(path, ds, fmt="jsonl"):
    rows = [(ds.queries[q], ds.corpus[ds.relevant_docs[q][0]]) for q in ds.query_ids]
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps({"query": q, "passage": p}) for q, p in rows))
    else:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["question", "passage"])
            w.writerows(rows)
    return path


@pytest.mark.slow
def test_evaluate_json_has_dense_bm25_hybrid_and_conditions(tmp_path, eval_subset):
    path = tmp_path / "sub.json"
    path.write_text(json.dumps(eval_subset.to_json()))
    proc = _run(["evaluate", "--data", str(path), "--hybrid", "--json", "--passage-tokens", "128"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert set(out) == {"dense (default)", "BM25", "hybrid (RRF)"}
    assert out["dense (default)"]["conditions"]["passage_tokens"] == 128
    assert out["BM25"]["conditions"]["passages_fingerprint"] == out["dense (default)"]["conditions"]["passages_fingerprint"]


def test_evaluate_table_and_bad_file(tmp_path):
    path = _pairs_file(tmp_path / "pairs.csv", make_tiny_dataset(12), "csv")
    proc = _run(["evaluate", "--data", str(path), "--bm25"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Accuracy@10" in proc.stdout and "BM25" in proc.stdout and "read at 512 tokens" in proc.stderr
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x00\x01\x02binary")
    proc = _run(["evaluate", "--data", str(bad)], tmp_path)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_train_with_eval_file_then_report(tmp_path):
    """A CLI run made with --train and --eval gets its report (it crashed on the split description)."""
    ds = make_tiny_dataset(40)
    train = _pairs_file(tmp_path / "train.jsonl", ds.subset(ds.query_ids[:30]))
    ev = _pairs_file(tmp_path / "eval.csv", ds.subset(ds.query_ids[30:]), "csv")
    proc = _run(["train", "--train", str(train), "--eval", str(ev), "--method", "adapter", "--epochs", "3"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("base", "tuned (adapter)", "BM25", "hybrid", "passages read at 512 tokens by base and tuned"):
        assert name in proc.stdout
    run_id = proc.stderr.split("run folder: ")[1].strip().rsplit("/", 1)[1]
    proc = _run(["report", run_id, "--no-maps"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "ws" / "runs" / run_id / "report.html").read_text()
    assert "given files (separate training and evaluation files" in html and "base model" in html


def test_train_is_refused_while_another_process_trains_on_the_workspace(tmp_path):
    from tests.workspace.test_jobs import HOLDER

    (tmp_path / "ws").mkdir()
    from core.workspace.store import Store

    Store(tmp_path / "ws")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "ws")], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT)
    try:
        assert holder.stdout.readline().strip() == "held"
        path = _pairs_file(tmp_path / "pairs.jsonl", make_tiny_dataset(30))
        proc = _run(["train", "--train", str(path), "--method", "adapter"], tmp_path)
        assert proc.returncode == 2 and "run-held-elsewhere is training on this workspace" in proc.stderr
    finally:
        holder.kill()
        holder.wait()

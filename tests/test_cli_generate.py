"""`python -m core generate`: passages of a QA file (its questions ignored) or a documents folder -> a pair
file `train` reads, passage ids kept, progress on stderr; the LLM backend with the key from the environment."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

from core.ingest.qafiles import load_qa_path
from tests.conftest import ROOT
from tests.generate.test_generate_job import passages
from tests.llm_server import FakeLLMServer

SECRET = "sk-cli-SECRET-1234abcd"


def _run(args, tmp_path, **env):
    full = {**os.environ, "ETL_WORKSPACE": str(tmp_path / "ws"), "HF_HUB_OFFLINE": "1", **env}
    for var in ("ETL_LLM_BASE_URL", "ETL_LLM_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY"):
        full.pop(var, None)
    return subprocess.run([sys.executable, "-m", "core", "generate", *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=600)


def _qa_file(tmp_path):
    ps = passages()
    path = tmp_path / "eval.json"
    path.write_text(json.dumps({"queries": {"q1": "A real question that must not be copied?"}, "corpus": ps,
                                "relevant_docs": {"q1": ["p0"]}}))
    return path, ps


def test_offline_from_a_qa_file_writes_a_pair_file_train_reads(tmp_path):
    src, ps = _qa_file(tmp_path)
    out = tmp_path / "pairs.csv"
    proc = _run(["--from", str(src), "--out", str(out), "--method", "crop", "--per-passage", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "[encoding] Round trip" in proc.stderr and "12 generated" in proc.stderr  # progress on stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    kept = int(proc.stderr.split(" pairs (generated:offline:crop)")[0].rsplit("\n", 1)[-1])
    assert len(rows) == kept > 0
    assert {r["passage_id"] for r in rows} <= set(ps)  # the QA file's passage ids, kept
    assert all(r["passage"] == ps[r["passage_id"]] and r["question"] in r["passage"] for r in rows)
    assert "A real question" not in out.read_text()  # its questions are never used
    ds = load_qa_path(out).dataset  # what `train` reads
    assert len(ds) == kept and set(ds.corpus.values()) <= set(ps.values())


def test_documents_folder_and_llm_backend_with_the_key_from_the_environment(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i, text in enumerate(list(passages().values())[:4]):
        (docs / f"manual{i}.txt").write_text(text, encoding="utf-8")
    (docs / "notes.bin").write_bytes(b"\x00\x01")  # not a document type: ignored
    out = tmp_path / "llm.csv"
    with FakeLLMServer(api_key=SECRET) as server:
        proc = _run(["--from", str(docs), "--out", str(out), "--llm-url", server.base_url, "--llm-model",
                     server.model, "--per-passage", "2", "--no-round-trip"], tmp_path, ETL_LLM_API_KEY=SECRET)
        assert proc.returncode == 0, proc.stderr
        assert server.requests == 4
        rows = list(csv.DictReader(out.open(encoding="utf-8")))
        assert len(rows) == 8 and {r["origin"] for r in rows} == {f"generated:llm:{server.model}"}
        assert {r["source"] for r in rows} == {f"manual{i}.txt" for i in range(4)}
        again = _run(["--from", str(docs), "--out", str(out), "--llm-url", server.base_url, "--llm-model",
                      server.model, "--per-passage", "2", "--no-round-trip"], tmp_path, ETL_LLM_API_KEY=SECRET)
        assert again.returncode == 0 and server.requests == 5  # from the cache, after one check of the endpoint
        assert "(4 from cache" in again.stderr, again.stderr
        wrong = _run(["--from", str(docs), "--out", str(tmp_path / "x.csv"), "--llm-url", server.base_url,
                      "--llm-model", server.model, "--per-passage", "3", "--no-round-trip"], tmp_path,
                     ETL_LLM_API_KEY="sk-wrong")
    assert wrong.returncode == 2 and "401" in wrong.stderr and not (tmp_path / "x.csv").exists()
    ws = b"".join(p.read_bytes() for p in (tmp_path / "ws").rglob("*") if p.is_file())
    assert SECRET.encode() not in ws and SECRET not in proc.stderr + again.stderr


def test_bad_flags_are_refused(tmp_path):
    src, _ = _qa_file(tmp_path)
    proc = _run(["--from", str(src), "--out", str(tmp_path / "o.csv"), "--method", "crop", "--llm-model", "m"],
                tmp_path)
    assert proc.returncode == 2 and "--method chooses an offline method" in proc.stderr
    proc = _run(["--from", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o.csv")], tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    for flags, said in ((["--keep-sentence", "1", "--llm-model", "m"], "--keep-sentence tunes an offline method"),
                        (["--keep-sentence", "1", "--method", "crop"], "applies to the inverse_cloze method only"),
                        (["--keep-sentence", "1.5"], "a share between 0 and 1, not 1.5")):
        proc = _run(["--from", str(src), "--out", str(tmp_path / "o.csv"), *flags], tmp_path)
        assert proc.returncode == 2 and said in proc.stderr, proc.stderr
    assert not (tmp_path / "o.csv").exists()


def test_keep_sentence_one_trains_on_the_passages_as_uploaded(tmp_path):
    """--keep-sentence 1 (the default): every question's sentence stays in its passage, so each pair's passage is the collection's
    own (no cut copy, no '#ict' id); ORQA's share (0.1) cuts most of them out."""
    src, ps = _qa_file(tmp_path)
    rows = {}
    for share in ("1", "0.1", None):  # None: the default
        out = tmp_path / f"pairs-{share}.csv"
        flag = ["--keep-sentence", share] if share else []
        proc = _run(["--from", str(src), "--out", str(out), *flag, "--no-round-trip"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        rows[share] = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows[None] == rows["1"]  # the default keeps the sentence (bench/RESULTS.md, "Keep the sentence")
    kept = rows["1"]
    assert kept and all(r["passage_id"] in ps and r["passage"] == ps[r["passage_id"]] for r in kept)
    assert all(r["question"] in r["passage"] for r in kept)
    assert sum("#ict" in r["passage_id"] for r in rows["0.1"]) > len(rows["0.1"]) // 2


def test_passages_only_file_keeps_its_ids_and_sources(tmp_path):
    src = tmp_path / "export.csv"
    with src.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text", "source"])
        for pid, text in passages().items():
            w.writerow([f"chunk-{pid}", text, "manual.pdf"])
    out = tmp_path / "pairs.csv"
    proc = _run(["--from", str(src), "--out", str(out), "--method", "keywords", "--no-round-trip"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and {r["passage_id"] for r in rows} <= {f"chunk-{p}" for p in passages()}
    assert {r["source"] for r in rows} == {"manual.pdf"} and {r["origin"] for r in rows} == {"generated:offline:keywords"}


def test_train_warns_when_its_evaluation_file_is_generated(tmp_path):
    """A generated pair file used as the evaluation file: `train` says its scores are optimistic."""
    src, _ = _qa_file(tmp_path)
    for name, method in (("train.csv", "crop"), ("eval.csv", "keywords")):
        proc = _run(["--from", str(src), "--out", str(tmp_path / name), "--method", method, "--no-round-trip"],
                    tmp_path)
        assert proc.returncode == 0, proc.stderr
    env = {**os.environ, "ETL_WORKSPACE": str(tmp_path / "ws"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--train", str(tmp_path / "train.csv"), "--eval",
                           str(tmp_path / "eval.csv"), "--method", "adapter", "--epochs", "2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "Evaluation questions: generated;" in proc.stdout
    assert "WARNING: The evaluation questions are generated: these scores are optimistic" in proc.stdout


def test_generate_then_train_searches_exactly_the_collection(tmp_path):
    """The README's path on one collection (issue 26): `generate --from FILE` writes 'sentence as question' pairs
    whose passages have the question's sentence cut out (ids '<id>#ict<k>'; --keep-sentence 0.1, ORQA's inverse
    cloze); `train --train pairs --eval FILE`
    trains on those texts but searches and scores the collection exactly as uploaded: its passages, no more."""
    from core.dataset import _doc_key
    from core.workspace.store import Store

    ps = passages()
    src = tmp_path / "collection.json"
    queries = {f"q{i}": f"How often is the {t} on line {i} inspected?" for i, t in enumerate(["pump", "valve", "hose"])}
    src.write_text(json.dumps({"queries": queries, "corpus": ps,
                               "relevant_docs": {f"q{i}": [f"p{i}"] for i in range(3)}}))
    pairs = tmp_path / "pairs.csv"
    proc = _run(["--from", str(src), "--out", str(pairs), "--method", "inverse_cloze", "--keep-sentence", "0.1",
                 "--no-round-trip"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(pairs.open(encoding="utf-8")))
    cut = [r for r in rows if "#ict" in r["passage_id"]]
    assert cut and all(r["passage"] not in ps.values() for r in cut)  # altered copies: trained on only
    env = {**os.environ, "ETL_WORKSPACE": str(tmp_path / "ws"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--train", str(pairs), "--eval", str(src),
                           "--method", "adapter", "--epochs", "1", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"{len({r['passage_id'] for r in cut})} passages of {pairs} are its questions' passages" in proc.stderr
    store = Store(tmp_path / "ws")
    run = next(r for r in store.list_runs() if r["method"] == "adapter")
    train, ev = store.load_dataset(run["dataset_id"])
    assert len(ev.corpus) == len(ps) == 12  # the collection's passages, each once
    assert set(ev.corpus) == {_doc_key(t) for t in ps.values()}  # ids follow the texts (re-keyed by content)
    assert sorted(ev.corpus.values()) == sorted(ps.values())
    assert len(train) == len(rows) and {r["passage"] for r in cut} <= set(train.corpus.values())  # still trained on
    results = json.loads(proc.stdout)
    assert {s["conditions"]["passages"] for s in results["systems"].values()} == {12}  # every system searched 12

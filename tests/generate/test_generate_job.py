"""Question generation as a run of the store: offline end to end, the LLM backend against the loopback
server (the key never written anywhere), cancel and resume from the cache, review -> training split,
labels -> evaluation split, and the counter's arithmetic."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest

from core.dataset import DataError, QADataset, question_origin
from core.generate.cache import QuestionCache
from core.generate.filters import FilterSettings
from core.generate.job import (
    GENERATE_METHOD,
    GenerationSpec,
    create_generation_run,
    load_rows,
    load_summary,
    run_generation,
)
from core.generate.labels import (
    HUMAN,
    add_label,
    confidence_note,
    detectable_difference,
    human_labels,
    questions_needed,
    remove_label,
)
from core.generate.llm import ApiKey, LLMSettings
from core.generate.pairs import collection_passages, origin_warning
from core.generate.review import review_table, set_keep, use_as_training
from core.insight.history import done_runs
from core.retrieval.stats import paired_bootstrap
from core.workspace.jobs import Job, JobRunner
from core.workspace.store import Store
from tests.llm_server import FakeLLMServer

SECRET = "sk-job-SECRET-9f8e7d6c5b4a"
TOPICS = ["pump", "valve", "hose", "filter", "cylinder", "accumulator", "seal", "cooler", "motor", "reservoir",
          "gearbox", "compressor"]


def passages(n: int = 12) -> dict[str, str]:
    return {
        f"p{i}": (f"The {t} on line {i} must be inspected every {100 + 10 * i} operating hours by a technician. "
                  f"When the {t} leaks oil, replace seal kit number {i} and tighten the fittings. "
                  f"Record every inspection of the {t} in the maintenance log of line {i}.")
        for i, t in enumerate(TOPICS[:n])
    }


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("ETL_LLM_API_KEY", "OPENAI_API_KEY", "ETL_LLM_BASE_URL", "OPENAI_BASE_URL", "ETL_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def collection(tmp_path):
    store = Store(tmp_path / "ws")
    ps = passages()
    ds_id = store.save_dataset("manuals", QADataset({}, ps, {}, sources={p: f"manual.pdf p.{i + 1}" for i, p in
                                                                         enumerate(ps)}), meta={"kind": "collection"})
    return store, ds_id


def run_sync(store, run_id, api_key=None) -> Job:
    job = Job(store, run_id)
    job.run(lambda j: run_generation(store, run_id, j, api_key=api_key, device="cpu"))
    return job


def fast_llm(server: FakeLLMServer, **kw) -> LLMSettings:
    return LLMSettings(**{"base_url": server.base_url, "model": server.model, "backoff_s": 0.01, "retries": 0,
                          "timeout_s": 5.0, **kw})


def no_round_trip() -> FilterSettings:
    return FilterSettings(round_trip=False)


def all_bytes(root) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


# --------------------------------------------------------------------------- offline, end to end


def test_offline_run_writes_questions_verdicts_and_counts_that_add_up(collection):
    store, ds_id = collection
    spec = GenerationSpec.for_backend(ds_id, "offline", "inverse_cloze")
    assert spec.filters.max_copy_words == 0  # copying is what inverse cloze does: that filter is off for it
    run_id = create_generation_run(store, spec, name="ict")
    job = run_sync(store, run_id)
    snap = job.snapshot()
    assert snap.status == "done", snap.error
    run = store.get_run(run_id)
    assert run["method"] == GENERATE_METHOD and run["metrics"] == {"generated": 24, "kept": snap.result.kept}
    s = load_summary(store.run_dir(run_id))
    rows = load_rows(store.run_dir(run_id))
    assert s.generated == len(rows) == 24  # 12 passages x 2 sentences each
    f = s.funnel
    assert f["generated"] == sum(v for k, v in f.items() if k not in ("generated", "kept")) + f["kept"]
    assert s.kept == sum(r["kept"] for r in rows) and s.line.endswith(f"{s.kept} kept")
    assert all(r["rank"] is not None for r in rows)  # the round trip ran with the base model
    assert {r["origin"] for r in rows} == {"generated:offline:inverse_cloze"}
    # a generation run is in the history but never offered as a tuning run
    assert run_id in [r["id"] for r in store.list_runs()]
    assert run_id not in [r["id"] for r in done_runs(store)]


def test_round_trip_encodings_are_cached(collection):
    store, ds_id = collection
    spec = GenerationSpec.for_backend(ds_id, "offline", "crop")
    assert run_sync(store, create_generation_run(store, spec)).snapshot().status == "done"
    import sqlite3

    def rows() -> int:
        with sqlite3.connect(store.cache_path) as con:
            return con.execute("SELECT COUNT(*) FROM vec").fetchone()[0]

    n = rows()
    assert n >= len(passages())
    job = run_sync(store, create_generation_run(store, spec))
    assert job.snapshot().status == "done" and rows() == n  # nothing encoded twice


def test_nothing_generated_is_explained(tmp_path):
    store = Store(tmp_path / "ws")
    ds_id = store.save_dataset("one-liners", QADataset({}, {"a": "Short line.", "b": "Another one."}, {}),
                               meta={"kind": "collection"})
    job = run_sync(store, create_generation_run(store, GenerationSpec.for_backend(ds_id, "offline", "inverse_cloze")))
    assert job.snapshot().status == "done"
    s = load_summary(store.run_dir(job.run_id))
    assert s.generated == 0 and "single sentence" in s.empty and "crop" in s.empty


def test_spec_reads_back_and_refuses_unknown_settings(collection):
    _, ds_id = collection
    spec = GenerationSpec.for_backend(ds_id, "llm", llm=LLMSettings(base_url="http://x/v1", model="m"))
    assert GenerationSpec.from_dict({**spec.to_dict(), "method": "generate"}) == spec
    with pytest.raises(ValueError, match="temprature"):
        GenerationSpec.from_dict({**spec.to_dict(), "llm": {**spec.to_dict()["llm"], "temprature": 1}})
    with pytest.raises(ValueError, match="backend"):
        GenerationSpec(ds_id, backend="gpt")


# --------------------------------------------------------------------------- LLM backend


def test_llm_run_never_writes_the_key(collection, caplog):
    store, ds_id = collection
    ps = passages()
    ps["p3"] = ps["p3"] + " FAULT:500_echo"  # this passage's error message quotes the Authorization header
    store.update_dataset(ds_id, train=QADataset({}, ps, {}))
    caplog.set_level(logging.DEBUG)
    with FakeLLMServer(api_key=SECRET) as server:
        spec = GenerationSpec.for_backend(ds_id, "llm", llm=fast_llm(server), filters=no_round_trip())
        runner = JobRunner(store)
        run_id = create_generation_run(store, spec, name="llm")
        job = runner.submit(run_id, lambda j: run_generation(store, run_id, j, api_key=ApiKey(SECRET)))
        assert job.wait(60)
        assert job.snapshot().status == "done", job.snapshot().error
        assert server.auth_headers and all(h == f"Bearer {SECRET}" for h in server.auth_headers)
        s = load_summary(store.run_dir(run_id))
        assert s.generated == 11 * 3 and s.passages_without == 1 and "500" in " ".join(s.problems)
        # a wrong key: the run fails with the endpoint's message, and that key is not written either
        wrong = "sk-wrong-KEY-0000111122223333"
        spec.llm.questions_per_passage = 2  # not in the cache yet: the first request meets the endpoint
        bad_id = create_generation_run(store, spec, name="wrong key")
        bad = runner.submit(bad_id, lambda j: run_generation(store, bad_id, j, api_key=ApiKey(wrong)))
        assert bad.wait(60) and bad.snapshot().status == "failed"
        assert "401" in store.get_run(bad_id)["error"]
    assert "api_key" not in (store.run_dir(run_id) / "config.json").read_text()
    disk = all_bytes(store.root)
    assert SECRET.encode() not in disk and wrong.encode() not in disk
    assert SECRET not in caplog.text and wrong not in caplog.text


def test_cancel_keeps_the_answers_and_the_next_run_resumes(collection):
    store, ds_id = collection
    with FakeLLMServer(delay_s=0.4) as server:
        spec = GenerationSpec.for_backend(ds_id, "llm", llm=fast_llm(server, max_parallel=2), filters=no_round_trip())
        runner = JobRunner(store)
        first = create_generation_run(store, spec)
        job = runner.submit(first, lambda j: run_generation(store, first, j))
        deadline = time.time() + 30
        while job.snapshot().step < 3 and time.time() < deadline:
            time.sleep(0.05)
        job.cancel()
        assert job.wait(30) and job.snapshot().status == "cancelled"
        cached = len(QuestionCache.in_folder(store.root / "cache"))
        assert 3 <= cached < 12
        assert load_summary(store.run_dir(first)).cancelled
        server.reset_counts()
        second = create_generation_run(store, spec)
        job2 = runner.submit(second, lambda j: run_generation(store, second, j))
        assert job2.wait(60) and job2.snapshot().status == "done"
    s = load_summary(store.run_dir(second))
    assert server.requests == 12 - cached  # only what the cancelled run had not asked
    assert s.llm["from_cache"] == cached and s.generated == 36


# --------------------------------------------------------------------------- review -> training split


def test_kept_questions_become_the_training_split_with_origins(collection):
    store, ds_id = collection
    spec = GenerationSpec.for_backend(ds_id, "offline", "crop", filters=no_round_trip())
    run_id = run_sync(store, create_generation_run(store, spec)).run_id
    table = set_keep(review_table(store.run_dir(run_id)), "all")
    table.loc[0, "question"] = "How often is the pump inspected?"
    table.loc[1, "keep"] = False
    add_label(store, ds_id, table.loc[2, "question"], [table.loc[2, "passage_id"]])  # already an eval question
    done = use_as_training(store, ds_id, run_id, table)
    assert (done.questions, done.edited, done.left_out) == (len(table) - 2, 1, 1)
    train, ev = store.load_dataset(ds_id)
    assert len(train) == len(table) - 2 and "How often is the pump inspected?" in train.queries.values()
    assert set(train.origins.values()) == {"generated:offline:crop"} and question_origin(train) == "generated"
    assert set(passages()) <= set(train.corpus)  # every passage stays, as a distractor
    assert len(ev) == 1 and ev.origins[ev.query_ids[0]] == HUMAN  # evaluation untouched by the review
    assert review_table(store.run_dir(run_id)).loc[0, "question"] == "How often is the pump inspected?"  # saved
    with pytest.raises(DataError, match="No question is kept"):
        use_as_training(store, ds_id, run_id, set_keep(table, "none"))


# --------------------------------------------------------------------------- labels -> evaluation split


def test_labels_are_written_at_once_and_generated_ones_only_when_asked(collection):
    store, ds_id = collection
    for q, p in (("How often is the pump inspected?", "p0"), ("Which seal kit fits the valve?", "p1"),
                 ("Where are hose inspections recorded?", "p2")):
        add_label(store, ds_id, q, [p])
    _, ev = store.load_dataset(ds_id)
    assert len(human_labels(ev)) == 3 and question_origin(ev) == "human-labelled"
    assert set(ev.corpus) == set(passages())  # searched against every passage
    add_label(store, ds_id, "how often is the PUMP inspected", ["p0", "p5"])  # same question: updated, not doubled
    _, ev = store.load_dataset(ds_id)
    assert len(ev) == 3 and ["p0", "p5"] in ev.relevant_docs.values()

    gen = "What does the cooler maintenance log record?"
    store.update_dataset(ds_id, train=QADataset({"gen-00001": gen}, passages(), {"gen-00001": ["p7"]},
                                                origins={"gen-00001": "generated:llm:m"}))
    with pytest.raises(DataError, match="only if you say so"):
        add_label(store, ds_id, gen, ["p7"], origin="generated:llm:m")
    qid = add_label(store, ds_id, gen, ["p7"], origin="generated:llm:m", allow_generated=True)
    train, ev = store.load_dataset(ds_id)
    assert ev.origins[qid] == "generated:llm:m:verified" and gen not in train.queries.values()  # no leak
    assert question_origin(ev) == "mixed (1 of 4 generated)" and origin_warning(question_origin(ev))
    remove_label(store, ds_id, qid)
    assert question_origin(store.load_dataset(ds_id)[1]) == "human-labelled"
    with pytest.raises(DataError, match="Tick at least one"):
        add_label(store, ds_id, "A question", [])


def test_origin_warning_only_for_generated_evaluation_questions():
    assert origin_warning("generated") and "optimistic" in origin_warning("generated")
    assert "3 of the 10" in origin_warning("mixed (3 of 10 generated)")
    for fine in ("human-labelled", "as uploaded", "mixed (0 of 10 generated)", ""):
        assert origin_warning(fine) is None


def test_collection_passages_leave_out_derived_positives():
    train = QADataset({"q": "x"}, {"p1": "a b. c d.", "p1#ict2": "a b."}, {"q": ["p1#ict2"]})
    ev = QADataset({}, {"p1": "a b. c d.", "p2": "e f."}, {}, sources={"p2": "f.txt"})
    assert collection_passages(train, ev) == ({"p1": "a b. c d.", "p2": "e f."}, {"p2": "f.txt"})


# --------------------------------------------------------------------------- the counter's arithmetic


def test_detectable_difference_is_the_paired_bootstrap_half_width():
    rng = np.random.default_rng(0)
    for n in (30, 100):
        d = rng.normal(0.0, 0.21, n)
        _, low, high = paired_bootstrap(np.zeros(n), d, seed=1)
        want = detectable_difference(n, sd=float(d.std(ddof=1)))
        assert abs((high - low) / 2 - want) / want < 0.1, (n, high - low, want)
    assert detectable_difference(30) == pytest.approx(0.0751, abs=1e-3)  # the default spread, 0.21
    assert questions_needed(detectable_difference(30)) == 30
    assert "~0.08 in nDCG@10" in confidence_note(30) and "With 30 labelled questions" in confidence_note(30)
    assert "too few" in confidence_note(1)



def test_kept_questions_can_join_the_labelled_training_questions(collection):
    """'Add them to the labelled training questions': the split keeps its labelled questions (a person's, or
    uploaded) and gains the generated ones; earlier generated questions are replaced, not stacked."""
    from core.dataset import QADataset, generated_ids, merge_splits

    store, ds_id = collection
    train, ev = store.load_dataset(ds_id)
    labelled = QADataset({"lab-1": "What torque do the flange bolts need?"}, dict(train.corpus),
                         {"lab-1": [next(iter(train.corpus))]}, answers={"lab-1": "40 Nm"})
    store.update_dataset(ds_id, train=labelled)
    spec = GenerationSpec.for_backend(ds_id, "offline", "crop", filters=no_round_trip())
    run_id = run_sync(store, create_generation_run(store, spec)).run_id
    table = set_keep(review_table(store.run_dir(run_id)), "all")
    done = use_as_training(store, ds_id, run_id, table, keep_labelled=True)
    train, _ = store.load_dataset(ds_id)
    assert done.questions == len(table) + 1 and done.replaced == 0
    assert train.queries["lab-1"] == "What torque do the flange bolts need?" and train.answers["lab-1"] == "40 Nm"
    assert len(generated_ids(train)) == len(table) and question_origin(train).startswith("mixed")
    again = use_as_training(store, ds_id, run_id, table, keep_labelled=True)  # a second time: not stacked
    assert again.questions == len(table) + 1 and len(store.load_dataset(ds_id)[0]) == len(table) + 1
    plain = use_as_training(store, ds_id, run_id, table)  # the other button: generated only
    assert plain.questions == len(table) and plain.replaced == len(table) + 1
    with pytest.raises(ValueError, match="share question ids"):
        merge_splits(labelled, labelled)

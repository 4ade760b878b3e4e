"""Judging the new finds: unjudged passages of every pipeline's top 10, recording the expert's marks, and
re-scoring a run from its saved rankings exactly as scoring it from scratch with the new labels would."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from core.dataset import DataError
from core.generate.judgments import load_judgments, record_judgments
from core.insight import judging as J
from core.insight.explore import BY_DIMENSION_FILE, open_run
from core.insight.projection import Projection
from core.insight.report import build_report
from core.retrieval import coverage as C
from core.retrieval.embedding import EmbeddingCache
from core.retrieval.evaluation import (
    Conditions,
    dense_ranking,
    evaluate_bm25,
    evaluate_vectors,
    score_ranking,
)
from core.retrieval.fusion import fuse
from core.tuning.spec import RunSpec
from core.workspace.run_folder import (
    DEEP_FILE,
    load_deep_rankings,
    load_per_query,
    load_rankings,
    load_results,
)
from tests.pages.conftest import save_cheap_projection
from tests.retrieval.test_fairness import SPECS, _run, long_store  # noqa: F401 - the module fixture is reused

WRONG = "d0"  # a passage the bench showed for every evaluation question and the expert did not tick


@pytest.fixture(scope="module")
def bench_store(long_store):  # noqa: F811 - the imported fixture
    """The long-passage dataset with every evaluation label judged on the bench from BM25's and the base
    model's lists (its gold passage relevant, d0 not)."""
    store, ds_id = long_store
    _, ev = store.load_dataset(ds_id)
    for q in ev.query_ids:
        record_judgments(store, ds_id, q, {ev.relevant_docs[q][0]: (True, ["base", "bm25"]),
                                           WRONG: (False, ["bm25"])})
    return store, ds_id


@pytest.fixture(scope="module")
def judged_run(bench_store):
    store, ds_id = bench_store
    return store, ds_id, _run(store, ds_id, SPECS["adapter"]())


def _top10(store, run_id):
    return {role: {q: v[0] for q, v in r.items()} for role, r in load_rankings(store.run_dir(run_id)).items()}


def test_deep_rankings_saved_with_the_run(judged_run):
    store, _, run_id = judged_run
    run_dir = store.run_dir(run_id)
    deep, top = load_deep_rankings(run_dir), _top10(store, run_id)
    _, ev = store.run_data(run_id)
    assert set(deep) == set(top) == {"base", "tuned", "bm25", "base_hybrid", "hybrid"}
    for role in deep:
        assert list(deep[role]) == ev.query_ids
        for q, ids in deep[role].items():
            assert ids[:10] == top[role][q]
            assert len(ids) == len(set(ids)) and set(ids) <= set(ev.corpus)
    assert all(len(ids) == len(ev.corpus) for ids in deep["base"].values())  # dense: every passage (30 < 100)
    with np.load(run_dir / DEEP_FILE, allow_pickle=False) as z:
        assert z["rank_base"].dtype == np.int32 and z["rank_base"].shape == (len(ev.query_ids), 100)
    # the run kept a copy of the judgments it started with
    assert (run_dir / "data" / "judgments.json").exists()


def test_run_end_records_the_unjudged_share_and_the_warning(judged_run):
    store, ds_id, run_id = judged_run
    results = load_results(store.run_dir(run_id))
    j = results.judging
    top = _top10(store, run_id)
    _, ev = store.run_data(run_id)
    for role in results.roles:
        shown = sum(len(ids) for ids in top[role].values())
        unjudged = sum(d not in ev.relevant_docs[q] and d != WRONG for q, ids in top[role].items() for d in ids)
        assert j["unjudged_counts"][role] == [unjudged, shown]
        assert j["unjudged"][role] == pytest.approx(unjudged / shown)
    assert j["has_judgments"] and j["pooled_from"] == ["base", "bm25"]
    worst = max(["tuned", "base_hybrid", "hybrid"], key=lambda r: j["unjudged"][r])
    whose = {"tuned": "the tuned model's", "base_hybrid": "the base hybrid's", "hybrid": "the tuned hybrid's"}[worst]
    assert j["warning"] == (f"The evaluation labels came only from the base model's and BM25's lists; "
                            f"{C.fmt_share(j['unjudged'][worst])} of {whose} top-10 was never judged: judge the new finds.")
    assert j["finds"] == len(J.unjudged_finds(store, run_id))
    assert j["judged_since_run"] == 0


def test_unjudged_finds_exclude_judged_and_relevant_passages(judged_run):
    store, ds_id, run_id = judged_run
    finds = J.unjudged_finds(store, run_id)
    assert finds == J.unjudged_finds(store, run_id)  # seeded: the same order every time
    top = _top10(store, run_id)
    _, ev = store.run_data(run_id)
    judged = load_judgments(store, ds_id)
    expected = {(q, d) for ids_by_q in top.values() for q, ids in ids_by_q.items() for d in ids
                if d not in ev.relevant_docs[q] and d not in judged.get(q, {})}
    pairs = [(f.question_id, f.passage_id) for f in finds]
    assert len(pairs) == len(set(pairs)) and set(pairs) == expected
    assert not any(f.passage_id == WRONG or f.passage_id in ev.relevant_docs[f.question_id] for f in finds)
    for f in finds:
        assert f.found_by == tuple(r for r in top if f.passage_id in top[r][f.question_id])
    # one question after the other, in the run's order
    order = list(dict.fromkeys(p[0] for p in pairs))
    assert order == [q for q in ev.query_ids if q in order]


def _from_scratch(store, run_id, model):
    """Every system of the run scored again with the run's current labels: search, fusion, metrics."""
    from core.tuning.adapter import LinearAdapter

    run_dir = store.run_dir(run_id)
    spec = RunSpec.load(run_dir)
    _, ev = store.run_data(run_id)
    results = load_results(run_dir)
    tokens = spec.scoring.passage_tokens
    found = dense_ranking(model, ev, tokens, cache=EmbeddingCache(store.cache_path), overlap=spec.overlap)
    base = score_ranking("base", ev, found.ranking)
    adapter = LinearAdapter.load(run_dir / "adapter.npz")
    tuned = evaluate_vectors("tuned", ev, adapter.transform(found.queries), found.passages, Conditions.of(ev),
                             windows=found.windows)
    bm25 = evaluate_bm25(ev)
    pipes = results.pipelines
    out = {"base": base, "tuned": tuned, "bm25": bm25}
    for role, dense in (("base_hybrid", base), ("hybrid", tuned)):
        out[role] = score_ranking(role, ev, fuse(dense.ranking(), bm25.ranking(), pipes[role].fusion))
    return ev, out


def test_record_then_rescore_equals_scoring_from_scratch(judged_run, model):
    store, ds_id, run_id = judged_run
    run_dir = store.run_dir(run_id)
    before_results = load_results(run_dir)
    finds = J.unjudged_finds(store, run_id)
    questions = list(dict.fromkeys(f.question_id for f in finds))[:3]
    mine = [f for f in finds if f.question_id in questions]
    marks = {(f.question_id, f.passage_id): i % 3 == 0 for i, f in enumerate(mine)}
    relevant = {k for k, v in marks.items() if v}
    assert relevant and len(relevant) < len(marks)
    assert J.record_finds(store, run_id, marks) == {"judged": len(marks), "relevant": len(relevant)}

    # judgments, the dataset's evaluation split and the run's own copy all hold them
    judged = load_judgments(store, ds_id)
    top = _top10(store, run_id)
    for (q, p), rel in marks.items():
        assert judged[q][p]["relevant"] is rel
        assert judged[q][p]["found_by"] == [C.found_by_name(run_id, r) for r in top if p in top[r][q]]
    _, dataset_ev = store.load_dataset(ds_id)
    _, run_ev = store.run_data(run_id)
    for q, p in relevant:
        assert p in dataset_ev.relevant_docs[q] and p in run_ev.relevant_docs[q]
    assert not any(f.question_id in questions for f in J.unjudged_finds(store, run_id))
    # the shares are refreshed at once, the scores only on re-scoring
    j = load_results(run_dir).judging
    assert j["judged_since_run"] == len(marks) and j["relevant_since_run"] == len(relevant)
    assert j["unjudged_at_start"] == before_results.judging["unjudged"]
    assert sum(c[0] for c in j["unjudged_counts"].values()) < sum(
        c[0] for c in before_results.judging["unjudged_counts"].values())
    assert load_results(run_dir).systems["base"].metrics == before_results.systems["base"].metrics

    before, after = J.rescore_run(store, run_id)
    assert before.systems["base"].metrics == before_results.systems["base"].metrics
    ev, scratch = _from_scratch(store, run_id, model)
    deep = load_deep_rankings(run_dir)
    changed = False
    for role in after.roles:
        got = after.systems[role].metrics
        again = score_ranking(role, ev, ([deep[role][q] for q in ev.query_ids], [[] for _ in ev.query_ids]))
        assert got == pytest.approx(again.metrics, abs=1e-12)
        assert got == pytest.approx(scratch[role].metrics, abs=1e-9), role  # search, fuse and score again
        changed |= got["nDCG@10"] != before.systems[role].metrics["nDCG@10"]
    assert changed
    # the conditions: every system's question fingerprint follows the new labels alike
    fp = Conditions.of(ev).questions_fingerprint
    assert fp != before.systems["base"].conditions.questions_fingerprint
    for role, s in after.systems.items():
        assert s.conditions.questions_fingerprint == fp
        assert s.conditions.passages_fingerprint == before.systems[role].conditions.passages_fingerprint
    assert not after.fairness_problems()
    # what the run saved: results.json, per_query.csv, the catalog's headline
    saved = load_results(run_dir)
    assert saved.systems["hybrid"].metrics == after.systems["hybrid"].metrics
    pq = load_per_query(run_dir)
    for role in after.roles:
        assert pq[f"{role}|nDCG@10"].to_numpy() == pytest.approx(scratch[role].per_query["nDCG@10"].to_numpy())
    assert store.get_run(run_id)["metrics"] == pytest.approx(after.headline)
    # a best pipeline chosen on validation never saw these labels: kept
    assert before.best.chosen_on == "validation" and after.best == before.best
    note = after.notes[-1]
    assert note.startswith(f"Re-scored after judging {len(marks)} new finds ({len(relevant)} relevant): base nDCG@10 "
                           f"{before.systems['base'].metrics['nDCG@10']:.3f} -> {after.systems['base'].metrics['nDCG@10']:.3f}")
    assert saved.judging["rescored"] == note and saved.judging["before_judging"]["bm25"] == pytest.approx(
        {m: before.systems["bm25"].metrics[m] for m in J.CHANGE_METRICS})
    table = J.score_changes(before, after)
    assert table.loc[after.systems["bm25"].name, "nDCG@10 after"] == after.systems["bm25"].metrics["nDCG@10"]
    assert table["unjudged top-10 before"].to_dict() == pytest.approx(
        {after.systems[r].name: v for r, v in before_results.judging["unjudged"].items()})
    # nothing new judged: nothing rewritten
    again_before, again_after = J.rescore_run(store, run_id)
    assert again_after is again_before
    # the report states the shares, the warning and the re-scoring
    html = build_report(store, run_id, with_maps=False)
    assert "Re-scored after judging" in html and "that nobody judged" in html
    assert html.count("Re-scored after judging") == 1


def test_rescore_of_a_run_without_deep_rankings_keeps_map(bench_store):
    store, ds_id = bench_store
    run_id = _run(store, ds_id, SPECS["adapter"]())
    run_dir = store.run_dir(run_id)
    (run_dir / DEEP_FILE).unlink()  # as runs saved before the top 100 were kept
    save_cheap_projection(store, run_id)  # a saved map: its point table colours answer passages
    view = open_run(store, run_id)
    view.map_points(Projection.load(next(run_dir.glob("projection-*.npz"))))
    view.alignment("base"), view.by_dimension()
    before_pq = load_per_query(run_dir)
    finds = J.unjudged_finds(store, run_id)
    f = next(f for f in finds if "bm25" in f.found_by)
    J.record_finds(store, run_id, {(f.question_id, f.passage_id): True})
    before, after = J.rescore_run(store, run_id)
    _, ev = store.run_data(run_id)
    top = _top10(store, run_id)
    for role in after.roles:
        again = score_ranking(role, ev, ([top[role][q] for q in ev.query_ids], [[] for _ in ev.query_ids]))
        for m in ("Accuracy@1", "Accuracy@10", "MRR@10", "nDCG@10", "Recall@10", "Precision@3"):
            assert after.systems[role].metrics[m] == pytest.approx(again.metrics[m])
        assert after.systems[role].metrics["MAP@100"] == before.systems[role].metrics["MAP@100"]  # kept
    pq = load_per_query(run_dir)
    q = f.question_id
    for role in after.roles:  # the first relevant rank: the new passage's when in this top 10, else as before
        ranks = [i + 1 for i, d in enumerate(top[role][q]) if d in ev.relevant_docs[q]]
        old = before_pq.loc[q, f"{role}|gold_rank"]
        want = min(ranks) if ranks else old
        assert (pq.loc[q, f"{role}|gold_rank"] == want) or (np.isnan(want) and np.isnan(pq.loc[q, f"{role}|gold_rank"]))
    assert "MAP@100 and ranks past 10 kept from before judging" in after.notes[-1]
    # what the folder saved from the old labels: recomputed (alignment, the map's points) or removed
    assert {"base", "tuned"} <= set(json.loads((run_dir / "alignment.json").read_text()))
    assert not (run_dir / BY_DIMENSION_FILE).exists()
    points = pd.read_parquet(next(run_dir.glob("map-points-*.parquet")))
    answers = points[(points["kind"] == "passage") & (points["id"] == f.passage_id)]["answers"]
    assert answers.notna().all() and len(answers) == 2  # the new answer passage, in both spaces


def test_judging_summary_on_a_hand_made_case():
    top = {"base": {"q1": ["a", "b", "c", "d"], "q2": ["e", "f"]},
           "bm25": {"q1": ["a", "x"], "q2": ["e", "g"]},
           "hybrid": {"q1": ["y", "z", "a", "w"], "q2": ["h", "i"]}}
    relevant = {"q1": {"a"}, "q2": {"e"}}
    judged = {"q1": {"a": {"relevant": True, "found_by": ["base", "bm25"], "at": 1.0},
                     "b": {"relevant": False, "found_by": ["base"], "at": 1.0}},
              "q2": {"e": {"relevant": True, "found_by": ["bm25", "search"], "at": 1.0},
                     "i": {"relevant": False, "found_by": ["run:r1:hybrid"], "at": 5.0}}}
    s = C.judging_summary(top, relevant, judged, run_id="r2", started=3.0)
    # base: c, d, f unjudged of 6; bm25: x, g of 4; hybrid: y, z, w, h of 6 (i judged for another run)
    assert s["unjudged_counts"] == {"base": [3, 6], "bm25": [2, 4], "hybrid": [4, 6]}
    assert s["unjudged"] == pytest.approx({"base": 0.5, "bm25": 0.5, "hybrid": 4 / 6})
    assert s["finds"] == len({"c", "d", "f", "x", "g", "y", "z", "w", "h"})
    assert s["pooled_from"] == ["base", "bm25"]  # run r1's hybrid is another system
    assert s["warning"] == ("The evaluation labels came only from the base model's and BM25's lists; 67% of the "
                            "tuned hybrid's top-10 was never judged: judge the new finds.")
    assert (s["judged_since_run"], s["relevant_since_run"]) == (1, 0)  # i, judged after the run started
    # the same finds judged for this run: every list was pooled, no warning
    judged["q1"].update({d: {"relevant": False, "found_by": ["run:r2:hybrid"], "at": 9.0} for d in "yzw"})
    s = C.judging_summary(top, relevant, judged, run_id="r2", start={"q1": judged["q1"], "q2": {"e": judged["q2"]["e"]}})
    assert s["pooled_from"] == ["base", "bm25", "hybrid"] and s["warning"] == ""
    assert s["unjudged_counts"]["hybrid"] == [1, 6] and s["judged_since_run"] == 1  # i: not in the run's copy
    # labels uploaded with the data, never judged: no share and no warning to show
    s = C.judging_summary(top, relevant, {}, run_id="r2")
    assert not s["has_judgments"] and s["warning"] == "" and s["unjudged"]["base"] == pytest.approx(4 / 6)
    # no system's list among the sources
    s = C.judging_summary(top, relevant, {"q1": {"a": {"relevant": True, "found_by": ["search"], "at": 1}}},
                          run_id="r2")
    assert s["warning"].startswith("The evaluation labels came from none of these systems' lists")


def test_record_finds_refuses_bad_marks(judged_run):
    store, ds_id, run_id = judged_run
    _, ev = store.run_data(run_id)
    q = ev.query_ids[0]
    with pytest.raises(DataError, match="Nothing to record"):
        J.record_finds(store, run_id, {})
    with pytest.raises(DataError, match="not one of this run's evaluation questions"):
        J.record_finds(store, run_id, {("nope", "d1"): True})
    with pytest.raises(DataError, match="not in this run's passages"):
        J.record_finds(store, run_id, {(q, "nope"): True})
    with pytest.raises(DataError, match="must be True or False"):
        J.record_finds(store, run_id, {(q, "d1"): "yes"})
    with pytest.raises(FileNotFoundError):
        J.unjudged_finds(store, store.create_run(ds_id, "adapter", {}))


def test_a_run_whose_dataset_was_deleted_reads_its_copy_but_records_nothing(bench_store, tmp_path):
    from core.workspace.store import Store

    store, ds_id = bench_store
    other = Store(tmp_path / "ws")
    train, ev = store.load_dataset(ds_id)
    copy_id = other.save_dataset("copy", train, ev)
    shutil.copy(store.dataset_dir(ds_id) / "judgments.json", other.dataset_dir(copy_id) / "judgments.json")
    run_id = _run(other, copy_id, SPECS["adapter"]())
    n = len(J.unjudged_finds(other, run_id))
    other.delete_dataset(copy_id)
    finds = J.unjudged_finds(other, run_id)
    assert len(finds) == n and not any(f.passage_id == WRONG for f in finds)  # the run's copy of the judgments
    with pytest.raises(DataError, match="has been deleted"):
        J.record_finds(other, run_id, {(finds[0].question_id, finds[0].passage_id): True})


def test_a_best_chosen_on_the_evaluation_questions_is_chosen_again(bench_store):
    from core.tuning.spec import Scoring
    from tests.retrieval.test_fairness import TOKENS

    store, ds_id = bench_store
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=TOKENS, validation_share=0), epochs=3)
    run_id = _run(store, ds_id, spec)
    finds = J.unjudged_finds(store, run_id)
    J.record_finds(store, run_id, {(f.question_id, f.passage_id): True for f in finds[:4]})
    before, after = J.rescore_run(store, run_id)
    assert before.best.chosen_on == after.best.chosen_on == "evaluation"
    assert after.best.scores == pytest.approx({r: s.metrics["nDCG@10"] for r, s in after.systems.items()})
    assert after.best.scores != pytest.approx(before.best.scores)


def test_shares_read_the_same_everywhere_and_never_round_a_share_to_nothing():
    assert C.fmt_share(0) == "0%" and C.fmt_share(0.005) == "0.5%" and C.fmt_share(0.0002) == "<0.1%"
    assert C.fmt_share(4 / 6) == "67%" and C.fmt_share(0.02) == "2.0%"

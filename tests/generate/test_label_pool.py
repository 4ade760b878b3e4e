"""The labelling bench's blind pool, keyword search and judgments (core, no Streamlit).

Most tests pool fake rankers (fixed lists), so what each system found is known exactly; one test
pools the real base model and BM25."""

from __future__ import annotations

import json
import stat

import pytest

from core.dataset import DataError, QADataset
from core.generate.judgments import FILE, drop_judgments, judged_ids, load_judgments, record_judgments
from core.generate.labels import (
    POOL_DEPTH,
    CandidatePool,
    add_label,
    dense_ranker,
    earlier_label,
    remove_label,
    save_label,
)
from core.workspace.store import Store

N = 100  # passages of the fake collection
WORDS = ["pump", "valve", "hose", "filter", "cylinder", "seal", "cooler", "motor", "reservoir", "gearbox"]


def collection() -> dict[str, str]:
    return {f"p{i:03d}": f"The {WORDS[i % 10]} of unit {i} needs care number {i // 10}." for i in range(N)}


def ranker(ids: list[str]):
    """A fake system: always the same ranking, cut at the depth asked."""
    return lambda question, depth: ids[:depth]


A = [f"p{i:03d}" for i in range(N)]  # system "a": p000, p001, ...
B = [f"p{i:03d}" for i in reversed(range(N))]  # system "b": p099, p098, ...
C = [f"p{i:03d}" for i in range(0, N, 2)]  # system "c": even ids, overlapping "a"


def fake_pool(**more) -> CandidatePool:
    ps = collection()
    return CandidatePool(ps, {p: f"doc.txt #{i}" for i, p in enumerate(ps)},
                         {"a": ranker(A), "b": ranker(B), "c": ranker(C), **more})


def test_pool_holds_each_systems_top_n_once_with_who_found_it():
    pool = fake_pool().pool("How is the pump of unit 3 serviced?")
    ids = [c.passage_id for c in pool.candidates]
    assert len(ids) == len(set(ids))  # de-duplicated
    for name, ranking in (("a", A), ("b", B), ("c", C)):
        assert set(ranking[:POOL_DEPTH]) <= set(ids), name
    bm25 = fake_pool().bm25.search(["How is the pump of unit 3 serviced?"], POOL_DEPTH)[0][0]
    assert bm25 and set(bm25) <= set(ids)  # BM25 is always one of the systems
    assert set(ids) == set(A[:20]) | set(B[:20]) | set(C[:20]) | set(bm25)
    by_id = {c.passage_id: c for c in pool.candidates}
    # p000: first for "a" and "c"; p002: 3rd of "a", 2nd of "c"; p099: first of "b" only
    assert by_id["p000"].ranks.get("a") == 1 and by_id["p000"].ranks.get("c") == 1
    assert by_id["p002"].ranks["a"] == 3 and by_id["p002"].ranks["c"] == 2
    assert "a" not in by_id["p099"].ranks and by_id["p099"].ranks["b"] == 1
    assert by_id["p099"].found_by == sorted(by_id["p099"].ranks) and "more" not in by_id["p099"].found_by
    assert by_id["p001"].found_by[:1] == ["a"] and "c" not in by_id["p001"].found_by  # odd: not in "c"
    assert by_id["p000"].text == collection()["p000"] and by_id["p000"].source == "doc.txt #0"
    assert pool.depth == POOL_DEPTH and pool.more


def test_pool_order_is_stable_per_question_and_reveals_no_system():
    search = fake_pool()
    questions = [f"What does the {w} of unit {i} need?" for i, w in enumerate(WORDS * 2)]
    firsts = {name: 0 for name in ("a", "b", "c")}
    positions = []
    for q in questions:
        pool = search.pool(q)
        assert [c.passage_id for c in pool.candidates] == [c.passage_id for c in search.pool(q).candidates]
        ids = [c.passage_id for c in pool.candidates]
        for name, ranking in (("a", A), ("b", B), ("c", C)):
            firsts[name] += ids[0] == ranking[0]
        positions.append(ids.index("p000"))
    # no system's top-1 is always shown first: across 20 questions it leads about 1 time in 40
    assert all(n < len(questions) // 2 for n in firsts.values()), firsts
    assert len(set(positions)) > 5  # a system's top passage lands anywhere
    # the same words (case, punctuation) give the same order; other words another one
    same = [c.passage_id for c in search.pool("WHAT does the pump of unit 0 need").candidates]
    assert same == [c.passage_id for c in search.pool(questions[0]).candidates]


def test_show_more_extends_the_pool_and_keeps_what_was_shown():
    search = fake_pool()
    q = "Which gasket fits?"  # no word of the collection: BM25 finds nothing
    first, second = search.pool(q), search.pool(q, 2 * POOL_DEPTH)
    a, b = [c.passage_id for c in first.candidates], [c.passage_id for c in second.candidates]
    assert b[:len(a)] == a and len(b) > len(a)  # the first page stays in place, new ones follow
    assert set(b) == set(A[:40]) | set(B[:40]) | set(C[:40])
    by_id = {c.passage_id: c for c in second.candidates}
    assert by_id["p025"].page == 2 and by_id["p025"].found_by == ["a", "more"]  # rank 26 of "a" only
    assert by_id["p030"].ranks == {"a": 31, "c": 16} and by_id["p030"].page == 1  # "c" had it on page 1
    assert by_id["p030"].found_by == ["a", "c"]
    assert second.depth == 40 and search.pool(q, 25).depth == 40  # rounded up to whole pages
    everything = search.pool(q, N)
    assert len(everything.candidates) == N and not everything.more  # nothing left to show


def test_extra_system_is_pooled_under_its_name():
    import numpy as np

    from core.retrieval.index import DenseIndex

    ps = collection()
    ids = list(ps)
    vectors = np.eye(N, dtype=np.float32)  # passage i points along axis i
    tuned = dense_ranker(DenseIndex(ids, vectors), lambda q: np.eye(N, dtype=np.float32)[77])
    shared = fake_pool()
    search = shared.with_systems({"tuned:run-1": tuned})
    by_id = {c.passage_id: c for c in search.pool("anything at all").candidates}
    assert by_id["p077"].ranks["tuned:run-1"] == 1 and "tuned:run-1" in by_id["p077"].found_by
    assert "tuned:run-1" not in shared.systems and search.bm25 is shared.bm25  # the shared pool is unchanged
    with pytest.raises(ValueError, match="cannot name a system"):
        shared.with_systems({"search": tuned})


def test_keyword_search_reaches_every_passage():
    search = fake_pool()
    hits = search.keyword("reservoir unit 58")
    assert hits and hits[0].passage_id == "p058" and hits[0].found_by == ["search"]
    assert len(hits) <= 10 and all("reservoir" in h.text or "58" in h.text for h in hits)
    assert search.keyword("zeppelin") == [] and search.keyword("  ") == []
    assert search.pool("   ").candidates == []


# --------------------------------------------------------------------------- judgments


@pytest.fixture
def store_ds(tmp_path):
    store = Store(tmp_path / "ws")
    ps = collection()
    return store, store.save_dataset("c", QADataset({}, ps, {}), meta={"kind": "collection"})


def test_judgments_are_recorded_merged_and_kept_owner_only(store_ds):
    store, ds = store_ds
    assert load_judgments(store, ds) == {}
    record_judgments(store, ds, "label-00001", {"p001": (True, ["bm25"]), "p002": (False, ["base"])})
    record_judgments(store, ds, "label-00001", {"p002": (True, ["search"]), "p003": (False, ["base", "more"])})
    j = load_judgments(store, ds)
    assert judged_ids(j, "label-00001") == {"p001", "p002", "p003"} and judged_ids(j, "other") == set()
    assert j["label-00001"]["p002"]["relevant"] is True  # the later judgment replaces the earlier one
    assert j["label-00001"]["p002"]["found_by"] == ["base", "search"]  # how it was found accumulates
    assert j["label-00001"]["p001"] == {"relevant": True, "found_by": ["bm25"], "at": j["label-00001"]["p001"]["at"]}
    record_judgments(store, ds, "label-00001", {"p002": (False, ["base"])})  # and back, if the expert says so
    assert load_judgments(store, ds)["label-00001"]["p002"]["relevant"] is False
    path = store.dataset_dir(ds) / FILE
    assert json.loads(path.read_text())["label-00001"]["p003"]["found_by"] == ["base", "more"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    drop_judgments(store, ds, "label-00001")
    assert load_judgments(store, ds) == {}


def test_bad_judgments_are_refused_with_a_message(store_ds):
    store, ds = store_ds
    for bad in ({"p1": ("yes", ["bm25"])}, {"p1": (True, "bm25")}, {"": (True, ["bm25"])}, {"p1": (True,)},
                {"p1": (True, [""])}):
        with pytest.raises(DataError, match="judgment"):
            record_judgments(store, ds, "q", bad)
    with pytest.raises(DataError, match="question's id"):
        record_judgments(store, ds, " ", {"p1": (True, [])})
    with pytest.raises(KeyError):
        load_judgments(store, "ds-missing")
    (store.dataset_dir(ds) / FILE).write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_judgments(store, ds)
    (store.dataset_dir(ds) / FILE).write_text("[1, 2]")
    with pytest.raises(DataError, match="does not hold judgments"):
        load_judgments(store, ds)


def test_save_label_records_shown_and_not_ticked_as_not_relevant(store_ds):
    store, ds = store_ds
    search = fake_pool()
    q = "Which care does the pump of unit 0 need?"
    shown = {c.passage_id: c.found_by for c in search.pool(q).candidates}
    shown["p058"] = ["search"]
    qid, not_relevant = save_label(store, ds, q, shown, ["p000", "p058"])
    _, ev = store.load_dataset(ds)
    assert ev.relevant_docs[qid] == ["p000", "p058"] and ev.origins[qid] == "human"
    j = load_judgments(store, ds)[qid]
    assert set(j) == set(shown) and not_relevant == len(shown) - 2
    assert j["p000"]["relevant"] and j["p058"]["relevant"] and j["p058"]["found_by"] == ["search"]
    assert j["p000"]["found_by"] == shown["p000"] and "a" in j["p000"]["found_by"]
    assert not any(v["relevant"] for p, v in j.items() if p not in ("p000", "p058"))
    # the same question again: the label's passages come back ticked, with how they were found
    assert earlier_label(ev, load_judgments(store, ds), "which care does the PUMP of unit 0 need") == {
        "p000": shown["p000"], "p058": ["search"]}
    assert earlier_label(ev, {}, "another question") == {} and earlier_label(None, {}, q) == {}
    qid2, _ = save_label(store, ds, q, {"p000": shown["p000"], "p058": ["search"]}, ["p058"])
    assert qid2 == qid and store.load_dataset(ds)[1].relevant_docs[qid] == ["p058"]
    assert load_judgments(store, ds)[qid]["p000"]["relevant"] is False  # unticked this time
    # an old label without judgments: its passages are 'earlier'
    add_label(store, ds, "Where is the hose of unit 2?", ["p002"])
    _, ev = store.load_dataset(ds)
    assert earlier_label(ev, load_judgments(store, ds), "Where is the hose of unit 2?") == {"p002": ["earlier"]}
    # bad input writes nothing
    with pytest.raises(DataError, match="not in this collection"):
        save_label(store, ds, "New question?", {"p001": ["a"], "nope": ["b"]}, ["p001"])
    with pytest.raises(DataError, match="list of names"):
        save_label(store, ds, "New question?", {"p001": "a"}, ["p001"])
    with pytest.raises(DataError, match="Tick at least one"):
        save_label(store, ds, "New question?", {"p001": ["a"]}, [])
    assert "New question?" not in store.load_dataset(ds)[1].queries.values()
    # removing a label drops its judgments
    remove_label(store, ds, qid)
    assert qid not in load_judgments(store, ds)


def test_real_pool_of_base_model_and_bm25(model):
    from core.generate.labels import CandidateSearch
    from tests.generate.test_generate_job import passages

    ps = passages()
    before = model.max_seq_length
    search = CandidateSearch(ps, {p: f"manual.pdf p.{i}" for i, p in enumerate(ps)}, model)
    pool = search.pool("Which seal kit does the gearbox on line 10 need?")
    assert sorted(c.passage_id for c in pool.candidates) == sorted(ps)  # 12 passages < 20: all of them
    by_id = {c.passage_id: c for c in pool.candidates}
    assert by_id["p10"].ranks == {"base": 1, "bm25": 1} and by_id["p10"].found_by == ["base", "bm25"]
    assert by_id["p10"].source == "manual.pdf p.10" and by_id["p10"].text == ps["p10"]
    assert not pool.more
    assert model.max_seq_length == before  # a shared model is left as it was
    assert search.keyword("gearbox")[0].passage_id == "p10"

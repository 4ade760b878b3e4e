"""Tests for core.ingest.splits: determinism, grouping modes, leakage report, refusals."""

from __future__ import annotations

import pytest

from core.dataset import DataError, QADataset
from core.ingest.splits import NEAR_DUPLICATE_THRESHOLD, leakage_report, split_dataset

TOPICS = [
    "revenue", "margin", "debt", "cash flow", "headcount", "risk factors", "litigation", "dividends",
    "buybacks", "segments", "taxes", "leases", "goodwill", "inventory", "pensions", "auditors",
    "customers", "suppliers", "patents", "competition",
]  # fmt: skip


def make_ds(n_passages: int = 20, per_passage: int = 2, sources: bool = False) -> QADataset:
    """``n_passages`` passages, each relevant to ``per_passage`` distinct questions."""
    queries, corpus, rel, neg, src = {}, {}, {}, {}, {}
    for p in range(n_passages):
        d = f"d{p:03d}"
        corpus[d] = f"Passage about {TOPICS[p % len(TOPICS)]} number {p}."
        if sources:
            src[d] = f"report{p // 4}.pdf"
        for k in range(per_passage):
            q = f"q{p:03d}_{k}"
            queries[q] = f"Question {k} {'xyz' * k} on topic {p}: {TOPICS[(p * 7 + k) % len(TOPICS)]}?"
            rel[q] = [d]
            neg[q] = [f"d{(p + 1) % n_passages:03d}"]
    return QADataset(queries, corpus, rel, neg, src)


def passages_of(ds: QADataset) -> set[str]:
    return {d for q in ds.query_ids for d in ds.relevant_docs[q]}


def test_split_is_deterministic_for_a_seed():
    ds = make_ds()
    a = split_dataset(ds, seed=7)
    b = split_dataset(ds, seed=7)
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    c = split_dataset(ds, seed=8)
    assert set(c[1].queries) != set(a[1].queries)


def test_split_by_query_sizes_and_corpora():
    ds = make_ds()
    train, evald, rep = split_dataset(ds, eval_fraction=0.25, seed=1)
    assert (rep.n_train_queries, rep.n_eval_queries) == (30, 10)
    assert set(train.queries).isdisjoint(evald.queries)
    assert set(train.queries) | set(evald.queries) == set(ds.queries)
    assert evald.corpus == ds.corpus  # eval judged against everything
    wanted = {d for q in train.queries for d in ds.relevant_docs[q] + ds.negatives[q]}
    assert set(train.corpus) == wanted
    assert rep.by == "query" and rep.seed == 1 and rep.eval_fraction == 0.25
    assert rep.shared_passages == len(passages_of(train) & passages_of(evald))


def test_split_by_passage_keeps_each_passage_on_one_side():
    ds = make_ds(per_passage=3)
    # chain d000 and d001 through one question: the chain must stay together too
    ds.relevant_docs["q000_0"] = ["d000", "d001"]
    for seed in range(5):
        train, evald, rep = split_dataset(ds, seed=seed, by="passage")
        assert passages_of(train).isdisjoint(passages_of(evald))
        assert rep.shared_passages == 0
        together = {q for q in ds.queries if q.startswith(("q000", "q001"))}
        assert together <= set(train.queries) or together <= set(evald.queries)


def test_split_by_document_groups_sources():
    ds = make_ds(sources=True)
    train, evald, rep = split_dataset(ds, by="document", seed=3)
    src = lambda d: ds.sources[d]  # noqa: E731
    assert {src(d) for d in passages_of(train)}.isdisjoint({src(d) for d in passages_of(evald)})
    assert rep.by == "document" and rep.notes == []


def test_split_by_document_without_sources_falls_back_to_passage():
    train, evald, rep = split_dataset(make_ds(), by="document")
    assert rep.by == "passage"
    assert "groups by passage" in rep.notes[0]
    assert passages_of(train).isdisjoint(passages_of(evald))


def test_exact_duplicate_questions_kept_on_one_side_and_reported_between_files():
    ds = make_ds()
    ds.queries["q005_1"] = ds.queries["q005_0"].upper() + "!!"  # same after normalisation
    for seed in range(5):
        train, evald, rep = split_dataset(ds, seed=seed)
        assert rep.exact_duplicates == []
        assert ("q005_0" in train.queries) == ("q005_1" in train.queries)
    train = ds.subset(["q005_0", "q001_0"])
    evald = ds.subset(["q005_1", "q002_0"])
    rep = leakage_report(train, evald)
    assert rep.exact_duplicates == [("q005_0", "q005_1")]
    assert rep.by == "given" and rep.seed is None


def test_near_duplicates_detected():
    train = QADataset(
        {"t1": "What was Uber's total revenue in fiscal year 2021?", "t2": "Who audits the company?"},
        {"d1": "Revenue was $17B.", "d2": "PwC audits."},
        {"t1": ["d1"], "t2": ["d2"]},
    )
    evald = QADataset(
        {"e1": "What was Uber's total revenue in fiscal year 2020?", "e2": "List the main competitors."},
        {"x1": "Revenue  was $17B.", "x2": "Lyft, DoorDash."},
        {"e1": ["x1"], "e2": ["x2"]},
    )
    rep = leakage_report(train, evald)
    assert rep.exact_duplicates == []
    assert [(a, b) for a, b, _ in rep.near_duplicates] == [("t1", "e1")]
    assert rep.near_duplicates[0][2] >= NEAR_DUPLICATE_THRESHOLD
    assert rep.shared_passages == 1  # compared by normalised text, not id
    assert "1 near-duplicate" in rep.summary()


def test_too_small_refused():
    with pytest.raises(DataError, match="Too few questions"):
        split_dataset(make_ds(n_passages=3, per_passage=1))


def test_one_big_group_refused_by_passage():
    ds = make_ds(n_passages=1, per_passage=10)
    with pytest.raises(DataError, match="Cannot split by passage"):
        split_dataset(ds, by="passage")
    split_dataset(ds, by="query")  # fine by query


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_bad_eval_fraction_refused(fraction):
    with pytest.raises(DataError, match="between 0 and 1"):
        split_dataset(make_ds(), eval_fraction=fraction)


def test_unknown_mode_refused():
    with pytest.raises(DataError, match="Unknown split mode"):
        split_dataset(make_ds(), by="random")


def test_report_to_dict_is_json_able():
    import json

    _, _, rep = split_dataset(make_ds())
    assert json.loads(json.dumps(rep.to_dict()))["n_eval_queries"] == 8


# --------------------------------------------------------------------------------------------------
# Split by document: a PDF's pages are one document


def test_source_label_and_file_round_trip():
    from core.dataset import source_file, source_label

    assert source_label("Annual report.pdf", 3) == "Annual report.pdf p.3"
    assert source_label("notes.txt", None) == "notes.txt"
    for file, page in (("Annual report.pdf", 3), ("a p.2 b.pdf", 12), ("notes.txt", None)):
        assert source_file(source_label(file, page)) == file
    assert source_file("manual.pdf p.x") == "manual.pdf p.x"  # not a page marker


def test_split_by_document_keeps_all_pages_of_a_pdf_together():
    """Questions on page 1 and page 2 of one PDF never land on different sides (they used to: the split
    grouped on the chunk label "manual.pdf p.N", one group per page)."""
    from core.ingest.chunking import load_documents
    from core.ingest.linking import link_answers
    from tests.test_documents import make_pdf

    facts = {name: [f"The {name} {topic} value is {i}{j}7 units." for j, topic in enumerate(TOPICS[:2])]
             for i, name in enumerate(("alpha", "beta", "gamma", "delta"))}  # fmt: skip
    pdf = make_pdf(["\n\n".join(facts["alpha"]), "\n\n".join(facts["beta"])])  # two pages, one file
    files = [("manual.pdf", pdf)] + [(f"{n}.txt", "\n\n".join(facts[n]).encode()) for n in ("gamma", "delta")]
    docs = load_documents(files, max_tokens=12)
    assert {c.label for c in docs.chunks if c.source == "manual.pdf"} == {"manual.pdf p.1", "manual.pdf p.2"}
    answers = {f"{n}-{j}": fact for n, fs in facts.items() for j, fact in enumerate(fs)}
    queries = {q: f"What is fact {q}?" for q in answers}
    ds, links = link_answers(queries, answers, docs.chunks)
    assert all(link.method == "exact" for link in links)
    on_pdf = {q for q in ds.queries if q.startswith(("alpha", "beta"))}
    for seed in range(20):
        train, evald, rep = split_dataset(ds, eval_fraction=0.4, seed=seed, by="document")
        assert rep.by == "document"
        assert on_pdf <= set(train.queries) or on_pdf <= set(evald.queries), seed

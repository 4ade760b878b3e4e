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
        {"t1": "What was the total revenue reported by Uber for the fiscal year 2021?", "t2": "Who audits the company?"},
        {"d1": "Revenue was $17B.", "d2": "PwC audits."},
        {"t1": ["d1"], "t2": ["d2"]},
    )
    evald = QADataset(
        {"e1": "What was the total revenues reported by Uber for the fiscal year 2021?", "e2": "List the main competitors."},
        {"x1": "Revenue  was $17B.", "x2": "Lyft, DoorDash."},
        {"e1": ["x1"], "e2": ["x2"]},
    )
    rep = leakage_report(train, evald)
    assert rep.exact_duplicates == []
    assert [(a, b) for a, b, _ in rep.near_duplicates] == [("t1", "e1")]
    assert rep.near_duplicates[0][2] >= NEAR_DUPLICATE_THRESHOLD
    assert rep.shared_passages == 1  # compared by normalised text, not id
    assert "1 near-duplicate" in rep.summary()


# Pairs worded alike (char 3-gram Jaccard >= 0.8: flagged before the rule) that ask different things.
DIFFERENT = [
    ("What share of people infected with MERS-CoV died during the outbreak?",
     "What share of people infected with SARS-CoV died during the outbreak?", "asks about mers / sars"),
    ("What is the recommended antiviral dose per kilogram of body weight for children with severe kidney failure?",
     "What is the recommended antiviral dose per kilogram of body weight for adults with severe kidney failure?",
     "asks about children / adults"),
    ("What was Uber's total revenue in fiscal year 2021?", "What was Uber's total revenue in fiscal year 2020?",
     "the number differs: 2021 / 2020"),
    ("How many employees did the company have at the end of the year?",
     "How many employees did the company have at the end of the year 2021?", "the number differs: 2021"),
    ("What did Acme report as its net revenue in the annual filing?",
     "What did the firm report as its net revenue in the annual filing?", "asks about acme / firm"),
]  # fmt: skip
# Pairs worded alike that are one question: stop words, word forms, spellings, a modifier added.
SAME = [
    # from sec-10k (train vs val): "three" left out, "automatically" added
    ("How does the number of shares available for issuance under the 2019 Plan increase each year? What are the "
     "three factors that determine the increase in shares?",
     "How does the number of shares available for issuance under the 2019 Plan automatically increase each year? "
     "What factors determine the increase in shares?"),
    ("According to the certification statement, what are the responsibilities of the certifying officers?",
     "According to the certification statement, what responsibilities do the certifying officers have?"),
    ("What was the total revenue reported by Uber for the fiscal year 2021?",
     "What was the total revenues reported by Uber for the fiscal year 2021?"),
    ("Which colour code marks the hydraulic return line on the pump?",
     "Which color code marks the hydraulic return line on the pump?"),
    ("What was Uber's total revenue in 2021?", "What was the revenue of Uber in 2021?"),
]  # fmt: skip


def _jaccard(a: str, b: str) -> float:
    from core.ingest.splits import _ngrams, _norm_question

    x, y = _ngrams(_norm_question(a)), _ngrams(_norm_question(b))
    return len(x & y) / len(x | y)


@pytest.mark.parametrize(("a", "b", "why"), DIFFERENT, ids=[w for *_, w in DIFFERENT])
def test_a_differing_number_or_swapped_subject_is_a_different_question(a, b, why):
    from core.ingest.splits import different_question

    assert _jaccard(a, b) >= NEAR_DUPLICATE_THRESHOLD  # worded alike: the similarity alone flags them
    assert different_question(a, b) == why
    assert different_question(b, a) is not None


@pytest.mark.parametrize(("a", "b"), SAME, ids=range(len(SAME)))
def test_rephrasings_stay_near_duplicates(a, b):
    from core.ingest.splits import different_question

    assert different_question(a, b) is None


def test_leakage_report_clears_different_questions_and_counts_them():
    """The issue's flags ("...MERS-CoV died?" / "...SARS-CoV died?", "...children..." / "...adults...") are gone."""
    train = QADataset({f"t{i}": a for i, (a, _, _) in enumerate(DIFFERENT)}, {"d": "text"},
                      {f"t{i}": ["d"] for i in range(len(DIFFERENT))})  # fmt: skip
    evald = QADataset({f"e{i}": b for i, (_, b, _) in enumerate(DIFFERENT)}, {"d": "text"},
                      {f"e{i}": ["d"] for i in range(len(DIFFERENT))})  # fmt: skip
    rep = leakage_report(train, evald)
    assert rep.near_duplicates == [] and rep.exact_duplicates == []
    assert rep.similar_but_different == len(DIFFERENT)


def test_a_word_found_in_most_passages_does_not_make_a_difference():
    """Swapping the collection's own subject ("Acme" in every filing) for a plain word is a rephrasing."""
    a, b, _ = DIFFERENT[-1]
    filings = {f"p{i}": f"Acme filing page {i}: net revenue and costs." for i in range(6)}
    filings.update({f"x{i}": f"Other page {i}." for i in range(4)})  # "acme" in 6 of 10 passages (> half)
    train = QADataset({"t": a}, filings, {"t": ["p0"]})
    evald = QADataset({"e": b}, filings, {"e": ["p1"]})
    assert [(t, e) for t, e, _ in leakage_report(train, evald).near_duplicates] == [("t", "e")]
    rare = {k: v.replace("Acme", "Our") if k != "p0" else v for k, v in filings.items()}  # now in 1 of 10
    train, evald = QADataset({"t": a}, rare, {"t": ["p0"]}), QADataset({"e": b}, rare, {"e": ["p1"]})
    rep = leakage_report(train, evald)
    assert rep.near_duplicates == [] and rep.similar_but_different == 1


def test_dismissed_near_duplicates_are_left_out_and_recorded():
    from core.ingest.splits import flag_key

    a, b = SAME[2]
    train = QADataset({"t": a, "t2": "Who audits?"}, {"d": "x"}, {"t": ["d"], "t2": ["d"]})
    evald = QADataset({"e": b, "e2": "Who competes?"}, {"d": "x"}, {"e": ["d"], "e2": ["d"]})
    assert len(leakage_report(train, evald).near_duplicates) == 1
    rep = leakage_report(train, evald, dismissed={flag_key(a.upper() + "  ", b)})  # keyed on normalised text
    assert rep.near_duplicates == [] and rep.dismissed == [(a, b)]
    assert "0 near-duplicate questions across sides (1 dismissed)" in rep.summary()
    ds = QADataset({**train.queries, **evald.queries}, {"d": "x", "f": "y"},
                   {"t": ["d"], "t2": ["d"], "e": ["f"], "e2": ["f"]})  # fmt: skip
    for seed in range(10):  # whichever side each lands on, a dismissed pair is never listed
        _, _, rep = split_dataset(ds, 0.5, seed, "passage", dismissed={flag_key(a, b), flag_key(b, a)})
        assert rep.near_duplicates == []


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("revenue", "revenues", True), ("child", "children", True), ("increases", "increased", True),
     ("responsibility", "responsibilities", True), ("colour", "color", True), ("organise", "organize", True),
     ("judgement", "judgment", True), ("use", "used", True), ("mers", "sars", False), ("children", "adults", False),
     ("2020", "2021", False), ("cases", "bases", False), ("uber", "lyft", False)],
)  # fmt: skip
def test_same_word(a, b, same):
    from core.retrieval.terms import same_word

    assert same_word(a, b) is same and same_word(b, a) is same


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
    from tests.ingest.test_documents import make_pdf

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

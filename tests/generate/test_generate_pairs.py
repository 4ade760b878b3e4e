"""Generated questions -> QADataset and pair file; the importer reads the pair file back."""

from __future__ import annotations

import csv
import io

import pytest

from core.generate.llm import GenerationResult
from core.generate.offline import OfflineSettings, generate_offline
from core.generate.pairs import (
    PAIR_COLUMNS,
    GeneratedQuestion,
    build_dataset,
    is_generated,
    llm_origin,
    offline_origin,
    pair_table,
    write_pair_file,
)
from core.ingest.qafiles import load_qa_file

PASSAGES = {
    "manual-p1": "The pump leaks oil when the seal is worn. Replace the seal every 500 hours.",
    "manual-p2": 'Fans start at 60 °C, "not before"; the thermostat, however, opens at 55 °C.\nSee table 3.',
    "manual-p3": "A passage nobody asked about.",
}
SOURCES = {"manual-p1": "manual.pdf p.1", "manual-p2": "manual.pdf p.2", "manual-p3": "manual.pdf p.3"}
LLM = llm_origin("qwen2.5:7b")


def questions() -> list[GeneratedQuestion]:
    return [
        GeneratedQuestion("Why does the pump leak oil?", "manual-p1", LLM),
        GeneratedQuestion("How often is the seal replaced?", "manual-p1", LLM),
        GeneratedQuestion('At what temperature, in "°C", do fans start?', "manual-p2", LLM),
    ]


def test_dataset_keeps_passage_ids_sources_and_origins():
    gs = build_dataset(questions(), PASSAGES, SOURCES)
    ds = gs.dataset
    assert ds.corpus == PASSAGES  # every passage, under its own id (unasked ones are distractors)
    assert ds.sources == SOURCES
    assert list(ds.queries) == ["gen-00001", "gen-00002", "gen-00003"]
    assert ds.relevant_docs == {
        "gen-00001": ["manual-p1"],
        "gen-00002": ["manual-p1"],
        "gen-00003": ["manual-p2"],
    }
    assert gs.origins == dict.fromkeys(ds.queries, LLM)
    assert gs.origin_counts() == {LLM: 3}
    assert len(ds) == 3 and ds.pairs()[0] == ("Why does the pump leak oil?", PASSAGES["manual-p1"])


def test_inverse_cloze_positive_gets_a_derived_id_with_the_source():
    r = generate_offline(
        PASSAGES, OfflineSettings(method="inverse_cloze", per_passage=1, ict_keep_sentence=0.0)
    )
    (ict,) = [x for x in r.questions if x.passage_id == "manual-p1"]
    gs = build_dataset(r.questions, PASSAGES, SOURCES)
    qid = next(k for k, v in gs.dataset.queries.items() if v == ict.question)
    (did,) = gs.dataset.relevant_docs[qid]
    assert did.startswith("manual-p1#ict")
    assert gs.dataset.corpus[did] == ict.positive and ict.question not in ict.positive
    assert gs.dataset.sources[did] == "manual.pdf p.1"
    assert gs.origins[qid] == "generated:offline:inverse_cloze"


def test_pair_file_columns_and_importer_round_trip():
    data = pair_table(questions(), PASSAGES, SOURCES)
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert tuple(rows[0]) == PAIR_COLUMNS
    assert rows[2] == {
        "question": 'At what temperature, in "°C", do fans start?',
        "passage": PASSAGES["manual-p2"],
        "passage_id": "manual-p2",
        "source": "manual.pdf p.2",
        "origin": LLM,
    }

    loaded = load_qa_file("generated.csv", data)
    assert not loaded.report.errors and not loaded.report.warnings
    ds = loaded.dataset
    # ids, sources and origins come back: pairs line up with an evaluation file over the same passages
    read_back = {(ds.queries[q], d, ds.origins[q]) for q in ds.query_ids for d in ds.relevant_docs[q]}
    assert read_back == {(x.question, x.passage_id, x.origin) for x in questions()}
    assert ds.corpus == {d: PASSAGES[d] for d in ("manual-p1", "manual-p2")}  # the passage asked twice: once
    assert ds.sources == {d: SOURCES[d] for d in ("manual-p1", "manual-p2")}


def test_offline_pair_file_reads_back_with_the_masked_positive(tmp_path):
    r = generate_offline(
        PASSAGES, OfflineSettings(method="inverse_cloze", per_passage=1, ict_keep_sentence=0.0)
    )
    path = write_pair_file(tmp_path / "out" / "pairs.csv", r.questions, PASSAGES, SOURCES)
    assert [p.name for p in path.parent.iterdir()] == ["pairs.csv"]  # no temp file left
    ds = load_qa_file(path.name, path.read_bytes()).dataset
    pairs = set(ds.pairs())
    assert pairs == {(x.question, x.positive) for x in r.questions}
    read_back = {(ds.queries[q], d, ds.origins[q]) for q in ds.query_ids for d in ds.relevant_docs[q]}
    assert read_back == {(x.question, x.positive_id(), x.origin) for x in r.questions}  # "manual-p1#ict..." kept


def test_llm_result_becomes_questions_with_its_origin():
    result = GenerationResult(
        questions={"manual-p1": ["Why?", "When?"], "manual-p2": ["How hot?"]}, model="m1"
    )
    qs = result.to_questions()
    assert [(x.question, x.passage_id) for x in qs] == [
        ("Why?", "manual-p1"),
        ("When?", "manual-p1"),
        ("How hot?", "manual-p2"),
    ]
    assert {x.origin for x in qs} == {"generated:llm:m1"}


def test_origins():
    assert is_generated(llm_origin("x")) and is_generated(offline_origin("crop"))
    assert not is_generated(None) and not is_generated("human")


def test_unknown_passage_id_is_refused():
    bad = [GeneratedQuestion("Why?", "missing", LLM)]
    with pytest.raises(ValueError, match="passage ids not in the passages: 'missing'"):
        build_dataset(bad, PASSAGES)
    with pytest.raises(ValueError, match="passage ids not in the passages"):
        pair_table(bad, PASSAGES)


def test_join_keeps_derived_positives_out_of_the_searched_passages(tmp_path):
    """A pair file of 'sentence as question' pairs joined with an evaluation file over the same passages
    (``join_train_eval``: the CLI's --train/--eval and the Data page's train + eval files): the cut passages are
    trained on, and the evaluation searches exactly the evaluation file's passages (issue 26)."""
    from core.dataset import QADataset, _doc_key, derived_from, derived_ids, join_train_eval

    r = generate_offline(PASSAGES, OfflineSettings(method="inverse_cloze", per_passage=1, ict_keep_sentence=0.0))
    path = write_pair_file(tmp_path / "pairs.csv", r.questions, PASSAGES, SOURCES)
    train = load_qa_file(path.name, path.read_bytes()).dataset
    ev = QADataset({"e1": "Why does the pump leak?"}, dict(PASSAGES), {"e1": ["manual-p1"]}, sources=dict(SOURCES))
    cut = {x.positive_id() for x in r.questions}
    assert cut and derived_ids(train, ev) == cut
    tr, joined = join_train_eval(train, ev)
    assert sorted(joined.corpus.values()) == sorted(PASSAGES.values())  # no altered copy searched
    assert set(joined.corpus) == {_doc_key(t) for t in PASSAGES.values()}
    assert {x.positive for x in r.questions} <= set(tr.corpus.values())  # still trained on
    assert set(tr.pairs()) == {(x.question, x.positive) for x in r.questions}
    # each cut copy keeps its link to the passage it came from (the validation hold-out scores against that)
    links = {tr.corpus[d]: derived_from(d, joined.corpus) for d in tr.corpus}
    assert {x.positive: _doc_key(PASSAGES[x.passage_id]) for x in r.questions} == links
    # An id that only contains '#' is a passage; a training file's own passages are still searched.
    assert derived_from("manual.pdf#chunk3", {"manual.pdf#chunk2"}) is None
    assert derived_from("manual-p1#ict1", PASSAGES) == "manual-p1"
    extra = QADataset({"t1": "q?"}, {"other.pdf#chunk3": "A passage only the training file has."}, {"t1": ["other.pdf#chunk3"]})
    _, joined = join_train_eval(extra, ev)
    assert "A passage only the training file has." in joined.corpus.values() and len(joined.corpus) == 4


def test_two_cut_copies_that_read_the_same_stay_cut_copies(tmp_path):
    """Overlapping passages (a collection of joined windows: the measured 'long' collection gave 2 such) can give two
    cut copies the same text. The pair file gives that text one id, so the reader does not hand it a new one
    ('d0001', no link to its passage) and the evaluation searches exactly the collection: 395 passages, not 397."""
    from core.dataset import QADataset, join_train_eval

    shared = "Beta valves close at dawn every day. Gamma pumps idle until noon every day."
    ps = {"w1": "Alpha crews check the seals at night. " + shared, "w2": "Delta crews check the hoses at night. " + shared,
          "w3": shared}
    r = generate_offline(ps, OfflineSettings(method="inverse_cloze", per_passage=3, ict_keep_sentence=0.0))
    same = [x for x in r.questions if x.positive == shared]
    assert {x.passage_id for x in same} == {"w1", "w2"}  # w1's and w2's first sentence cut: the same text
    path = write_pair_file(tmp_path / "pairs.csv", r.questions, ps)
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    ids = {}
    for row in rows:
        ids.setdefault(row["passage"], set()).add(row["passage_id"])
    assert all(len(v) == 1 for v in ids.values())  # one id per text
    assert ids[shared] == {"w3"}  # the collection's own passage with that text wins over a cut copy's id
    loaded = load_qa_file(path.name, path.read_bytes())
    assert not [p for p in loaded.report.problems if "not unique" in p.message]
    ev = QADataset({"e1": "When do the valves close?"}, dict(ps), {"e1": ["w1"]})
    tr, joined = join_train_eval(loaded.dataset, ev)
    assert sorted(joined.corpus.values()) == sorted(ps.values())  # exactly the collection is searched
    assert {x.positive for x in r.questions if x.positive} <= set(tr.corpus.values())  # every cut copy trained on

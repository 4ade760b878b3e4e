"""Rows of a pair table -> dataset (core.ingest.pairs): ids by first-seen text, de-duplication, every bad row
reported (and capped), given passage ids kept when unique, answer files, origins."""

from __future__ import annotations

import math

import pytest

from core.dataset import DataError
from core.ingest.pairs import PairRows, as_texts, norm_ws, pairs_to_dataset
from core.ingest.report import MAX_LISTED, ColumnMapping, Problem

QP = ColumnMapping("question", "passage")


def _rows(*dicts: dict) -> list[tuple[str, dict]]:
    return [(f"row {i}", d) for i, d in enumerate(dicts, start=2)]


def _messages(problems: list[Problem]) -> list[str]:
    return [p.message for p in problems]


@pytest.mark.parametrize(("value", "texts"), [
    (None, []), ("a", ["a"]), (True, ["True"]), (3, ["3"]), (2.5, ["2.5"]), (math.nan, []),
    (["a", ["b", None, 1]], ["a", "b", "1"]), ({"text": ["x", "y"], "answer_start": [0, 4]}, ["x", "y"]),
    ({"k": "v"}, ['{"k": "v"}']),
])
def test_cell_values_become_texts(value, texts):
    assert as_texts(value) == texts


def test_norm_ws_collapses_whitespace():
    assert norm_ws("  a\n\tb   c ") == "a b c"


def test_rows_become_a_dataset_with_ids_in_first_seen_order_and_texts_deduplicated_by_whitespace():
    problems: list[Problem] = []
    out = pairs_to_dataset(_rows(
        {"question": "Why does the pump leak?", "passage": "Seals wear out."},
        {"question": "Why  does the pump leak? ", "passage": "Check the hose."},  # same question, 2nd passage
        {"question": "What is a valve?", "passage": " Seals  wear out. "},  # same passage text
    ), QP, problems)
    assert isinstance(out, PairRows)
    ds = out.dataset
    assert ds.queries == {"q0001": "Why does the pump leak?", "q0002": "What is a valve?"}
    assert ds.corpus == {"d0001": "Seals wear out.", "d0002": "Check the hose."}
    assert ds.relevant_docs == {"q0001": ["d0001", "d0002"], "q0002": ["d0001"]}
    assert out.where_of == {"d0001": "row 2", "d0002": "row 3"}
    assert problems == [] and out.answers == {} and ds.answers == {}


def test_blank_cells_and_repeated_rows_are_skipped_with_a_warning_each():
    problems: list[Problem] = []
    ds = pairs_to_dataset(_rows(
        {"question": "q one", "passage": "p one"},
        {"question": "", "passage": "p two"},
        {"question": "q three", "passage": "   "},
        {"question": None, "passage": None},
        {"question": "q one", "passage": "p one"},
    ), QP, problems).dataset
    assert len(ds) == 1 and list(ds.corpus.values()) == ["p one"]
    assert _messages(problems) == [
        "Row 3: the question cell ('question') is empty; the row was skipped. Fill it in or delete the row.",
        "Row 4: the passage cell ('passage') contains only spaces; the row was skipped. Fill it in or delete the row.",
        "Row 5: the question cell ('question') is empty and the passage cell ('passage') is empty; the row was "
        "skipped. Fill it in or delete the row.",
        "Row 6 repeats row 2 (same question and passage); kept once.",
    ]
    assert all(p.level == "warning" for p in problems) and problems[0].where == "row 3"


def test_a_repeated_row_with_a_new_negative_is_kept_and_a_negative_that_is_a_positive_is_dropped():
    m = ColumnMapping("question", "passage", negative="neg")
    problems: list[Problem] = []
    ds = pairs_to_dataset(_rows(
        {"question": "q", "passage": "right", "neg": "wrong a"},
        {"question": "q", "passage": "right", "neg": "wrong b"},  # adds a negative: not a repeat
        {"question": "q", "passage": "right", "neg": "wrong a"},  # adds nothing: a repeat
        {"question": "r", "passage": "other", "neg": "other"},  # its negative is its positive
    ), m, problems).dataset
    ids = {t: d for d, t in ds.corpus.items()}
    assert ds.negatives == {"q0001": [ids["wrong a"], ids["wrong b"]]}
    assert _messages(problems) == [
        "Row 4 repeats row 2 (same question and passage); kept once.",
        "Query q0002 (row 5): a negative is also given as a relevant passage for the same question; it was "
        "dropped from the negatives.",
    ]


def test_warnings_of_one_kind_are_capped_with_a_count_of_the_rest():
    problems: list[Problem] = []
    rows = _rows({"question": "q", "passage": "p"}, *[{"question": "", "passage": f"p{i}"} for i in range(MAX_LISTED + 5)])
    pairs_to_dataset(rows, QP, problems)
    assert len(problems) == MAX_LISTED + 1
    assert problems[-1].message == "... and 5 more rows with empty cells."


def test_no_usable_row_is_refused_with_what_each_row_needs():
    with pytest.raises(DataError, match="No usable rows: every row was skipped") as exc:
        pairs_to_dataset(_rows({"question": "", "passage": ""}), QP, [])
    assert "Each row needs a question and a passage." in str(exc.value)
    with pytest.raises(DataError, match="Each row needs a question and a answer"):
        pairs_to_dataset(_rows({"question": "q", "answer": " "}), ColumnMapping("question", None, answer="answer"), [])


def test_given_passage_ids_are_kept_when_unique_and_replaced_with_a_warning_when_not():
    m = ColumnMapping("question", "passage", passage_id="pid")
    problems: list[Problem] = []
    ds = pairs_to_dataset(_rows(
        {"question": "q1", "passage": "alpha", "pid": "doc-7"},
        {"question": "q2", "passage": "beta", "pid": "d0001"},  # a given id that looks like a generated one
        {"question": "q3", "passage": "gamma", "pid": "shared"},
        {"question": "q4", "passage": "delta", "pid": "shared"},  # one id for two passages
        {"question": "q5", "passage": "eps"},  # no id given
    ), m, problems).dataset
    ids = {t: d for d, t in ds.corpus.items()}
    assert ids["alpha"] == "doc-7" and ids["beta"] == "d0001"
    # new ids in first-seen order, skipping every id the table uses (d0001 is taken)
    assert (ids["gamma"], ids["delta"], ids["eps"]) == ("d0002", "d0003", "d0004")
    assert _messages(problems) == [
        "Row 4: its id 'shared' is also given to another passage; the passage got a new id.",
        "Row 5: its id 'shared' is also given to another passage; the passage got a new id.",
    ]
    assert sorted(ds.relevant_docs) == ["q0001", "q0002", "q0003", "q0004", "q0005"]


def test_a_passage_given_two_ids_gets_a_new_one():
    m = ColumnMapping("question", "passage", passage_id="pid")
    problems: list[Problem] = []
    ds = pairs_to_dataset(_rows({"question": "q1", "passage": "alpha", "pid": "a"},
                                {"question": "q2", "passage": "alpha", "pid": "b"}), m, problems).dataset
    assert list(ds.corpus) == ["d0001"]
    assert _messages(problems) == ["Row 2: it is given several ids ('a', 'b'); the passage got a new id."]


def test_sources_answers_and_origins_next_to_a_passage():
    m = ColumnMapping("question", "passage", answer="answer", source="src", origin="origin")
    problems: list[Problem] = []
    ds = pairs_to_dataset(_rows(
        {"question": "q1", "passage": "alpha", "answer": "A1", "src": "manual.pdf", "origin": "Expert"},
        {"question": "q2", "passage": "beta", "answer": "", "src": "", "origin": "generated (llm)"},
        {"question": "q3", "passage": "gamma", "origin": "copied from a forum"},
    ), m, problems).dataset
    assert ds.sources == {"d0001": "manual.pdf"}
    assert ds.answers == {"q0001": "A1"}
    assert ds.origins == {"q0001": "human", "q0002": "generated (llm)"}
    assert _messages(problems) == ["Row 4: origin 'copied from a forum' is neither 'human' nor 'generated...'; "
                                   "it was not recorded."]


def test_an_answer_file_gives_questions_answers_and_documents_with_conflicts_reported():
    m = ColumnMapping("question", None, answer="answer", source="doc")
    problems: list[Problem] = []
    out = pairs_to_dataset(_rows(
        {"question": "How hot?", "answer": "80 C", "doc": "manual.pdf"},
        {"question": "How  hot?", "answer": "90 C"},  # answered differently: the first answer is kept
        {"question": "How long?", "answer": "2 h"},
        {"question": "How long?", "answer": " 2  h"},  # the same answer: a repeat
    ), m, problems)
    assert out.dataset.queries == {"q0001": "How hot?", "q0002": "How long?"}
    assert out.dataset.corpus == {} and out.dataset.answers == {}
    assert out.answers == {"q0001": "80 C", "q0002": "2 h"}
    assert out.answer_documents == {"q0001": "manual.pdf"}
    assert _messages(problems) == [
        "Row 5 repeats row 4 (same question and answer); kept once.",
        "Row 3: this question was already answered differently in row 2; the first answer is kept.",
    ]

"""Filters on generated questions: each filter on hand-made cases, the counts and the empty-result message."""

from __future__ import annotations

import numpy as np
import pytest

from core.generate.filters import (
    FilterSettings,
    filter_questions,
    longest_shared_run,
    near_duplicate_pairs,
    normalize,
    recommended_settings,
    round_trip_ranks,
)
from core.generate.pairs import GeneratedQuestion

PASSAGES = {
    "pump": "The hydraulic pump leaks oil when the shaft seal is worn; replace the seal every 500 hours.",
    "fan": "Cooling fans start when the oil temperature exceeds 60 degrees Celsius.",
    "tax": "Revenue in fiscal 2021 was 4.2 billion dollars, up 8 percent from 2020.",
}
OFF = {"round_trip": False, "exact_duplicates": False, "near_duplicates": False, "max_copy_words": 0}


def q(text: str, pid: str = "pump") -> GeneratedQuestion:
    return GeneratedQuestion(text, pid, "generated:llm:test")


def test_length_limits():
    qs = [q("Seal?"), q("Why does it leak?"), q(" ".join(["word"] * 12) + "?")]
    r = filter_questions(qs, PASSAGES, FilterSettings(min_words=3, max_words=10, **OFF))
    assert [v.kept for v in r.verdicts] == [False, True, False]
    assert r.verdicts[0].reasons == ["too_short"] and r.verdicts[0].notes == ["1 word (min 3)"]
    assert r.verdicts[2].reasons == ["too_long"] and r.verdicts[2].notes == ["12 words (max 10)"]
    unlimited = filter_questions(qs, PASSAGES, FilterSettings(min_words=0, max_words=0, **OFF))
    assert unlimited.n_kept == 3


def test_copy_filter_counts_consecutive_words_ignoring_case_and_punctuation():
    assert longest_shared_run("Why, says the PUMP leaks oil when the shaft seal?", PASSAGES["pump"]) == 7
    assert longest_shared_run("Unrelated words entirely", PASSAGES["pump"]) == 0
    qs = [
        q("Does the hydraulic pump leak oil when the shaft seal is worn?"),  # "oil when ... worn": 7 words
        q("The hydraulic pump leaks oil when the shaft seal is worn, right?"),  # "The ... worn": 11 words
    ]
    r = filter_questions(qs, PASSAGES, FilterSettings(**{**OFF, "max_copy_words": 11}))
    assert [v.copied_words for v in r.verdicts] == [7, 11]
    assert [v.kept for v in r.verdicts] == [True, False]  # at the limit: dropped
    assert r.verdicts[1].notes == ["copies 11 words of its passage (limit 11)"]
    assert filter_questions(qs, PASSAGES, FilterSettings(**{**OFF, "max_copy_words": 12})).n_kept == 2


def test_round_trip_ranks_match_brute_force():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(50, 8)).astype(np.float32)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    qv = rng.normal(size=(30, 8)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    own = rng.integers(0, 50, size=30)
    expected = [1 + sum(float(qv[i] @ p[j]) > float(qv[i] @ p[own[i]]) for j in range(50)) for i in range(30)]
    assert round_trip_ranks(qv, p, own).tolist() == expected
    assert round_trip_ranks(p[:5], p, [0, 1, 2, 3, 4]).tolist() == [1] * 5


def test_round_trip_with_given_vectors_and_k():
    # Passages along the axes; question 0 points at its own passage, question 1 at another one first.
    pv = np.eye(3, dtype=np.float32)
    qv = np.array([[1, 0, 0], [0.8, 0.6, 0]], dtype=np.float32)
    qs = [q("Why does the pump leak?", "pump"), q("When do the fans start?", "fan")]
    strict = filter_questions(
        qs,
        PASSAGES,
        FilterSettings(**{**OFF, "round_trip": True, "round_trip_k": 1}),
        question_vectors=qv,
        passage_vectors=pv,
    )
    assert [v.rank for v in strict.verdicts] == [1, 2]
    assert [v.kept for v in strict.verdicts] == [True, False]
    assert strict.verdicts[1].notes == ["own passage ranked 2 by the base model (needs top 1)"]
    loose = filter_questions(
        qs,
        PASSAGES,
        FilterSettings(**{**OFF, "round_trip": True, "round_trip_k": 2}),
        question_vectors=qv,
        passage_vectors=pv,
    )
    assert loose.n_kept == 2 and loose.round_trip_ran


def test_round_trip_with_the_base_model(model):
    qs = [
        q("Why is my hydraulic pump leaking oil?", "pump"),
        q("At what temperature do the cooling fans start?", "pump"),
    ]  # written for the wrong passage
    r = filter_questions(
        qs, PASSAGES, FilterSettings(**{**OFF, "round_trip": True, "round_trip_k": 1}), model=model
    )
    assert [v.kept for v in r.verdicts] == [True, False]
    assert r.verdicts[1].rank > 1


def test_round_trip_needs_vectors_or_a_model():
    with pytest.raises(ValueError, match="needs question and passage vectors, or a model"):
        filter_questions([q("Why does the pump leak?")], PASSAGES, FilterSettings())
    with pytest.raises(ValueError, match="point to passages not given"):
        filter_questions([q("Why?", "nowhere")], PASSAGES, FilterSettings(**OFF))


def test_exact_and_near_duplicates():
    qs = [
        q("What was the total revenue in 2021?", "tax"),
        q("what was the total revenue in 2021", "tax"),  # exact after normalisation
        q("What was the total revenues in 2021?", "tax"),  # near (one letter)
        q("What was the total revenue in 2020?", "tax"),  # near in characters, but another year: kept
        q("Who is the CEO of the company?", "tax"),
        q("Who is the CFO of the company?", "tax"),  # 0.79 < 0.8: kept
    ]
    r = filter_questions(
        qs, PASSAGES, FilterSettings(**{**OFF, "exact_duplicates": True, "near_duplicates": True})
    )
    assert [v.kept for v in r.verdicts] == [True, False, False, True, True, True]
    assert r.verdicts[1].reasons == ["exact_duplicate"] and r.verdicts[1].duplicate_of == 0
    assert r.verdicts[1].notes == ["same as question 1"]
    assert r.verdicts[2].reasons == ["near_duplicate"] and r.verdicts[2].duplicate_of == 0


def test_a_duplicate_of_a_dropped_question_is_kept():
    qs = [q("Why does it leak?"), q("Why does it leak?", "fan")]
    r = filter_questions(
        qs,
        PASSAGES,
        FilterSettings(**{**OFF, "round_trip": True, "round_trip_k": 1, "exact_duplicates": True}),
        question_vectors=np.array([[0, 1, 0], [0, 1, 0]], dtype=np.float32),
        passage_vectors=np.eye(3, dtype=np.float32),
    )
    assert r.verdicts[0].reasons == ["round_trip"]  # asked of "pump", finds "fan"
    assert r.verdicts[1].kept  # same text, but the first one is gone


def test_near_duplicate_pairs_on_normalised_text():
    texts = [normalize(t) for t in ["What is the pump?", "What is the pumps?", "Something else entirely"]]
    assert near_duplicate_pairs(texts, 0.8) == {1: [0]}
    assert near_duplicate_pairs(texts[:1], 0.8) == {}


def test_counts_add_up_and_summary():
    qs = [
        q("Seal?"),  # too short
        q("What was the total revenue in 2021?", "tax"),
        q("What was the total revenue in 2021?", "tax"),  # duplicate
        q("When do the fans start?", "fan"),
        q("Seal? " + " ".join(["x"] * 60)),  # too long
    ]
    r = filter_questions(qs, PASSAGES, FilterSettings(round_trip=False, max_words=50))
    f = r.funnel()
    assert f == {
        "generated": 5,
        "too_short": 1,
        "too_long": 1,
        "copies_passage": 0,
        "round_trip": 0,
        "exact_duplicate": 1,
        "near_duplicate": 0,
        "kept": 2,
    }
    assert f["generated"] == sum(v for k, v in f.items() if k != "generated")
    assert r.summary() == "5 generated, 1 too short, 1 too long, 1 duplicate, 2 kept"
    assert r.flagged()["exact_duplicate"] == 1
    assert [x.question for x in r.kept(qs)] == [
        "What was the total revenue in 2021?",
        "When do the fans start?",
    ]
    rows = r.rows(qs)
    assert rows[0]["kept"] is False and rows[0]["why"] == "1 word (min 3)" and r.explain_empty() is None


def test_zero_left_is_explained():
    qs = [q("Why does the pump leak?", "pump"), q("How hot before the fans start?", "fan")]
    pv = np.eye(3, dtype=np.float32)
    qv = np.array([[0, 0, 1], [0, 0, 1]], dtype=np.float32)  # both find "tax" first
    r = filter_questions(
        qs, PASSAGES, FilterSettings(round_trip_k=1), question_vectors=qv, passage_vectors=pv
    )
    assert r.n_kept == 0
    msg = r.explain_empty()
    assert msg.startswith(
        "No question is left after filtering: of 2 generated, 2 were dropped first as failed "
        "round-trip. To keep more, raise k (now 1) or turn the round-trip check off"
    )
    assert (
        filter_questions([], PASSAGES, FilterSettings(round_trip=False))
        .explain_empty()
        .startswith("No questions were generated")
    )


def test_recommended_settings_for_copied_spans():
    assert recommended_settings("generated:offline:crop").max_copy_words == 0
    assert recommended_settings("generated:offline:inverse_cloze").max_copy_words == 0
    assert recommended_settings("generated:llm:qwen2.5:7b") == FilterSettings()

"""The generated-question measurements (core.generate.checks): normalisation, the longest copied word run,
round-trip ranks and near-duplicate pairs, each on its own (core.generate.filters turns them into verdicts)."""

from __future__ import annotations

import numpy as np
import pytest

import core.generate.checks as checks
from core.generate.checks import longest_shared_run, near_duplicate_pairs, normalize, round_trip_ranks


def test_normalize_casefolds_and_turns_punctuation_and_underscores_into_single_spaces():
    assert normalize("  What's the PUMP_pressure?!\n\tStraße ") == "what s the pump pressure strasse"
    assert normalize("...") == ""


@pytest.mark.parametrize(("question", "passage", "run"), [
    ("How does the hydraulic pump leak oil?", "The hydraulic pump leaks oil when the seal wears.", 3),
    ("WHEN THE SEAL WEARS out", "The hydraulic pump leaks oil when the seal wears.", 4),  # case-insensitive
    ("Why is it hot?", "The pump runs cold.", 0),
    ("", "anything", 0),
    ("pump", "", 0),
])
def test_longest_shared_run_counts_consecutive_words(question, passage, run):
    assert longest_shared_run(question, passage) == run


def test_round_trip_rank_is_one_plus_the_passages_scoring_strictly_higher():
    p = np.eye(4, dtype=np.float32)
    q = np.array([[1, 0, 0, 0], [0.8, 0.6, 0, 0], [0, 0, 0.6, 0.8], [0.5, 0.5, 0.5, 0.5]], dtype=np.float32)
    own = [0, 0, 2, 3]
    # q0 finds its own first; q1's own (0.8) leads; q2's own (0.6) is beaten by d3 (0.8); q3 ties all: rank 1
    assert round_trip_ranks(q, p, own).tolist() == [1, 1, 2, 1]
    assert round_trip_ranks(q, p, [1, 1, 0, 0]).tolist() == [2, 2, 3, 1]


def test_round_trip_ranks_refuse_a_question_count_mismatch():
    with pytest.raises(ValueError, match="3 question vectors for 2 questions"):
        round_trip_ranks(np.zeros((3, 4)), np.zeros((5, 4)), [0, 1])


def test_round_trip_ranks_and_near_duplicates_are_the_same_computed_in_chunks(monkeypatch):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 8)).astype(np.float32)
    p = rng.normal(size=(30, 8)).astype(np.float32)
    own = rng.integers(0, 30, size=50)
    texts = [normalize(f"how does pump {i % 7} leak {'oil' if i % 3 else 'water'}") for i in range(40)]
    whole = round_trip_ranks(q, p, own), near_duplicate_pairs(texts, 0.8)
    monkeypatch.setattr(checks, "_CHUNK_CELLS", 64)  # a few rows per chunk
    chunked = round_trip_ranks(q, p, own), near_duplicate_pairs(texts, 0.8)
    np.testing.assert_array_equal(whole[0], chunked[0])
    assert whole[1] == chunked[1] and whole[1]


def test_near_duplicates_point_to_earlier_texts_only_at_or_above_the_threshold():
    texts = [normalize(t) for t in [
        "How does the hydraulic pump leak oil?",
        "What colour is the reservoir cap?",
        "how does the hydraulic pump leak oil",  # identical once normalised: similarity 1
        "How does the hydraulic pump leak oil again?",  # close to 0 and 2
        "What colour is the reservoir cap?",
    ]]
    pairs = near_duplicate_pairs(texts, 0.7)
    assert pairs == {2: [0], 3: [0, 2], 4: [1]}
    assert near_duplicate_pairs(texts, 1.0) == {2: [0], 4: [1]}  # only identical texts
    assert all(j < i for i, js in pairs.items() for j in js)


def test_near_duplicates_of_fewer_than_two_texts_are_none():
    assert near_duplicate_pairs([], 0.5) == {}
    assert near_duplicate_pairs(["one text"], 0.5) == {}

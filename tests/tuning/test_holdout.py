"""The validation hold-out (core.tuning.holdout): grouped by passage, no passage on both sides, repeatable with
the seed, nothing held out at share 0 or on small data, the two corpora as documented."""

from __future__ import annotations

import random

import pytest

from core.dataset import QADataset
from core.tuning.holdout import MIN_QUESTIONS, VAL_CORPUS_CAP, split_validation
from tests.conftest import make_tiny_dataset


def _shared(n_passages: int = 30, per_passage: int = 3, extra: int = 0) -> QADataset:
    """``per_passage`` questions on each of ``n_passages`` passages, each with a negative, + ``extra`` passages
    no question points to."""
    queries, corpus, rel, neg = {}, {}, {}, {}
    for d in range(n_passages + extra):
        corpus[f"d{d}"] = f"passage {d} about the pump"
    for d in range(n_passages):
        for k in range(per_passage):
            q = f"q{d}_{k}"
            queries[q] = f"question {k} on passage {d}"
            rel[q] = [f"d{d}"]
            neg[q] = [f"d{(d + 1) % n_passages}"]
    return QADataset(queries, corpus, rel, neg)


def _positives(ds: QADataset) -> set[str]:
    return {d for q in ds.query_ids for d in ds.relevant_docs[q]}


def test_share_0_and_small_data_keep_everything():
    ds = _shared()
    assert split_validation(ds, 0.0, 1) == (ds, None)
    small = make_tiny_dataset(MIN_QUESTIONS - 1)
    train, val = split_validation(small, 0.5, 1)
    assert train is small and val is None
    train, val = split_validation(make_tiny_dataset(MIN_QUESTIONS), 0.5, 1)
    assert val is not None and len(val) > 0  # MIN_QUESTIONS itself is enough


def test_questions_of_one_passage_stay_together_and_no_passage_is_on_both_sides():
    ds = _shared(30, 3)
    train, val = split_validation(ds, 0.2, 7)
    assert val is not None
    assert sorted(train.query_ids + val.query_ids) == sorted(ds.query_ids)  # every question, once
    assert not set(train.query_ids) & set(val.query_ids)
    assert not _positives(train) & _positives(val)
    for d in range(30):  # a passage's three questions are all on one side
        sides = {("val" if f"q{d}_{k}" in val.queries else "train") for k in range(3)}
        assert len(sides) == 1, f"d{d}'s questions were split: {sides}"
    # whole groups are added until the share is reached: 20% of 90 = 18 -> 6 groups of 3
    assert len(val) == 18


def test_a_question_with_several_passages_keeps_all_of_them_on_its_side():
    """A question answered by two passages links them: no validation positive is a training positive."""
    queries, corpus, rel = {}, {}, {}
    for i in range(40):
        corpus[f"d{i}"] = f"passage {i}"
    for i in range(40):  # q_i -> d_i and d_{i+1}: the passages chain the questions together in pairs
        queries[f"q{i}"] = f"question {i}"
        rel[f"q{i}"] = [f"d{i}", f"d{(i + 1) % 40}"] if i % 2 == 0 else [f"d{i}"]
    ds = QADataset(queries, corpus, rel)
    for seed in range(10):
        train, val = split_validation(ds, 0.25, seed)
        assert val is not None
        assert not _positives(train) & _positives(val), f"seed {seed}: a passage is on both sides"


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    ds = _shared(40, 2)
    a = split_validation(ds, 0.25, 3)
    b = split_validation(ds, 0.25, 3)
    assert a[1].query_ids == b[1].query_ids and list(a[1].corpus) == list(b[1].corpus)
    assert a[0].query_ids == b[0].query_ids
    others = {tuple(split_validation(ds, 0.25, s)[1].query_ids) for s in range(4, 9)}
    assert len(others | {tuple(a[1].query_ids)}) > 1  # the seed draws the groups


def test_the_training_corpus_keeps_only_what_its_questions_need():
    ds = _shared(30, 2, extra=10)
    train, val = split_validation(ds, 0.2, 1)
    needed = {d for q in train.query_ids for d in (*train.relevant_docs[q], *train.negatives.get(q, []))}
    assert set(train.corpus) == needed  # positives and negatives, never the unused extra passages
    assert not any(f"d{d}" in train.corpus for d in range(30, 40))
    for q in train.query_ids:  # the negatives survive the cut
        assert train.negatives[q] == ds.negatives[q]


def test_the_validation_corpus_is_its_positives_plus_others_up_to_the_cap():
    ds = _shared(30, 2, extra=10)
    train, val = split_validation(ds, 0.2, 1)
    assert _positives(val) <= set(val.corpus)
    assert set(val.corpus) == set(ds.corpus)  # 40 passages: under the cap, every other passage is a distractor
    assert list(val.corpus) == [d for d in ds.corpus if d in val.corpus]  # in the dataset's order
    big = _shared(VAL_CORPUS_CAP, 1, extra=200)
    _, val = split_validation(big, 0.1, 1)
    assert len(val.corpus) == VAL_CORPUS_CAP and _positives(val) <= set(val.corpus)


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_the_held_out_share_is_reached_by_whole_groups(fraction):
    ds = _shared(50, 2)
    _, val = split_validation(ds, fraction, 11)
    n = len(ds)
    assert fraction * n <= len(val) < fraction * n + 2  # the last group (2 questions) may overshoot


def test_one_passage_per_question_draws_the_groups_of_each_passage_in_first_seen_order():
    """Runs re-derive their hold-out (re-scoring, several processes): with one passage per question the draw is
    the shuffle of each passage's questions, in the order the passages are first met."""
    ds = _shared(25, 2)
    ds = ds.subset(list(reversed(ds.query_ids)))  # first-seen order differs from the corpus order
    for seed in (1, 2, 3):
        by_doc: dict[str, list[str]] = {}
        for q in ds.query_ids:
            by_doc.setdefault(ds.relevant_docs[q][0], []).append(q)
        groups = list(by_doc.values())
        random.Random(seed).shuffle(groups)
        expected = [q for g in groups[:5] for q in g]  # 20% of 50 = 10 questions = 5 groups
        assert split_validation(ds, 0.2, seed)[1].query_ids == expected


def _cut_copies(n: int = 40) -> tuple[QADataset, dict[str, str]]:
    """Inverse-cloze pairs as the app saves them: question k's positive is ``p<k>#ict1`` (passage k with the
    question's sentence cut out); the passages themselves are in the training corpus for the first half, in the
    evaluation split's corpus (returned) for the rest, as after the CLI's join."""
    passages = {f"p{k}": f"Pump {k} leaks. Seal {k} wears out. Valve {k} sticks." for k in range(n)}
    queries = {f"q{k}": f"Seal {k} wears out." for k in range(n)}
    corpus = {f"p{k}#ict1": f"Pump {k} leaks. Valve {k} sticks." for k in range(n)}
    corpus.update({d: t for d, t in passages.items() if int(d[1:]) < n // 2})
    rel = {f"q{k}": [f"p{k}#ict1"] for k in range(n)}
    return QADataset(queries, corpus, rel), {d: t for d, t in passages.items() if int(d[1:]) >= n // 2}


def test_cut_copies_are_validated_against_their_passages():
    """A held-out generated question is scored against its passage as uploaded, among the collection's passages
    and never the cut copies (issue 26: the hold-out measured the training task and chose a 0.9 dense weight)."""
    ds, eval_passages = _cut_copies()
    train, val = split_validation(ds, 0.25, 3, passages=eval_passages)
    assert val is not None and len(val) >= 10
    assert not any("#" in d for d in val.corpus)  # no cut copy searched
    for q in val.query_ids:
        (pos,) = val.relevant_docs[q]
        assert pos == q.replace("q", "p") and val.corpus[pos] == f"Pump {pos[1:]} leaks. Seal {pos[1:]} wears out. " \
            f"Valve {pos[1:]} sticks."
    assert any(int(d[1:]) >= 20 for q in val.query_ids for d in val.relevant_docs[q])  # found among eval's passages
    # training still learns from the cut copies, and nothing held out is trained on
    assert all(d.endswith("#ict1") for q in train.query_ids for d in train.relevant_docs[q])
    assert not set(train.query_ids) & set(val.query_ids)
    # without the evaluation split's passages, a copy whose passage is unknown stays as it was
    _, alone = split_validation(ds, 0.25, 3)
    assert {d for q in alone.query_ids for d in alone.relevant_docs[q] if "#" in d} == {
        f"p{q[1:]}#ict1" for q in alone.query_ids if int(q[1:]) >= 20}


def test_ids_holding_a_hash_that_are_passages_stay_passages():
    ds = _shared()
    ds = QADataset(ds.queries, {f"manual.pdf#{d}": t for d, t in ds.corpus.items()},
                   {q: [f"manual.pdf#{d}" for d in v] for q, v in ds.relevant_docs.items()},
                   {q: [f"manual.pdf#{d}" for d in v] for q, v in ds.negatives.items()})
    assert split_validation(ds, 0.2, 1) == split_validation(ds, 0.2, 1, passages={"other": "x"})

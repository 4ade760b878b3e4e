"""The validation hold-out: training questions kept out of every method's fit.

One split, made once per run from the run's seed, serves two choices: the epoch a full
fine-tune keeps, and the fusion the hybrid uses. Neither ever looks at the evaluation split,
and no method trains on these questions, so the hybrid's choice is not made on questions the
model has seen.
"""

from __future__ import annotations

import logging
import random

from core.dataset import QADataset, derived_from

logger = logging.getLogger(__name__)

MIN_QUESTIONS = 20  # below this a hold-out leaves too little to train on: none is made
VAL_CORPUS_CAP = 400  # validation searches at most this many passages (its positives + others), for speed


def _passage_groups(ds: QADataset, qids: list[str]) -> list[list[str]]:
    """Questions linked by a shared relevant passage (any of theirs, not only the first), in first-seen order:
    a group lands on one side whole, so no passage is a positive on both sides. With one passage per question
    the groups are the questions of each passage."""
    root: dict[str, str] = {}  # passage -> a passage of its group (union-find)

    def find(d: str) -> str:
        while root[d] != d:
            root[d] = root[root[d]]
            d = root[d]
        return d

    for q in qids:
        docs = ds.relevant_docs[q]
        for d in docs:
            root.setdefault(d, d)
        for d in docs[1:]:
            a, b = find(docs[0]), find(d)
            if a != b:
                root[b] = a
    groups: dict[str, list[str]] = {}
    for q in qids:
        groups.setdefault(find(ds.relevant_docs[q][0]), []).append(q)
    return list(groups.values())


def split_validation(ds: QADataset, fraction: float, seed: int,
                     passages: dict[str, str] | None = None) -> tuple[QADataset, QADataset | None]:
    """Hold out ``fraction`` of the training questions, grouped by passage (questions sharing any relevant
    passage stay on one side).

    A held-out generated question whose positive is a cut copy of a passage (inverse cloze: the question's
    sentence cut out, id ``<passage id>#<tag>``) is validated against that passage as uploaded, among the
    collection's passages and never its cut copies: the hold-out chooses the epoch, the fusion and the best
    pipelines for retrieval in the collection, as the evaluation scores it. Validating on the cut copies
    measured the training task instead (the question's words are gone from its positive, the passage that
    holds them counted wrong): it favoured the dense model, and chose a dense weight of 0.9 for the hybrid
    where BM25 was far better on real questions (bench/RESULTS.md).

    Args:
        ds: the training split.
        fraction: share of its questions to hold out; 0 holds out none.
        seed: draws which passage groups are held out.
        passages: the collection's passages beyond ``ds``'s corpus (the evaluation split's), where a cut copy's
            passage may be found; None: ``ds``'s corpus only.

    Returns:
        (training part, validation part or None when ``fraction`` is 0 or there are fewer than
        MIN_QUESTIONS questions). The training part keeps only the passages its questions need
        (positives and negatives); the validation corpus is its positives plus random other
        training passages, VAL_CORPUS_CAP at most.
    """
    qids = ds.query_ids
    if fraction <= 0 or len(qids) < MIN_QUESTIONS:
        return ds, None
    groups = _passage_groups(ds, qids)
    random.Random(seed).shuffle(groups)
    val_q: list[str] = []
    for g in groups:
        if len(val_q) >= fraction * len(qids):
            break
        val_q += g
    val_set = set(val_q)
    train_q = [q for q in qids if q not in val_set]
    needed = {d for q in train_q for d in (*ds.relevant_docs[q], *ds.negatives.get(q, []))}
    train_corpus = [d for d in ds.corpus if d in needed]
    logger.info("validation hold-out: %d of %d questions (seed %d)", len(val_q), len(qids), seed)
    return ds.subset(train_q, train_corpus), _validation_part(ds, val_q, seed, passages or {})


def _validation_part(ds: QADataset, val_q: list[str], seed: int, passages: dict[str, str]) -> QADataset:
    """The held-out questions with their positives plus random other passages, VAL_CORPUS_CAP at most; cut
    copies replaced by their passages (see :func:`split_validation`)."""
    known = {**passages, **ds.corpus}
    cut = {d for d in ds.corpus if derived_from(d, known) is not None}
    if cut:
        ds = QADataset(ds.queries, {d: t for d, t in known.items() if d not in cut},
                       {q: list(dict.fromkeys(derived_from(d, known) or d for d in v))
                        for q, v in ds.relevant_docs.items()},
                       {q: [d for d in v if d not in cut] for q, v in ds.negatives.items()},
                       ds.sources, ds.answers, ds.origins)
    pos = {d for q in val_q for d in ds.relevant_docs[q]}
    others = [d for d in ds.corpus if d not in pos]
    random.Random(seed).shuffle(others)
    extra = set(others[: max(0, VAL_CORPUS_CAP - len(pos))])
    return ds.subset(val_q, [d for d in ds.corpus if d in pos or d in extra])

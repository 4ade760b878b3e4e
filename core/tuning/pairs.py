"""What a full fine-tune trains on: (question, positive[, negative]) texts, from the training split.

* Which part of a long positive passage the model sees (``FullSettings.train_passage``): a model
  trained at ``max_seq_length`` tokens only reads that much of each text, so for long passages it
  matters which window it is:
    - ``"first"``: the passage as it is (the Trainer cuts it at ``max_seq_length``);
    - ``"best"``: the window the base model scores highest for the question (MaxP-consistent);
    - ``"answer"``: the window holding the known answer text (``QADataset.answers``), else ``"best"``;
    - ``"all"``: every window of the passage, one pair each.
* Hard negatives mined once from the base model's vectors (cached: ``core.retrieval.embedding``):
  among each question's top ``range_max`` passages, the best-scoring ones that are not a positive and
  score below ``(1 - relative_margin)`` x the positive's score (the false-negative guard of
  sentence-transformers' ``mine_hard_negatives``, whose choices a test reproduces).
* Or mined with BM25 (``FullSettings.negatives_from = "bm25"``): the same rule on each question's BM25
  scores over the training passages (top ``range_max`` passages BM25 finds, not a positive, at most
  ``(1 - relative_margin)`` x the positive's own BM25 score): the passages keyword search confuses with
  the answer. A question whose positive shares no term with it (BM25 score 0) gets none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from core.dataset import QADataset
from core.retrieval.embedding import encode
from core.retrieval.index import BM25Index
from core.retrieval.terms import terms_batch
from core.retrieval.windows import split_windows

logger = logging.getLogger(__name__)

WINDOW_OVERLAP = 32  # tokens shared by consecutive training windows


def positive_texts(ds: QADataset, model, mode: str, max_seq_length: int, cache=None,
                   progress: Callable[[int, int, str], None] | None = None) -> list[tuple[str, str, str]]:
    """(question id, question, positive text) for every (question, relevant passage) of ``ds``.

    Args:
        model: the base model (scores windows for "best" / "answer"); its ``max_seq_length`` is set to
            ``max_seq_length`` while encoding.
        mode: "first" | "best" | "answer" | "all" (see the module docstring).
    """
    pairs = [(q, d) for q in ds.query_ids for d in ds.relevant_docs[q] if d in ds.corpus]
    if mode == "first":
        return [(q, ds.queries[q], ds.corpus[d]) for q, d in pairs]
    if mode not in ("best", "answer", "all"):
        raise ValueError(f"unknown train_passage {mode!r}: use first, best, answer or all")
    passages = list(dict.fromkeys(d for _, d in pairs))
    row = {d: i for i, d in enumerate(passages)}
    wins = split_windows([ds.corpus[d] for d in passages], model.tokenizer, max_seq_length, WINDOW_OVERLAP)
    by_passage: dict[int, list[int]] = {}
    for w, owner in enumerate(wins.owner):
        by_passage.setdefault(int(owner), []).append(w)
    if mode == "all":
        return [(q, ds.queries[q], wins.texts[w]) for q, d in pairs for w in by_passage[row[d]]]
    model.max_seq_length = max_seq_length
    multi = sorted({row[d] for _, d in pairs if len(by_passage[row[d]]) > 1})
    w_rows = [w for p in multi for w in by_passage[p]]
    w_vecs = dict(zip(w_rows, encode(model, [wins.texts[w] for w in w_rows], kind="passage", cache=cache,
                                     progress=(lambda a, b: progress(a, b, "passage windows")) if progress else None)))
    q_ids = list(dict.fromkeys(q for q, _ in pairs))
    q_vecs = dict(zip(q_ids, encode(model, [ds.queries[q] for q in q_ids], kind="query", cache=cache)))
    out = []
    for q, d in pairs:
        ws = by_passage[row[d]]
        choice = ws[0]
        if len(ws) > 1:
            answer = ds.answers.get(q, "") if mode == "answer" else ""
            holding = [w for w in ws if answer and answer in wins.texts[w]]
            choice = holding[0] if holding else max(ws, key=lambda w: float(w_vecs[w] @ q_vecs[q]))
        out.append((q, ds.queries[q], wins.texts[choice]))
    return out


def pick_negatives(row: np.ndarray, positives: list[int], *, num: int, range_max: int, relative_margin: float,
                   found_only: bool = False) -> list[int]:
    """The hard negatives of one question from its ``row`` of scores over the passages (the miners' one rule).

    Candidates are the question's top ``range_max`` passages (ties in passage order); a candidate is kept
    when it is not a positive and scores at most ``(1 - relative_margin)`` x the best positive's score
    (likely false negatives score close to the positive); ``found_only``: only passages scoring above 0 (BM25
    did not find the others). Returns up to ``num`` passage rows, best-scoring first.
    """
    pos = set(positives)
    limit = (1 - relative_margin) * float(max(row[p] for p in positives)) if positives else np.inf
    top = np.argsort(-row, kind="stable")[:range_max]
    return [int(i) for i in top if int(i) not in pos and row[i] <= limit and (row[i] > 0 or not found_only)][:num]


def mine_negatives(q_vecs: np.ndarray, positives: list[list[int]], corpus_vecs: np.ndarray, *, num: int = 1,
                   range_max: int = 30, relative_margin: float = 0.05) -> list[list[int]]:
    """Hard negatives per question from precomputed vectors (no model call).

    Args:
        q_vecs: (n, dim) question vectors; corpus_vecs: (m, dim) passage vectors; both L2-normalised.
        positives: per question, the rows of its relevant passages.
        num: negatives per question.
        range_max: candidates are the question's top ``range_max`` passages.
        relative_margin: a candidate must score at most ``(1 - relative_margin)`` x the question's best
            positive score (likely false negatives score close to the positive).

    Returns:
        Per question, up to ``num`` passage rows, best-scoring first; never a positive.
    """
    out: list[list[int]] = []
    for start in range(0, len(q_vecs), 256):
        scores = q_vecs[start : start + 256] @ corpus_vecs.T
        for r, row in enumerate(scores):
            out.append(pick_negatives(row, positives[start + r], num=num, range_max=range_max,
                                      relative_margin=relative_margin))
    return out


def mine_bm25_negatives(ds: QADataset, *, num: int = 1, range_max: int = 30,
                        relative_margin: float = 0.05) -> dict[str, list[str]]:
    """Hard negatives per question of ``ds`` from BM25 over its passages (the project's ``BM25Index``).

    The dense miner's rule (:func:`pick_negatives`) on BM25 scores: among the top ``range_max`` passages
    BM25 finds for the question (score above 0), those that are not a positive and score at most
    ``(1 - relative_margin)`` x the positive's own BM25 score. A positive BM25 does not find (score 0)
    leaves the question without negatives.

    Returns:
        question id -> up to ``num`` passage ids, best-scoring first; never a positive.
    """
    ids = list(ds.corpus)
    row_of = {d: i for i, d in enumerate(ids)}
    index = BM25Index(ids, [ds.corpus[d] for d in ids])
    out: dict[str, list[str]] = {}
    for q, q_terms in zip(ds.query_ids, terms_batch([ds.queries[q] for q in ds.query_ids])):
        scores = index.scores(q_terms)
        pos = [row_of[d] for d in ds.relevant_docs.get(q, []) if d in row_of]
        picked = pick_negatives(scores, pos, num=num, range_max=range_max, relative_margin=relative_margin,
                                found_only=True)
        out[q] = [ids[i] for i in picked]
    return out

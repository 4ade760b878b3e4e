"""The measurements the generated-question filters are made of, each usable on its own: text
normalisation, the longest word run a question copies from its passage, round-trip ranks (does a
question find its own passage?) and near-duplicate pairs (character 3-gram Jaccard, numbers must
match). ``core.generate.filters`` turns them into verdicts and counts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import numpy as np

NEAR_DUPLICATE_METHOD = "char 3-gram Jaccard, numbers must match"  # see core.generate.filters
NGRAM = 3
_CHUNK_CELLS = 4_000_000  # (rows x questions) similarity cells computed at once; bounds memory
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
WORDS = re.compile(r"[^\W_]+")


def normalize(text: str) -> str:
    """Lower-cased, punctuation as spaces, whitespace collapsed (the duplicate rule's view of a text)."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def longest_shared_run(question: str, passage: str) -> int:
    """Length in words of the longest run of consecutive words shared by the two texts (case-insensitive)."""
    q, p = WORDS.findall(question.casefold()), WORDS.findall(passage.casefold())
    if not q or not p:
        return 0
    m = difflib.SequenceMatcher(None, q, p, autojunk=False)
    return m.find_longest_match(0, len(q), 0, len(p)).size


def round_trip_ranks(
    question_vectors: np.ndarray, passage_vectors: np.ndarray, own: Sequence[int]
) -> np.ndarray:
    """Rank of each question's own passage when it searches all passages (1 = first).

    Args:
        question_vectors: (n questions, dim) float32, L2-normalised.
        passage_vectors: (n passages, dim) float32, L2-normalised.
        own: For each question, the row of its own passage in ``passage_vectors``.

    Returns:
        (n questions,) int: 1 + the number of passages scoring strictly higher than its own.
    """
    q = np.asarray(question_vectors, dtype=np.float32)
    p = np.asarray(passage_vectors, dtype=np.float32)
    own = np.asarray(own, dtype=np.int64)
    if q.shape[0] != own.shape[0]:
        raise ValueError(f"{q.shape[0]} question vectors for {own.shape[0]} questions.")
    ranks = np.empty(q.shape[0], dtype=np.int64)
    step = max(1, _CHUNK_CELLS // max(1, p.shape[0]))
    for s in range(0, q.shape[0], step):
        scores = q[s : s + step] @ p.T
        mine = scores[np.arange(scores.shape[0]), own[s : s + step]]
        ranks[s : s + step] = 1 + (scores > mine[:, None]).sum(axis=1)
    return ranks


def _ngrams(text: str) -> set[str]:
    padded = f" {text} "
    return {padded[i : i + NGRAM] for i in range(max(1, len(padded) - NGRAM + 1))}


def near_duplicate_pairs(texts: Sequence[str], threshold: float) -> dict[int, list[int]]:
    """For each text, the EARLIER texts at Jaccard similarity >= threshold (normalised, 3-grams).

    Args:
        texts: Normalised texts (see :func:`normalize`).
        threshold: Similarity in (0, 1].

    Returns:
        Index -> earlier indices that are near it (identical texts included), ascending.
    """
    from scipy import sparse

    n = len(texts)
    if n < 2:
        return {}
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for r, t in enumerate(texts):
        for g in _ngrams(t):
            rows.append(r)
            cols.append(vocab.setdefault(g, len(vocab)))
    m = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(vocab)))
    size = np.asarray(m.sum(axis=1)).ravel()
    mt = m.T.tocsc()
    out: dict[int, list[int]] = {}
    step = max(1, _CHUNK_CELLS // n)
    for s in range(0, n, step):
        inter = (m[s : s + step] @ mt).tocoo()
        i, j = inter.row + s, inter.col
        earlier = j < i
        i, j, shared = i[earlier], j[earlier], inter.data[earlier]
        sim = shared / np.maximum(size[i] + size[j] - shared, 1)
        for a, b in zip(i[sim >= threshold], j[sim >= threshold]):
            out.setdefault(int(a), []).append(int(b))
    return {k: sorted(v) for k, v in out.items()}



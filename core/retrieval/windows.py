"""Passages longer than the model's window: overlapping token windows, scored by their best window.

A passage of ~3,000 characters does not fit in 512 tokens, let alone 256: encoded whole, its
tail is cut off and never found. Here a long passage is split into windows of the model's own
tokens (``size`` tokens, consecutive windows sharing ``overlap`` tokens), every window is encoded,
and a passage scores as its best window (max-pooling, "MaxP", Dai & Callan 2019). A passage that
fits is one window, exactly the text it would be encoded as anyway, so short collections are
unchanged. Base and tuned models use the same windows (the run's ``Scoring``).

Arrays: window vectors (W, dim) float32 L2-normalised, ``owner`` (W,) int: the passage row of each
window, non-decreasing (a passage's windows are contiguous, in passage order).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.retrieval.index import Ranking, top_k

SPECIAL_TOKENS = 2  # [CLS] and [SEP]: a window of ``size`` tokens holds size - 2 text tokens
QUERY_CHUNK = 64  # questions scored at once: bounds the (questions x windows) score matrix


@dataclass
class Windows:
    """The windows of a list of passages."""

    texts: list[str]  # window texts, passage by passage
    owner: np.ndarray  # (W,) int: row of the passage each window comes from
    spans: list[tuple[int, int]]  # (start, end) character span of each window in its passage

    def first_rows(self, n: int) -> np.ndarray:
        """(n,) int: the row of each passage's first window."""
        out = np.full(n, -1, dtype=np.int64)
        for w in range(len(self.owner) - 1, -1, -1):
            out[self.owner[w]] = w
        return out


def split_windows(texts: Sequence[str], tokenizer, size: int, overlap: int) -> Windows:
    """Cut each text into windows of at most ``size`` model tokens (special tokens included).

    Args:
        texts: the passages.
        tokenizer: the model's (fast) tokenizer; offsets map tokens back to characters.
        size: tokens per window, as the model reads them (the passage token limit).
        overlap: tokens shared by consecutive windows (clipped to half a window).

    Returns:
        ``Windows``; a text that fits is one window holding the whole text.
    """
    body = max(size - SPECIAL_TOKENS, 1)
    overlap = max(0, min(overlap, body // 2))
    win_texts: list[str] = []
    owner: list[int] = []
    spans: list[tuple[int, int]] = []
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                    verbose=False)
    for row, (text, offsets) in enumerate(zip(texts, enc["offset_mapping"])):
        n = len(offsets)
        if n <= body:
            win_texts.append(text)
            owner.append(row)
            spans.append((0, len(text)))
            continue
        # a token starts a word when whitespace precedes it: windows start and end there, never mid-word
        word = [i == 0 or offsets[i][0] > offsets[i - 1][1] for i in range(n)] + [True]
        start = 0
        while True:
            end = min(start + body, n)
            back = end
            while back > start + 1 and not word[back]:
                back -= 1
            end = back if word[back] and back > start else end
            a, b = offsets[start][0], offsets[end - 1][1]
            win_texts.append(text[a:b])
            owner.append(row)
            spans.append((a, b))
            if end == n:
                break
            nxt = max(end - overlap, start + 1)
            while nxt > start + 1 and not word[nxt]:
                nxt -= 1
            start = nxt
    return Windows(win_texts, np.asarray(owner, dtype=np.int64), spans)


def max_pool(scores: np.ndarray, owner: np.ndarray, n_passages: int) -> np.ndarray:
    """(n_q, W) window scores -> (n_q, n_passages) passage scores: each passage's best window."""
    starts = np.searchsorted(owner, np.arange(n_passages))
    if len(owner) and (np.any(np.diff(owner) < 0) or len(np.unique(owner)) != n_passages):
        raise ValueError("owner must list every passage's windows contiguously, in passage order")
    return np.maximum.reduceat(scores, starts, axis=1)


def maxp_search(queries: np.ndarray, window_vecs: np.ndarray, owner: np.ndarray, doc_ids: Sequence[str],
                k: int = 100) -> Ranking:
    """Top ``k`` passages per query by their best window (exact; ties broken by passage id).

    Args:
        queries: (n_q, dim) float32, L2-normalised.
        window_vecs: (W, dim) float32, L2-normalised.
        owner: (W,) passage row of each window (see the module docstring).
        doc_ids: the passages' ids (rows of ``owner``).
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    w = np.ascontiguousarray(window_vecs, dtype=np.float32)
    ids_out: list[list[str]] = []
    sc_out: list[list[float]] = []
    for start in range(0, len(q), QUERY_CHUNK):
        passage_scores = max_pool(q[start : start + QUERY_CHUNK] @ w.T, owner, len(doc_ids))
        ids, scores = top_k(passage_scores, doc_ids, k)
        ids_out += ids
        sc_out += scores
    return ids_out, sc_out

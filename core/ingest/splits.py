"""Train/eval splits of a :class:`~core.dataset.QADataset`, and the leakage report.

This module owns how questions are divided between training and evaluation, and how
much the two sides overlap:

* ``by="query"``: questions are shuffled one by one;
* ``by="passage"``: questions that share a relevant passage (directly or through a
  chain of shared passages) always land on the same side;
* ``by="document"``: questions whose passages come from the same source document
  (``dataset.sources``, read with :func:`core.dataset.source_file`, so all pages of one
  PDF are one document) land on the same side; without sources it falls back to
  ``"passage"`` and says so in the report's notes.

In every mode, questions whose normalised text is identical are kept on one side.
The eval dataset keeps the FULL corpus (retrieval is judged against everything); the
train dataset keeps only the passages relevant to its questions and their negatives.

Errors: :class:`core.dataset.DataError` for a bad fraction, an unknown ``by``, or a
dataset too small to leave two questions on each side.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field

from core.dataset import DataError, QADataset, source_file

# Near-duplicate questions: Jaccard similarity of the sets of character 3-grams of the
# normalised questions (lower-cased, punctuation removed). 0.8 flags rephrasings that
# differ by a word or a number ("revenue in 2021" / "revenue in 2020") while leaving
# questions on the same topic with different wording alone.
NEAR_DUPLICATE_METHOD = "char 3-gram Jaccard"
NEAR_DUPLICATE_THRESHOLD = 0.8
NGRAM = 3
# Non-zero entries of the sparse eval x train overlap matrix computed at once; bounds memory.
_CHUNK_NONZEROS = 4_000_000
MIN_QUERIES_PER_SIDE = 2
SPLIT_MODES = ("query", "passage", "document")


@dataclass
class SplitReport:
    """How a split was made and how much eval leaks into train.

    Attributes:
        by: Grouping actually used: ``"query"``, ``"passage"``, ``"document"``, or
            ``"given"`` for :func:`leakage_report` on two existing datasets.
        seed: Random seed of the split (None for :func:`leakage_report`).
        n_train_queries: Questions on the train side.
        n_eval_queries: Questions on the eval side.
        exact_duplicates: (train qid, eval qid) pairs with identical normalised questions.
        near_duplicates: (train qid, eval qid, similarity) with similarity >=
            ``near_duplicate_threshold`` (and not exact), highest first.
        shared_passages: Passages (compared by whitespace-normalised text) relevant to both
            a train and an eval question.
        eval_fraction: Fraction asked for (None for :func:`leakage_report`).
        notes: Plain-words remarks, e.g. a fallback from ``"document"`` to ``"passage"``.
        near_duplicate_method: How similarity is measured.
        near_duplicate_threshold: Similarity at or above which a pair is listed.
    """

    by: str
    seed: int | None
    n_train_queries: int
    n_eval_queries: int
    exact_duplicates: list[tuple[str, str]] = field(default_factory=list)
    near_duplicates: list[tuple[str, str, float]] = field(default_factory=list)
    shared_passages: int = 0
    eval_fraction: float | None = None
    notes: list[str] = field(default_factory=list)
    near_duplicate_method: str = NEAR_DUPLICATE_METHOD
    near_duplicate_threshold: float = NEAR_DUPLICATE_THRESHOLD

    def summary(self) -> str:
        """One line, e.g. ``"632 train / 158 eval questions (by passage); 0 exact, 3 near duplicates, ..."``."""
        return (
            f"{self.n_train_queries} train / {self.n_eval_queries} eval questions (by {self.by}); "
            f"{len(self.exact_duplicates)} exact, {len(self.near_duplicates)} near-duplicate questions "
            f"across sides; {self.shared_passages} shared passages"
        )

    def to_dict(self) -> dict:
        """Plain JSON-able mapping (tuples become lists), for a run folder."""
        return asdict(self)


def _norm_question(text: str) -> str:
    """Lower-cased, punctuation as spaces, whitespace collapsed."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def _ngrams(text: str) -> set[str]:
    padded = f" {text} "
    return {padded[i : i + NGRAM] for i in range(max(1, len(padded) - NGRAM + 1))}


def _near_pairs(train: list[tuple[str, str]], evals: list[tuple[str, str]]) -> list[tuple[str, str, float]]:
    """(train id, eval id, Jaccard) >= threshold, for normalised non-identical texts."""
    if not train or not evals:
        return []
    import numpy as np
    from scipy import sparse

    vocab: dict[str, int] = {}

    def matrix(items: list[tuple[str, str]]):
        rows, cols = [], []
        for r, (_, text) in enumerate(items):
            for g in _ngrams(text):
                rows.append(r)
                cols.append(vocab.setdefault(g, len(vocab)))
        data = np.ones(len(rows), dtype=np.float32)
        return rows, cols, data

    tr_rows, tr_cols, tr_data = matrix(train)
    ev_rows, ev_cols, ev_data = matrix(evals)
    shape_v = len(vocab)
    t = sparse.csr_matrix((tr_data, (tr_rows, tr_cols)), shape=(len(train), shape_v))
    e = sparse.csr_matrix((ev_data, (ev_rows, ev_cols)), shape=(len(evals), shape_v))
    t_size = np.asarray(t.sum(axis=1)).ravel()
    e_size = np.asarray(e.sum(axis=1)).ravel()
    tt = t.T.tocsc()
    out: list[tuple[str, str, float]] = []
    step = max(1, _CHUNK_NONZEROS // max(1, len(train)))
    for start in range(0, len(evals), step):
        inter = (e[start : start + step] @ tt).tocoo()
        rows = inter.row + start
        union = e_size[rows] + t_size[inter.col] - inter.data
        sim = inter.data / np.maximum(union, 1)
        hit = sim >= NEAR_DUPLICATE_THRESHOLD
        for r, c, s in zip(rows[hit], inter.col[hit], sim[hit], strict=True):
            if s >= NEAR_DUPLICATE_THRESHOLD and train[c][1] != evals[r][1]:
                out.append((train[c][0], evals[r][0], round(float(s), 4)))
    out.sort(key=lambda x: (-x[2], x[0], x[1]))
    return out


def _passage_keys(ds: QADataset, qids: list[str]) -> set[str]:
    keys: set[str] = set()
    for q in qids:
        for d in ds.relevant_docs.get(q, []):
            keys.add(" ".join(ds.corpus[d].split()) if d in ds.corpus else f"id:{d}")
    return keys


def _leakage(
    train: QADataset, train_q: list[str], evald: QADataset, eval_q: list[str]
) -> tuple[list[tuple[str, str]], list[tuple[str, str, float]], int]:
    by_text: dict[str, list[str]] = {}
    for q in train_q:
        by_text.setdefault(_norm_question(train.queries[q]), []).append(q)
    exact = [(tq, eq) for eq in eval_q for tq in by_text.get(_norm_question(evald.queries[eq]), [])]
    near = _near_pairs(
        [(q, _norm_question(train.queries[q])) for q in train_q],
        [(q, _norm_question(evald.queries[q])) for q in eval_q],
    )
    shared = len(_passage_keys(train, train_q) & _passage_keys(evald, eval_q))
    return exact, near, shared


def leakage_report(train: QADataset, eval: QADataset) -> SplitReport:
    """Duplicate questions and shared passages between two existing datasets.

    Passages are compared by whitespace-normalised text, so two files with different
    id schemes are compared fairly.

    Args:
        train: The training dataset.
        eval: The evaluation dataset.

    Returns:
        A SplitReport with ``by="given"`` and ``seed=None``.
    """
    tq, eq = train.query_ids, eval.query_ids
    exact, near, shared = _leakage(train, tq, eval, eq)
    return SplitReport("given", None, len(tq), len(eq), exact, near, shared)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _groups(ds: QADataset, qids: list[str], by: str) -> list[list[str]]:
    """Questions that must land on the same side, in first-seen order."""
    uf = _UnionFind(len(qids))
    first: dict[str, int] = {}

    def link(key: str, i: int) -> None:
        if key in first:
            uf.union(first[key], i)
        else:
            first[key] = i

    for i, q in enumerate(qids):
        link("q:" + _norm_question(ds.queries[q]), i)
        if by == "passage":
            for d in ds.relevant_docs[q]:
                link("d:" + d, i)
        elif by == "document":
            for d in ds.relevant_docs[q]:
                src = ds.sources.get(d)  # "file.pdf p.3": every page of one file is one document
                link(("s:" + source_file(src)) if src else ("d:" + d), i)
    groups: dict[int, list[str]] = {}
    for i, q in enumerate(qids):
        groups.setdefault(uf.find(i), []).append(q)
    return list(groups.values())


def split_dataset(
    ds: QADataset, eval_fraction: float = 0.2, seed: int = 42, by: str = "query"
) -> tuple[QADataset, QADataset, SplitReport]:
    """Split questions into train and eval, keeping linked questions together.

    Groups (see module docstring) are shuffled with ``random.Random(seed)`` and each is
    put on the eval side when that brings the eval count closer to
    ``round(eval_fraction * n)``; the same dataset and seed always give the same split.

    Args:
        ds: The dataset; questions without a relevant passage are left out.
        eval_fraction: Share of questions for evaluation, strictly between 0 and 1.
        seed: Random seed.
        by: ``"query"``, ``"passage"`` or ``"document"``.

    Returns:
        (train, eval, report). Train holds the train questions and only the passages
        relevant to them plus their negatives; eval holds the eval questions and the
        full corpus.

    Raises:
        DataError: eval_fraction outside (0, 1), unknown ``by``, or fewer than two
            questions would land on either side.
    """
    if not isinstance(eval_fraction, int | float) or not 0 < eval_fraction < 1:
        raise DataError(
            f"The eval fraction must be between 0 and 1 (exclusive), e.g. 0.2; got {eval_fraction!r}."
        )
    if by not in SPLIT_MODES:
        raise DataError(f"Unknown split mode {by!r}; use one of {', '.join(SPLIT_MODES)}.")
    notes: list[str] = []
    used_by = by
    if by == "document" and not ds.sources:
        used_by = "passage"
        notes.append(
            "No source documents are recorded for these passages, so the split groups by passage instead."
        )
    elif by == "document":
        unsourced = sum(1 for d in ds.corpus if d not in ds.sources)
        if unsourced:
            notes.append(f"{unsourced} passages have no source document; each counts as its own document.")

    qids = ds.query_ids
    n = len(qids)
    need = 2 * MIN_QUERIES_PER_SIDE
    if n < need:
        raise DataError(
            f"Too few questions to split: {n} with relevant passages; at least {need} are needed "
            f"({MIN_QUERIES_PER_SIDE} for training and {MIN_QUERIES_PER_SIDE} for evaluation). Add more pairs."
        )
    groups = _groups(ds, qids, used_by)
    random.Random(seed).shuffle(groups)
    target = min(max(round(eval_fraction * n), MIN_QUERIES_PER_SIDE), n - MIN_QUERIES_PER_SIDE)
    eval_set: set[str] = set()
    n_eval = 0
    for g in groups:
        if abs(n_eval + len(g) - target) < abs(n_eval - target):
            eval_set.update(g)
            n_eval += len(g)
    eval_q = [q for q in qids if q in eval_set]
    train_q = [q for q in qids if q not in eval_set]
    if len(eval_q) < MIN_QUERIES_PER_SIDE or len(train_q) < MIN_QUERIES_PER_SIDE:
        biggest = max(len(g) for g in groups)
        raise DataError(
            f"Cannot split by {used_by}: the {n} questions form {len(groups)} group(s) that must stay "
            f"together (the largest holds {biggest}), leaving {len(train_q)} for training and {len(eval_q)} "
            f"for evaluation; each side needs at least {MIN_QUERIES_PER_SIDE}. Split by query instead, "
            "or add more data."
        )
    if abs(len(eval_q) - target) > max(1, 0.05 * n):
        notes.append(
            f"Groups that must stay together made the eval side {len(eval_q)} questions instead of {target}."
        )

    keep: set[str] = set()
    for q in train_q:
        keep.update(ds.relevant_docs[q])
        keep.update(ds.negatives.get(q, []))
    train = ds.subset(train_q, [d for d in ds.corpus if d in keep])
    evald = ds.subset(eval_q)
    exact, near, shared = _leakage(ds, train_q, ds, eval_q)
    report = SplitReport(
        used_by,
        seed,
        len(train_q),
        len(eval_q),
        exact,
        near,
        shared,
        eval_fraction=eval_fraction,
        notes=notes,
    )
    return train, evald, report

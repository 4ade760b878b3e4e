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

The leakage report lists questions on both sides that are identical or nearly so. A pair
is a near duplicate when its wording is alike (:data:`NEAR_DUPLICATE_THRESHOLD`) and it does
not ask about something else (:func:`different_question`: a differing number, or one subject
word swapped for another, makes two questions different however alike they read). The user
can dismiss a near duplicate (:func:`flag_key`); dismissed pairs are passed back in
(``dismissed=``), left out of the counts and kept in the report so they are saved with the
dataset.

Errors: :class:`core.dataset.DataError` for a bad fraction, an unknown ``by``, or a
dataset too small to leave two questions on each side.
"""

from __future__ import annotations

import difflib
import random
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass, field

from core.dataset import DataError, QADataset, source_file
from core.retrieval.terms import has_digit, same_word, terms

# Near-duplicate questions: Jaccard similarity of the sets of character 3-grams of the
# normalised questions (lower-cased, punctuation removed). 0.8 catches rephrasings that differ
# by a word or two while leaving questions on the same topic with different wording alone;
# different_question() then clears pairs that only look alike ("revenue in 2021" / "... 2020",
# "... MERS-CoV died?" / "... SARS-CoV died?", "... in children?" / "... in adults?").
NEAR_DUPLICATE_METHOD = "char 3-gram Jaccard; a differing number or a swapped subject word means different"
NEAR_DUPLICATE_THRESHOLD = 0.8
# A word found in more than this share of the collection's passages says nothing about what a
# question asks (the company's name in its own 10-K, "patient" in clinical notes): swapping it
# does not make a different question, like swapping a stop word.
GENERIC_TERM_SHARE = 0.5
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
        similar_but_different: Pairs worded alike (similarity over the threshold) that ask about
            something else (:func:`different_question`), so not listed.
        dismissed: (training question, evaluation question) texts of near duplicates the user said
            are different questions: not listed, not counted, saved with the dataset.
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
    similar_but_different: int = 0
    dismissed: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line, e.g. ``"632 train / 158 eval questions (by passage); 0 exact, 3 near duplicates, ..."``."""
        dismissed = f" ({len(self.dismissed)} dismissed)" if self.dismissed else ""
        return (
            f"{self.n_train_queries} train / {self.n_eval_queries} eval questions (by {self.by}); "
            f"{len(self.exact_duplicates)} exact, {len(self.near_duplicates)} near-duplicate questions "
            f"across sides{dismissed}; {self.shared_passages} shared passages"
        )

    def to_dict(self) -> dict:
        """Plain JSON-able mapping (tuples become lists), for a run folder."""
        return asdict(self)


def _norm_question(text: str) -> str:
    """Lower-cased, punctuation as spaces, whitespace collapsed."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def flag_key(train_question: str, eval_question: str) -> tuple[str, str]:
    """What identifies a near-duplicate flag across reruns and re-keyed ids: both questions normalised.

    Args:
        train_question: The training question's text.
        eval_question: The evaluation question's text.

    Returns:
        ``(normalised training question, normalised evaluation question)``, the form ``dismissed=`` takes.
    """
    return _norm_question(train_question), _norm_question(eval_question)


def differing_terms(a: str, b: str, generic: Callable[[str], bool] = lambda t: False) -> list[tuple[list[str], list[str]]]:
    """Where two questions differ, term by term: the edits that turn ``a`` into ``b``.

    Both questions become :func:`core.retrieval.terms.terms` (stop words dropped); one-letter terms
    (the "s" of "Uber's") and ``generic`` terms are dropped too, unless they hold a digit. The term
    sequences are aligned (``difflib``); a term deleted in one place and inserted in another (a
    moved word) cancels out, and so do forms of one word (:func:`core.retrieval.terms.same_word`).

    Args:
        a: One question.
        b: The other.
        generic: Terms that say nothing about what is asked (see :data:`GENERIC_TERM_SHARE`).

    Returns:
        One ``(terms only in a, terms only in b)`` per edit, in order; both lists filled for a
        substitution, one empty for a word added or left out; ``[]`` when the questions ask with
        the same words.
    """

    def content(text: str) -> list[str]:
        return [t for t in terms(text) if has_digit(t) or (len(t) > 1 and not generic(t))]

    ta, tb = content(a), content(b)
    edits: list[tuple[list[str], list[str]]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        xa, xb = list(ta[i1:i2]), list(tb[j1:j2])
        for x in list(xa):  # forms of one word inside one edit
            match = next((y for y in xb if same_word(x, y)), None)
            if match is not None:
                xa.remove(x)
                xb.remove(match)
        edits.append((xa, xb))
    for xa, _ in edits:  # a word moved elsewhere in the question: left out in one edit, added in another
        for x in list(xa):
            owner = next((xb for _, xb in edits if any(same_word(x, y) for y in xb)), None)
            if owner is not None:
                xa.remove(x)
                owner.remove(next(y for y in owner if same_word(x, y)))
    return [(xa, xb) for xa, xb in edits if xa or xb]


def different_question(a: str, b: str, generic: Callable[[str], bool] = lambda t: False) -> str | None:
    """Why two questions worded alike ask different things, or None when one is a rephrasing of the other.

    The rule, on the edits of :func:`differing_terms`:

    * a number differs (added, left out or changed: ``2020``/``2021``, ``covid19``): different;
    * a subject word is swapped for another word (an edit with terms on both sides that are not
      forms of one word: ``mers``/``sars``, ``children``/``adults``, ``uber``/``lyft``): different;
    * otherwise (stop words, punctuation, word order, inflections and spellings, a word added or
      left out such as "total" or "automatically"): a rephrasing, so a near duplicate.

    Limits: a synonym swapped for another (``fail``/``break``) counts as different (no lexical rule
    tells synonyms from other subjects; the user can dismiss what is left), and a subject added
    without a number ("side effects" / "side effects of remdesivir") stays a near duplicate if the
    wording is otherwise alike.

    Args:
        a: One question.
        b: The other.
        generic: Terms that say nothing about what is asked; they never make a difference.

    Returns:
        A short reason, e.g. ``"the number differs: 2021 / 2020"`` or ``"asks about mers / sars"``;
        None for a near duplicate.
    """
    edits = differing_terms(a, b, generic)
    numbers = [t for xa, xb in edits for t in xa + xb if has_digit(t)]
    if numbers:
        return "the number differs: " + " / ".join(dict.fromkeys(numbers))
    for xa, xb in edits:
        if xa and xb:
            return f"asks about {' '.join(xa)} / {' '.join(xb)}"
    return None


def _generic_terms(texts: Iterable[str], candidates: Collection[str]) -> set[str]:
    """The ``candidates`` found in more than :data:`GENERIC_TERM_SHARE` of ``texts``."""
    if not candidates:
        return set()
    wanted = set(candidates)
    counts = dict.fromkeys(wanted, 0)
    n = 0
    for text in texts:
        n += 1
        for t in wanted.intersection(terms(text)):
            counts[t] += 1
    return {t for t, c in counts.items() if n and c / n > GENERIC_TERM_SHARE}


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


@dataclass
class _Leaks:
    exact: list[tuple[str, str]]
    near: list[tuple[str, str, float]]
    shared: int
    different: int
    dismissed: list[tuple[str, str]]


def _leakage(
    train: QADataset,
    train_q: list[str],
    evald: QADataset,
    eval_q: list[str],
    dismissed: Collection[tuple[str, str]] = (),
) -> _Leaks:
    by_text: dict[str, list[str]] = {}
    for q in train_q:
        by_text.setdefault(_norm_question(train.queries[q]), []).append(q)
    exact = [(tq, eq) for eq in eval_q for tq in by_text.get(_norm_question(evald.queries[eq]), [])]
    similar = _near_pairs(
        [(q, _norm_question(train.queries[q])) for q in train_q],
        [(q, _norm_question(evald.queries[q])) for q in eval_q],
    )
    candidates = {
        t
        for tq, eq, _ in similar
        for xa, xb in differing_terms(train.queries[tq], evald.queries[eq])
        for t in xa + xb
        if not has_digit(t)
    }
    passages = {" ".join(t.split()) for t in (*train.corpus.values(), *evald.corpus.values())}
    generic = _generic_terms(passages, candidates).__contains__
    wanted = set(dismissed)
    near: list[tuple[str, str, float]] = []
    gone: list[tuple[str, str]] = []
    different = 0
    for tq, eq, sim in similar:
        t_text, e_text = train.queries[tq], evald.queries[eq]
        if different_question(t_text, e_text, generic):
            different += 1
        elif flag_key(t_text, e_text) in wanted:
            gone.append((t_text, e_text))
        else:
            near.append((tq, eq, sim))
    shared = len(_passage_keys(train, train_q) & _passage_keys(evald, eval_q))
    return _Leaks(exact, near, shared, different, gone)


def leakage_report(
    train: QADataset, eval: QADataset, dismissed: Collection[tuple[str, str]] = ()
) -> SplitReport:
    """Duplicate questions and shared passages between two existing datasets.

    Passages are compared by whitespace-normalised text, so two files with different
    id schemes are compared fairly.

    Args:
        train: The training dataset.
        eval: The evaluation dataset.
        dismissed: :func:`flag_key` of near duplicates the user dismissed: left out and recorded.

    Returns:
        A SplitReport with ``by="given"`` and ``seed=None``.
    """
    tq, eq = train.query_ids, eval.query_ids
    lk = _leakage(train, tq, eval, eq, dismissed)
    return SplitReport(
        "given", None, len(tq), len(eq), lk.exact, lk.near, lk.shared,
        similar_but_different=lk.different, dismissed=lk.dismissed,
    )  # fmt: skip


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
    ds: QADataset,
    eval_fraction: float = 0.2,
    seed: int = 42,
    by: str = "query",
    dismissed: Collection[tuple[str, str]] = (),
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
        dismissed: :func:`flag_key` of near duplicates the user dismissed (see :func:`leakage_report`).

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
    lk = _leakage(ds, train_q, ds, eval_q, dismissed)
    report = SplitReport(
        used_by,
        seed,
        len(train_q),
        len(eval_q),
        lk.exact,
        lk.near,
        lk.shared,
        eval_fraction=eval_fraction,
        notes=notes,
        similar_but_different=lk.different,
        dismissed=lk.dismissed,
    )
    return train, evald, report

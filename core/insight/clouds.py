"""The "questions vs passages" view of a run: questions and a uniform sample of passages, before and after
tuning on one UMAP layout and the same axes (:func:`fit_clouds`), and the one number beside them, the share
of questions whose answer is among their nearest passages (:class:`AnswerNearby`, :func:`answer_in_top_k`:
the run's Accuracy@10). The link view and the shared UMAP machinery are in ``core.insight.projection``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.insight.projection import (
    MIN_POINTS,
    Progress,
    Projection,
    ProjectionParams,
    _umap_layout,
    checked_inputs,
    fit_projection,
)

CLOUDS_K = 10  # the honest number beside the two-cloud view counts answers in the top 10: the run's Accuracy@10


@dataclass(frozen=True)
class AnswerNearby:
    """The one number the "questions vs passages" view shows: the share of evaluation questions whose answer
    is among the ``k`` passages nearest to them (of every passage searched), before and after tuning.

    It is the run's Accuracy@``k`` of the base and the tuned model (``RunResults``), read, not recomputed: the
    same number the Compare page and the report's score table show, measured in the full embedding space (and
    by each passage's best window where the run searched windows). The 2-D pictures are a sketch of the same
    vectors; this is what they are a sketch of.
    """

    base: float
    tuned: float
    questions: int
    passages: int
    k: int = CLOUDS_K
    unchanged: str | None = None  # why the tuned model is the base model unchanged (core.insight.unchanged)

    @classmethod
    def of(cls, results, unchanged: str | None = None) -> AnswerNearby:
        """From a run's ``RunResults`` (systems ``base`` and ``tuned``).

        Raises:
            ValueError: the results lack Accuracy@10 of either model.
        """
        metric = f"Accuracy@{CLOUDS_K}"
        try:
            base, tuned = (float(results.systems[r].metrics[metric]) for r in ("base", "tuned"))
        except KeyError as e:
            raise ValueError(f"the run's results have no {metric} of the base and tuned models ({e})") from None
        return cls(base, tuned, int(results.eval_questions), int(results.eval_passages), CLOUDS_K, unchanged)

    @property
    def points(self) -> int:
        """The change in percentage points, rounded as shown (0 when the shares round alike)."""
        return round(self.tuned * 100) - round(self.base * 100)

    def label(self) -> str:
        return f"Answer in the top {self.k}"

    def headline(self) -> str:
        """E.g. "72% → 78% of the 74 questions (+7 points)"; an unchanged model: "72% of the 74 questions, before
        and after (the tuned model is the base model)"."""
        n = f"of the {self.questions:,} questions"
        if self.unchanged:
            return f"{self.base:.0%} {n}, before and after (the tuned model is the base model)"
        change = f"{self.points:+d} points" if self.points else "no change"
        return f"{self.base:.0%} → {self.tuned:.0%} {n} ({change})"

    def meaning(self) -> str:
        """The one line under the number: what it counts, and how it relates to the pictures."""
        return (f"Of the {self.questions:,} evaluation questions, the share whose answer is among the {self.k} "
                f"passages nearest to it in the full embedding space (of all {self.passages:,} passages): the run's "
                f"Accuracy@{self.k}. Questions that sit among the passages answering them raise it; the two "
                "pictures are a 2-D sketch of the same vectors, this number is measured.")

    def title(self, space: str) -> str:
        """The share of one picture, for its title: "72% find their answer in the top 10"."""
        value = self.base if space == "base" else self.tuned
        return f"{value:.0%} find their answer in the top {self.k}"


def answer_in_top_k(query_vecs: np.ndarray, passage_vecs: np.ndarray, gold_rows: Sequence[Sequence[int]],
                    k: int = CLOUDS_K) -> float:
    """Share of questions with an answer among their ``k`` highest-scoring passages (dot product of the
    vectors as given; ties count against the answer, as in :func:`retrieval_alignment`). An independent check of
    :class:`AnswerNearby` from a run's stored vectors (exact search over unwindowed passages)."""
    q = np.asarray(query_vecs, dtype=np.float32)
    d = np.asarray(passage_vecs, dtype=np.float32)
    if len(q) != len(gold_rows):
        raise ValueError(f"{len(q)} questions but {len(gold_rows)} lists of gold rows")
    if not len(q):
        return float("nan")
    hits = 0
    for i, rows in enumerate(gold_rows):
        scores = d @ q[i]
        best = max((scores[r] for r in rows), default=-np.inf)
        hits += int(1 + (np.delete(scores, list(rows)) >= best).sum() <= k)
    return hits / len(q)


CLOUD_QUESTION_SHARE = 3  # a clouds picture holds at most sample // 3 questions; passages fill the rest
CLOUD_MIN_PASSAGES = 300


def cloud_rows(n_q: int, n_d: int, sample: int, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """Which questions and passages a clouds projection holds: a fixed random sample of at most
    ``sample // 3`` questions and a uniform random sample of the passages filling ``sample`` (at least 300),
    each drawn with ``seed``. Uniform, unlike a link map's points (which keep every answer and top passage, the
    passages nearest the questions, and would draw the two clouds closer than they are)."""
    rng = np.random.default_rng(seed)
    n_qs = min(n_q, max(1, sample // CLOUD_QUESTION_SHARE))
    n_ds = min(n_d, max(CLOUD_MIN_PASSAGES, sample - n_qs))
    q_rows = np.sort(rng.choice(n_q, size=n_qs, replace=False)) if n_qs < n_q else np.arange(n_q)
    d_rows = np.sort(rng.choice(n_d, size=n_ds, replace=False)) if n_ds < n_d else np.arange(n_d)
    return q_rows, d_rows


def fit_clouds(
    query_ids: Sequence[str],
    passage_ids: Sequence[str],
    base_q: np.ndarray,
    base_d: np.ndarray,
    tuned_q: np.ndarray,
    tuned_d: np.ndarray,
    params: ProjectionParams | None = None,
    progress: Progress | None = None,
) -> Projection:
    """The "questions vs passages" pictures: questions and a uniform sample of passages (:func:`cloud_rows`),
    before and after tuning, in ONE frame.

    One UMAP is fitted on the base and the tuned points together (each block the tuned model left as it was,
    such as an adapter's passages or NUDGE's questions, only once), and the two pictures are that one layout's
    base rows and tuned rows: the same axes, so where a cloud sits before compares with where it sits after,
    with no rotation or scaling fitted between them. When the two models' vectors differ in width (they cannot
    share one fit) the base and tuned maps are fitted as :func:`fit_projection` does (the tuned one started
    from the base layout and aligned onto it). An unchanged model gives two identical pictures.

    Returns:
        A :class:`Projection` (points of both spaces, same rows in the same order).

    Raises:
        ValueError: shapes disagree, vectors hold NaN, or fewer than 4 points would be mapped.
    """
    params = params or ProjectionParams()
    report = progress or (lambda _msg, _frac: None)
    start = time.perf_counter()
    query_ids, passage_ids, base_q, base_d, tuned_q, tuned_d = checked_inputs(query_ids, passage_ids, base_q, base_d,
                                                                             tuned_q, tuned_d)
    n_q, n_d = len(query_ids), len(passage_ids)
    q_rows, d_rows = cloud_rows(n_q, n_d, params.sample, params.seed)
    if len(q_rows) + len(d_rows) < MIN_POINTS:
        raise ValueError(f"a map needs at least {MIN_POINTS} queries and passages, got {len(q_rows) + len(d_rows)}")
    ids = [query_ids[i] for i in q_rows] + [passage_ids[i] for i in d_rows]
    kinds = ["query"] * len(q_rows) + ["passage"] * len(d_rows)
    blocks = {"bq": base_q[q_rows], "bd": base_d[d_rows], "tq": tuned_q[q_rows], "td": tuned_d[d_rows]}
    widths = {b.shape[1] for b in blocks.values() if len(b)}
    if len(widths) > 1:  # different widths: no shared fit
        report("The two models' vectors differ in width: fitting two maps", 0.0)
        proj = fit_projection([query_ids[i] for i in q_rows], [passage_ids[i] for i in d_rows], blocks["bq"],
                              blocks["bd"], blocks["tq"], blocks["td"], params, progress)
        return Projection(proj.points, params, time.perf_counter() - start, 0)
    same_q = np.array_equal(blocks["bq"], blocks["tq"])
    same_d = np.array_equal(blocks["bd"], blocks["td"])
    parts = [blocks["bq"], blocks["bd"]] + ([] if same_q else [blocks["tq"]]) + ([] if same_d else [blocks["td"]])
    report("Fitting one map of both models", 0.0)
    xy = _umap_layout(np.concatenate([p for p in parts if len(p)]), params, init="spectral")
    nq, nd = len(q_rows), len(d_rows)
    xy_bq, xy_bd = xy[:nq], xy[nq : nq + nd]
    at = nq + nd
    xy_tq = xy_bq if same_q else xy[at : at + nq]
    at += 0 if same_q else nq
    xy_td = xy_bd if same_d else xy[at : at + nd]
    frames = [
        pd.DataFrame({"space": space, "kind": kinds, "id": ids,
                      "x": np.concatenate([q[:, 0], d[:, 0]]).astype(np.float32),
                      "y": np.concatenate([q[:, 1], d[:, 1]]).astype(np.float32)})
        for space, q, d in (("base", xy_bq, xy_bd), ("tuned", xy_tq, xy_td))
    ]
    report("Done", 1.0)
    return Projection(pd.concat(frames, ignore_index=True), params, time.perf_counter() - start, 0)

"""Choosing how a hybrid fuses a dense ranking (base or tuned model) with BM25, on held-out questions only.

The candidates are reciprocal rank fusion and weighted score fusion with the dense weight in
0.1 ... 0.9; the one with the best nDCG@10 on the run's validation hold-out wins (ties go to
RRF, which needs no weight). The hold-out is kept out of every method's fit and the
evaluation split is never looked at, so the hybrid's score is not flattered. Without a
hold-out (validation share 0, or too few training questions) the fusion is fixed to RRF and
``FusionChoice.fixed`` says so, for the verdict to state it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from core.dataset import QADataset
from core.retrieval import metrics as M
from core.retrieval.evaluation import evaluate_bm25, score_ranking
from core.retrieval.index import Ranking, rrf_fuse, weighted_fuse

ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # dense weight candidates of weighted fusion
OBJECTIVE = "nDCG@10"


@dataclass
class FusionChoice:
    """How the hybrid fuses dense and BM25 rankings, and on what that was decided.

    Attributes:
        method: "rrf" or "weighted".
        alpha: the dense weight of weighted fusion (None for RRF).
        scores: candidate -> validation nDCG@10 (empty when fixed).
        n_val: validation questions the choice was made on (0 when fixed).
        fixed: True when no held-out questions existed, so RRF was used without a choice.
        note: the choice in plain words.
    """

    method: str = "rrf"
    alpha: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    n_val: int = 0
    fixed: bool = True
    note: str = ""

    @property
    def key(self) -> str:
        """This choice's name among the candidates ("rrf", "weighted 0.4")."""
        return "rrf" if self.method == "rrf" else f"weighted {float(self.alpha):.1f}"

    @property
    def best_score(self) -> float | None:
        """The validation nDCG@10 that chose it (None when fixed)."""
        return self.scores.get(self.key) if not self.fixed else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FusionChoice:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def fuse(dense: Ranking, sparse: Ranking, choice: FusionChoice) -> Ranking:
    if choice.method == "rrf":
        return rrf_fuse([dense, sparse], k=M.DEPTH)
    return weighted_fuse(dense, sparse, alpha=float(choice.alpha), k=M.DEPTH)


FIXED_NOTE = ("The hybrid uses fixed reciprocal rank fusion: no training questions were held out "
              "(validation share 0 or too few questions), so no fusion was chosen, and none was chosen on "
              "questions the model trained on.")


def choose_fusion(val: QADataset | None, dense: Ranking | None, *, sparse: Ranking | None = None,
                  label: str = "Hybrid") -> FusionChoice:
    """The fusion with the best validation nDCG@10, or fixed RRF without validation questions. Every
    hybrid of a run is chosen by this one procedure on the same hold-out (the base hybrid too).

    Args:
        val: the run's validation hold-out (no method trained on it), or None.
        dense: the dense system's ranking of ``val`` (rows in ``val.query_ids`` order).
        sparse: BM25's ranking of ``val`` (computed when not given).
        label: what the note calls this hybrid.
    """
    if val is None or dense is None or len(val) == 0:
        return FusionChoice(note=FIXED_NOTE if label == "Hybrid" else f"{label}: {FIXED_NOTE[0].lower()}{FIXED_NOTE[1:]}")
    sparse = sparse if sparse is not None else evaluate_bm25(val).ranking()
    scores = {"rrf": score_ranking("rrf", val, fuse(dense, sparse, FusionChoice())).metrics[OBJECTIVE]}
    for a in ALPHAS:
        ranking = fuse(dense, sparse, FusionChoice("weighted", a))
        scores[f"weighted {a:.1f}"] = score_ranking("w", val, ranking).metrics[OBJECTIVE]
    best = max(scores, key=lambda k: (scores[k], k == "rrf"))
    if best == "rrf":
        method, alpha, how = "rrf", None, "reciprocal rank fusion"
    else:
        method, alpha = "weighted", float(best.split()[1])
        how = f"weighted fusion, dense weight {alpha:.1f}"
    note = (f"{label}: {how}, chosen on {len(val)} validation questions held out from training "
            f"(nDCG@10 {scores[best]:.3f}); the evaluation split was not used.")
    return FusionChoice(method, alpha, scores, len(val), False, note)

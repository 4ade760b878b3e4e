"""A retriever a user could deploy, described once: first stages, their fusion, an optional rerank.

Users deploy a retriever, not a model. A run scores several of them on the same passages and
questions, and the lab's question is whether the best one *with* tuning beats the best one
*without* it. Every reader works from this one description:

- ``core.tuning.runs`` builds the run's pipelines (``standard_pipelines``) and scores each;
- ``core.retrieval.results`` stores each system's ``Pipeline`` beside its metrics, refuses a
  comparison whose two hybrids had their fusion decided differently (``fusion_unfair``), and picks
  the best pipeline on each side by one rule (``best_of``);
- ``core.retrieval.stats.pipeline_verdict`` names the pipeline to deploy and what tuning added;
- ``core.insight.export`` ships the recommended pipeline whole.

Stages, in order:

    first stages   dense (the base or the tuned model) and/or BM25 (keywords)
    fusion         how two first stages are merged (``FusionChoice``: RRF or weighted, and on what
                   questions that was chosen); absent with one first stage
    rerank         a cross-encoder over the top k of the fused list (optional)

A pipeline "uses tuning" when its dense stage is the tuned model or its reranker was trained on
the run's questions. Roles are the keys results use; the five standard ones:

    base         base model, dense                 tuned    tuned model, dense
    bm25         BM25                              base_hybrid   base model + BM25, fused
    hybrid       tuned model + BM25, fused          (``hybrid`` keeps its name from older runs)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from core.retrieval.fusion import FusionChoice

BASE, TUNED, BM25, BASE_HYBRID, HYBRID = "base", "tuned", "bm25", "base_hybrid", "hybrid"
RERANK, BASE_RERANK = "rerank", "base_rerank"
ROLES = (BASE, TUNED, BM25, BASE_HYBRID, HYBRID, BASE_RERANK, RERANK)  # display order
# Ties in the best-pipeline choice go to the simpler pipeline: fewer stages first.
SIMPLICITY = {BASE: 0, TUNED: 0, BM25: 0, BASE_HYBRID: 1, HYBRID: 1, BASE_RERANK: 2, RERANK: 2}


@dataclass(frozen=True)
class Pipeline:
    """One deployable retriever.

    Attributes:
        role: its key in a run's results (``ROLES``).
        name: what pages, tables and the report call it.
        dense: the dense first stage's model, "base" or "tuned"; None without a dense stage.
        bm25: whether BM25 is a first stage.
        fusion: how the two first stages are fused (None with one first stage).
        rerank: the reranker's label (a folder, hub id or "trained on this run"); None without one.
        rerank_top_k: how many first-stage results the reranker reorders.
        rerank_trained: the reranker was trained on this run's training questions (counts as tuning).
        first_stage: the role of the pipeline a rerank stage reorders (None without a rerank stage).
    """

    role: str
    name: str
    dense: str | None = None
    bm25: bool = False
    fusion: FusionChoice | None = field(default=None, compare=False)
    rerank: str | None = None
    rerank_top_k: int | None = None
    rerank_trained: bool = False
    first_stage: str | None = None

    @property
    def uses_tuning(self) -> bool:
        return self.dense == TUNED or self.rerank_trained

    @property
    def hybrid(self) -> bool:
        return self.dense is not None and self.bm25

    def stages(self) -> list[str]:
        """The stages in plain words, first to last."""
        first = []
        if self.dense:
            first.append(f"{self.dense} model (dense)")
        if self.bm25:
            first.append("BM25 (keywords)")
        out = [" + ".join(first)]
        if self.hybrid:
            f = self.fusion or FusionChoice()
            how = "reciprocal rank fusion" if f.method == "rrf" else f"weighted fusion (dense weight {f.alpha:.1f})"
            out.append(how + (", fixed (no held-out questions)" if f.fixed else f", chosen on {f.n_val} held-out questions"))
        if self.rerank:
            out.append(f"reranked: top {self.rerank_top_k} by {self.rerank}")
        return out

    def describe(self) -> str:
        return "; ".join(self.stages())

    def with_fusion(self, fusion: FusionChoice) -> Pipeline:
        return replace(self, fusion=fusion)

    def to_dict(self) -> dict:
        return {"role": self.role, "name": self.name, "dense": self.dense, "bm25": self.bm25,
                "fusion": self.fusion.to_dict() if self.fusion else None, "rerank": self.rerank,
                "rerank_top_k": self.rerank_top_k, "rerank_trained": self.rerank_trained,
                "first_stage": self.first_stage}

    @classmethod
    def from_dict(cls, d: dict) -> Pipeline:
        return cls(d["role"], d["name"], d.get("dense"), bool(d.get("bm25")),
                   FusionChoice.from_dict(d["fusion"]) if d.get("fusion") else None, d.get("rerank"),
                   d.get("rerank_top_k"), bool(d.get("rerank_trained")), d.get("first_stage"))


def standard_pipelines(tuned_name: str) -> dict[str, Pipeline]:
    """The five pipelines every run scores (fusions are filled in once chosen).

    Args:
        tuned_name: the tuned dense system's display name, e.g. "tuned (full)".
    """
    return {
        BASE: Pipeline(BASE, "base", dense=BASE),
        TUNED: Pipeline(TUNED, tuned_name, dense=TUNED),
        BM25: Pipeline(BM25, "BM25", bm25=True),
        BASE_HYBRID: Pipeline(BASE_HYBRID, "hybrid (base + BM25)", dense=BASE, bm25=True),
        HYBRID: Pipeline(HYBRID, "hybrid (tuned + BM25)", dense=TUNED, bm25=True),
    }


def legacy_pipeline(role: str, name: str, fusion: FusionChoice | None = None) -> Pipeline:
    """The pipeline a role stood for in runs saved before pipelines were recorded."""
    known = standard_pipelines(name)
    p = known.get(role, Pipeline(role, name))
    return replace(p, name=name, fusion=fusion if p.hybrid else None)


def fusion_unfair(pipelines: dict[str, Pipeline]) -> list[str]:
    """Why the hybrids of one comparison did not have their fusion decided the same way (empty: fair).

    Both hybrids must have been chosen on the same held-out questions from the same candidates, or
    both fixed to the same rule.
    """
    hybrids = [p for p in pipelines.values() if p.hybrid]
    out = []
    for a in hybrids:
        for b in hybrids:
            if a.role >= b.role:
                continue
            fa, fb = a.fusion or FusionChoice(), b.fusion or FusionChoice()
            if fa.fixed != fb.fixed:
                chosen, fixed = (a, b) if not fa.fixed else (b, a)
                out.append(f"{chosen.name}'s fusion was chosen on held-out questions but {fixed.name}'s was fixed")
            elif not fa.fixed and (fa.n_val != fb.n_val or sorted(fa.scores) != sorted(fb.scores)):
                out.append(f"{a.name} and {b.name} chose their fusion on different questions or candidates "
                           f"({fa.n_val} vs {fb.n_val} questions)")
            elif fa.fixed and (fa.method, fa.alpha) != (fb.method, fb.alpha):
                out.append(f"{a.name} and {b.name} use different fixed fusions")
    return out


@dataclass(frozen=True)
class BestChoice:
    """The best pipeline on each side, and on what questions that was decided.

    Attributes:
        untuned: role of the best pipeline without tuning.
        tuned: role of the best pipeline with tuning.
        chosen_on: "validation" (held-out training questions) or "evaluation" (no hold-out: both sides
            picked on the evaluation questions alike, which flatters both the same way).
        n: questions the choice was made on.
        scores: role -> the nDCG@10 the choice compared.
    """

    untuned: str
    tuned: str
    chosen_on: str
    n: int
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return {"untuned": self.untuned, "tuned": self.tuned, "chosen_on": self.chosen_on, "n": self.n,
                "scores": self.scores}

    @classmethod
    def from_dict(cls, d: dict) -> BestChoice:
        return cls(d["untuned"], d["tuned"], d["chosen_on"], int(d.get("n", 0)), dict(d.get("scores", {})))

    def describe(self) -> str:
        where = (f"{self.n} validation questions held out from training" if self.chosen_on == "validation"
                 else f"the {self.n} evaluation questions themselves (no hold-out; both sides alike)")
        return f"each side's best pipeline picked by nDCG@10 on {where}"


def best_of(pipelines: dict[str, Pipeline], scores: dict[str, float], chosen_on: str, n: int) -> BestChoice:
    """The best pipeline with and without tuning by ``scores`` (higher wins; ties to the simpler one,
    then to the role order).

    A hybrid's validation score is that of the fusion chosen on the same questions (the best of its
    candidates), so it is slightly optimistic against a single-stage pipeline's; both sides have a
    hybrid chosen this way, so neither side gains from it.

    Raises:
        ValueError: a side has no scored pipeline.
    """
    def pick(side: bool) -> str:
        roles = [r for r, p in pipelines.items() if p.uses_tuning == side and r in scores]
        if not roles:
            raise ValueError(f"no scored pipeline {'with' if side else 'without'} tuning")
        return max(roles, key=lambda r: (round(scores[r], 10), -SIMPLICITY.get(r, 9), -ROLES.index(r)
                                         if r in ROLES else -99))

    return BestChoice(pick(False), pick(True), chosen_on, n, {r: float(scores[r]) for r in pipelines if r in scores})

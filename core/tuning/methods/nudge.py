"""NUDGE: the stored PASSAGE vectors move towards their training questions (``core.tuning.nudge``); the
model is unchanged.

Saves ``nudged.npy`` + ``nudged_ids.json``; the tuned side is the base model searching the nudged vectors,
so it only helps where the evaluation searches the training passages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from core.dataset import DataError
from core.retrieval.backends import backend_of
from core.retrieval.evaluation import Conditions, evaluate_vectors, model_name
from core.retrieval.index import DenseIndex, Ranking
from core.tuning.context import Fit, FitContext, positives
from core.tuning.methods.adapter import vector_fit_cost
from core.tuning.methods.base import Method
from core.tuning.nudge import nudge, nudge_applies, replace_nudged
from core.tuning.settings import setting
from core.workspace.files import atomic_save_npy, atomic_write_json, read_json


@dataclass
class NudgeSettings:
    """NUDGE: the stored PASSAGE vectors move towards their training questions (no model change)."""

    variant: Literal["N", "M"] = setting("N", "N keeps vectors unit length (mixes with untouched vectors "
                                         "under cosine search); M moves them without renormalising.",
                                         label="Variant", advanced=True)
    val_fraction: float = setting(0.15, "Share of its training questions the fit holds back to choose the "
                                  "step size.", label="Fit validation share", min=0.05, max=0.5, step=0.05,
                                  advanced=True)


def fit(ctx: FitContext) -> Fit:
    ok, why = nudge_applies(ctx.train.corpus, ctx.ev.corpus)
    if not ok:
        raise DataError(why)
    if ctx.spec.scoring.windows:
        raise DataError("NUDGE moves one stored vector per passage; with windowed passages each passage has "
                        "several. Turn 'Windowed passages' off for NUDGE, or use the adapter or a full fine-tune.")
    t0 = time.perf_counter()
    if ctx.reuse:  # re-scoring: the saved nudged vectors
        new_d = np.load(ctx.run_dir / "nudged.npy", allow_pickle=False)
        ids = read_json(ctx.run_dir / "nudged_ids.json")
        return _score(ctx, new_d, ids, t0, [], 0.0)
    q_vecs, d_vecs = ctx.vectors(ctx.train, "the training questions")
    ids = list(ctx.train.corpus)
    ctx.reporter.phase("training", "NUDGE: moving passage vectors toward their questions")
    s = ctx.spec.settings
    new_d, hist = nudge(q_vecs, positives(ctx.train, ids), d_vecs, variant=s.variant, val_fraction=s.val_fraction,
                        seed=ctx.spec.seed, corpus_ids=ids,
                        progress=lambda m, f: ctx.reporter.progress(int(f * 100), 100, "% of step sizes"))
    fit_seconds = time.perf_counter() - t0
    ctx.reporter.check_cancel()
    atomic_save_npy(ctx.run_dir / "nudged.npy", new_d.astype(np.float32))
    atomic_write_json(ctx.run_dir / "nudged_ids.json", ids)
    c = hist.chosen
    lines = [f"{c['variant']}: step size {c['gamma']:g} chosen on {c['n_val']} held-back training questions; "
             f"{c['passages_changed']} passages moved."]
    return _score(ctx, new_d, ids, t0, lines, fit_seconds)


def _score(ctx: FitContext, new_d: np.ndarray, ids: list[str], t0: float, lines: list[str],
           fit_seconds: float) -> Fit:
    e_q, e_d = ctx.vectors(ctx.ev, "the evaluation data")
    label = f"{model_name(ctx.base)} + NUDGE passage vectors"
    res = evaluate_vectors("tuned (NUDGE)", ctx.ev, e_q, replace_nudged(list(ctx.ev.corpus), e_d, ids, new_d),
                           Conditions.of(ctx.ev, ctx.spec.scoring.passage_tokens, label, backend=backend_of(ctx.base)),
                           time.perf_counter() - t0)

    def val_ranking(val) -> Ranking:
        vq, vd = ctx.vectors(val, "the validation questions")
        return DenseIndex(list(val.corpus), replace_nudged(list(val.corpus), vd, ids, new_d)).search(vq)

    return res, lines, val_ranking, fit_seconds


def unchanged(run_dir: Path, training: list[str], vectors) -> str | None:
    """Why NUDGE left the base model unchanged (step size 0: no vector moved), else None."""
    said = " ".join(training)
    if "step size 0 chosen" not in said and " 0 passages moved" not in said:
        return None
    found = vectors()
    if found and all(k in found for k in ("base_d", "tuned_d")) and np.array_equal(found["base_d"], found["tuned_d"]):
        return ("NUDGE moved no passage vector (step size 0 was the best on its held-back training questions): "
                "the tuned model is the base model unchanged")
    return None


SNIPPET_ENCODER = '''
from sentence_transformers import SentenceTransformer  # noqa: E402

# The unchanged base model encodes questions; the stored passage vectors carry NUDGE's changes.
model = SentenceTransformer(base_model(), truncate_dim=info["truncate_dim"])
model.max_seq_length = info["max_seq_length"]


def embed_query(text):
    return model.encode_query([text], normalize_embeddings=True)[0]


def embed_passages(texts):  # passages NUDGE never saw: plain base-model vectors
    return model.encode_document(list(texts), normalize_embeddings=True)
'''

CARD_USAGE = """NUDGE changed the stored PASSAGE vectors of the training corpus; the base model is
unchanged. Replace the vectors of these passages in your index (ids in `nudged_ids.json`, one
row of `nudged.npy` each) and keep encoding questions with the base model
({base_model}).

```python
import json
import numpy as np

ids = json.load(open("nudged_ids.json"))
vectors = np.load("nudged.npy", allow_pickle=False)  # (len(ids), dim) float32, unit length
```"""


METHOD = Method(
    name="nudge",
    label="NUDGE (passage vectors)",
    caption="Moves the stored passage vectors toward their training questions. For a fixed collection of "
    "passages only; the first run encodes the collection once.",
    settings=NudgeSettings,
    fit=fit,
    saves=("nudged.npy", "nudged_ids.json"),
    in_shootout=True,
    shootout_default=True,
    searches_training_passages=True,
    cost=vector_fit_cost("NUDGE"),
    snippet_encoder=SNIPPET_ENCODER,
    card_what="NUDGE-adjusted passage vectors for the training corpus (base model unchanged)",
    card_usage=CARD_USAGE,
    card_reindex="**A new model means re-indexing the collection**, but NUDGE is not a new model: questions are "
    "encoded by the base model and the nudged passages replace their vectors in your index (`embeddings.parquet` "
    "holds the evaluation collection with nudged vectors where they apply). If you change the base model, or the "
    "dimension, re-index everything.",
    unchanged=unchanged,
)

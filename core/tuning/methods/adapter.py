"""The query adapter: a linear map on QUESTION vectors, fitted on cached base embeddings
(``core.tuning.adapter``); passages stay base-model vectors.

Saves ``adapter.npz``; the tuned side is the base model with its question vectors moved by the adapter.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.dataset import corpus_words
from core.retrieval.backends import backend_of
from core.retrieval.evaluation import Conditions, evaluate_vectors, model_name
from core.retrieval.index import Ranking
from core.tuning.adapter import LinearAdapter, fit_linear_adapter
from core.tuning.context import Fit, FitContext, positives
from core.tuning.cost import ENCODE_SECONDS_PER_TOKEN, FAST_FIT_SECONDS, tokens
from core.tuning.methods.base import Method
from core.tuning.settings import setting

FILE = "adapter.npz"


@dataclass
class AdapterSettings:
    """A linear map on QUESTION vectors, fitted on cached base embeddings (passages stay as they are)."""

    epochs: int = setting(30, "With ~700 questions and batch 64 that is ~300 steps: enough to converge, "
                          "seconds on a CPU.", label="Epochs", min=1, max=500)
    lr: float = setting(1e-3, "AdamW's usual rate; the map moves gradually away from the identity (a safe "
                        "start).", label="Learning rate", min=1e-6, max=1e-1, step=1e-4, format="%.0e")
    temperature: float = setting(0.05, "The usual InfoNCE scale for cosine scores (sentence-transformers "
                                 "uses 1/20).", label="Temperature", min=0.005, max=1.0, step=0.005,
                                 advanced=True)
    weight_decay: float = setting(0.0, "Off: the base vectors are already good; >0 pulls the map towards the "
                                  "identity.", label="Weight decay", min=0.0, max=1.0, step=0.01, advanced=True)
    batch_size: int = setting(64, "Small data: more update steps per epoch; the softmax is over the whole "
                              "corpus anyway.", label="Batch size", min=1, max=4096, advanced=True)
    patience: int = setting(5, "Epochs without a better validation MRR@10 before stopping early.",
                            label="Patience", min=1, max=100, advanced=True)
    val_fraction: float = setting(0.15, "Share of its training questions the fit holds back to choose the "
                                  "epoch to keep (never the run's validation or evaluation questions).",
                                  label="Fit validation share", min=0.0, max=0.5, step=0.05, advanced=True)


def fit(ctx: FitContext) -> Fit:
    t0 = time.perf_counter()
    s = ctx.spec.settings
    if ctx.reuse:  # re-scoring: the saved adapter
        adapter, hist, fit_seconds = LinearAdapter.load(ctx.run_dir / FILE), None, 0.0
    else:
        q_vecs, d_vecs = ctx.vectors(ctx.train, "the training questions")
        ids = list(ctx.train.corpus)
        ctx.reporter.phase("training", "Fitting the query adapter")
        adapter, hist = fit_linear_adapter(
            q_vecs, positives(ctx.train, ids), d_vecs, epochs=s.epochs, lr=s.lr, temperature=s.temperature,
            weight_decay=s.weight_decay, batch_size=s.batch_size, val_fraction=s.val_fraction, seed=ctx.spec.seed,
            patience=s.patience,
            progress=lambda m, f: ctx.reporter.progress(int(round(f * s.epochs)), s.epochs, "epochs"),
            should_stop=ctx.reporter.should_stop, corpus_ids=ids)
        fit_seconds = time.perf_counter() - t0
        for i, loss in enumerate(hist.losses):
            ctx.reporter.loss(i + 1, loss)
        ctx.reporter.check_cancel()
        adapter.save(ctx.run_dir / FILE)
    e_q, e_d, e_w = ctx.search_vectors(ctx.ev, "the evaluation data")
    label = f"{model_name(ctx.base)} + query adapter"
    res = evaluate_vectors("tuned (adapter)", ctx.ev, adapter.transform(e_q), e_d,
                           Conditions.of(ctx.ev, ctx.spec.scoring.passage_tokens, label, ctx.spec.overlap,
                                         backend=backend_of(ctx.base)),
                           time.perf_counter() - t0, windows=e_w)

    def val_ranking(val) -> Ranking:
        vq, vd, vw = ctx.search_vectors(val, "the validation questions")
        return evaluate_vectors("v", val, adapter.transform(vq), vd, res.conditions, windows=vw).ranking()

    if hist is None:
        return res, [], val_ranking, fit_seconds
    c = hist.chosen
    kept = "no change (the identity: no epoch beat the base model)" if c["epoch"] == 0 else f"epoch {c['epoch']}"
    lines = [f"Query adapter fitted on {c['n_train']} questions; {c['n_val']} of them held back chose what to keep: "
             f"{kept}."]
    if c.get("val_mrr@10") is not None:
        lines.append(f"Its validation MRR@10 was {c['val_mrr@10']:.3f} against {c['baseline_val_mrr@10']:.3f} "
                     "for the base model.")
    return res, lines, val_ranking, fit_seconds


def vector_fit_cost(label: str):
    """The cost of a fit on cached base vectors: the training passages encoded once, then seconds."""

    def cost(est, spec, sub, train, ev, ev_tokens: int) -> None:
        est.add(f"encoding {corpus_words(train)} for the {label} (first run only)",
                tokens(train.corpus.values(), spec.scoring.passage_tokens) * ENCODE_SECONDS_PER_TOKEN)
        est.add(f"fitting the {label}", FAST_FIT_SECONDS)

    return cost


def query_transform(run_dir: Path):
    """The saved adapter's map on question vectors."""
    return LinearAdapter.load(Path(run_dir) / FILE).transform


def unchanged(run_dir: Path, training: list[str], vectors) -> str | None:
    """Why the adapter left the base model unchanged (it kept the identity), else None."""
    try:
        adapter = LinearAdapter.load(Path(run_dir) / FILE)
    except (FileNotFoundError, ValueError):
        return None
    if np.array_equal(adapter.weight, np.eye(adapter.dim, dtype=np.float32)) and not adapter.bias.any():
        return ("No epoch of the query adapter beat the base model on its held-back training questions, so "
                "the run kept the identity: the tuned model is the base model unchanged")
    return None


SNIPPET_ENCODER = '''
from sentence_transformers import SentenceTransformer  # noqa: E402

# The unchanged base model; the adapter moves QUESTION vectors only (passages stay base-model vectors).
model = SentenceTransformer(base_model())
model.max_seq_length = info["max_seq_length"]
adapter = np.load(BUNDLE / "adapter.npz", allow_pickle=False)
W, b = adapter["weight"], adapter["bias"]


def _cut(v):  # the first `dimension` coordinates, unit length again
    v = v[..., : info["dimension"]]
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def embed_query(text):
    q = model.encode_query([text], normalize_embeddings=True) @ W.T + b
    return _cut(q / np.linalg.norm(q, axis=1, keepdims=True))[0]


def embed_passages(texts):
    return _cut(model.encode_document(list(texts), normalize_embeddings=True))
'''

CARD_USAGE = """The base model is unchanged; only QUESTION vectors are transformed, so an existing
passage index built with the base model keeps working.

```python
import numpy as np
from sentence_transformers import SentenceTransformer

base = SentenceTransformer({base_model_py})
z = np.load("adapter.npz", allow_pickle=False)
W, b = z["weight"], z["bias"]

def encode_question(text):
    q = base.encode([text], normalize_embeddings=True) @ W.T + b
    return q / np.linalg.norm(q, axis=1, keepdims=True)
```"""


METHOD = Method(
    name="adapter",
    label="Query adapter",
    caption="Learns a small transform of question vectors on top of the unchanged model. The first run encodes "
    "the collection with the base model once (the estimate below includes it); then seconds.",
    settings=AdapterSettings,
    fit=fit,
    saves=(FILE,),
    in_shootout=True,
    shootout_default=True,
    cost=vector_fit_cost("adapter"),
    query_transform=query_transform,
    query_file=FILE,
    snippet_encoder=SNIPPET_ENCODER,
    card_what="a linear query adapter applied on top of the unchanged base model",
    card_usage=CARD_USAGE,
    card_reindex="**A new model means re-indexing the collection**, but an adapter is not a new model: passages "
    "stay base-model vectors (those in `embeddings.parquet` are), only questions pass through the adapter. If you "
    "change the base model, or the dimension, re-index everything.",
    unchanged=unchanged,
)

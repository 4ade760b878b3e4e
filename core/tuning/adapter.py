"""A linear query adapter fitted on cached embeddings: ``q' = normalise(q @ W.T + b)``.

Only QUESTION vectors change (passages stay as they are, so no re-indexing). Loss: InfoNCE over
the whole corpus. The fit holds back ``val_fraction`` of its questions to choose the epoch to
keep (by MRR@10, ``core.tuning.vectorfit``), with the identity (no adapter) as a candidate.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.tuning.vectorfit import (
    SEED,
    VAL_FRACTION,
    FitHistory,
    Progress,
    ShouldStop,
    check_inputs,
    limited_threads,
    mean_rr,
    report,
    split_indices,
    tie_order,
)
from core.workspace.files import atomic_write_bytes

# Defaults of fit_linear_adapter, each with the reason it was picked (the run spec's AdapterSettings
# carries the same defaults with their help text for the pages).
EPOCHS = 30  # with ~700 queries and batch 64 that is ~300 steps: enough to converge, seconds on a CPU
LR = 1e-3  # AdamW's usual rate; W moves gradually away from the identity (a safe start)
TEMPERATURE = 0.05  # the usual InfoNCE scale for cosine scores (sentence-transformers uses 1/20)
WEIGHT_DECAY = 0.0  # off: the base vectors are already good; >0 pulls W towards the identity, b to 0
BATCH_SIZE = 64  # small data: more update steps per epoch; the softmax is over the whole corpus anyway
PATIENCE = 5  # epochs without a better validation MRR@10 before stopping early


@dataclass(eq=False)  # array fields: compare weights with np.array_equal, not ==
class LinearAdapter:
    """A linear map applied to QUERY embeddings: ``q' = normalise(q @ W.T + b)``.

    Passage embeddings are untouched, so an existing index keeps working.

    Attributes:
        weight: W, (dim, dim) float32; the identity before training.
        bias: b, (dim,) float32; zeros before training.
    """

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self) -> None:
        self.weight = np.ascontiguousarray(self.weight, dtype=np.float32)
        self.bias = np.ascontiguousarray(self.bias, dtype=np.float32)
        if self.weight.ndim != 2 or self.weight.shape[0] != self.weight.shape[1]:
            raise ValueError(f"weight must be a square (dim, dim) matrix, got shape {self.weight.shape}")
        if self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"bias must have shape ({self.weight.shape[0]},), got {self.bias.shape}")

    @classmethod
    def identity(cls, dim: int) -> LinearAdapter:
        """The adapter that changes nothing (W = I, b = 0) for ``dim``-dimensional vectors."""
        return cls(np.eye(dim, dtype=np.float32), np.zeros(dim, dtype=np.float32))

    @property
    def dim(self) -> int:
        """The embedding dimension the adapter works on."""
        return int(self.weight.shape[0])

    def transform(self, queries: np.ndarray) -> np.ndarray:
        """Adapt query embeddings.

        Args:
            queries: (n, dim) float32 query vectors (or one (dim,) vector).

        Returns:
            (n, dim) float32, L2-normalised rows (or (dim,) for a single vector).
        """
        q = np.asarray(queries, dtype=np.float32)
        single = q.ndim == 1
        q2 = q.reshape(1, -1) if single else q
        if q2.ndim != 2 or q2.shape[1] != self.dim:
            raise ValueError(f"queries must be (n, {self.dim}), got shape {q.shape}")
        out = q2 @ self.weight.T + self.bias
        out = (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        return out[0] if single else out

    def save(self, path: str | Path) -> Path:
        """Write the adapter to ``path`` (an .npz holding ``weight`` and ``bias``; no pickle).

        Returns:
            The path written (exactly ``path``; no suffix is added).
        """
        path = Path(path)
        buf = io.BytesIO()
        np.savez(buf, weight=self.weight, bias=self.bias)
        atomic_write_bytes(path, buf.getvalue())  # temp file + rename: never a half-written .npz
        return path

    @classmethod
    def load(cls, path: str | Path) -> LinearAdapter:
        """Read an adapter written by ``save``.

        Loading never unpickles (``allow_pickle=False``): a file holding Python objects is
        refused with ValueError, so an untrusted file cannot run code.

        Raises:
            ValueError: the file is not an adapter (missing arrays, wrong shapes, objects).
        """
        data = np.load(Path(path), allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"{path} is not a saved adapter: expected an .npz archive with weight and bias.")
        with data:
            missing = {"weight", "bias"} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not a saved adapter: missing {', '.join(sorted(missing))}.")
            return cls(np.array(data["weight"]), np.array(data["bias"]))



def fit_linear_adapter(
    queries: np.ndarray,
    positives: list[list[int]],
    corpus: np.ndarray,
    *,
    epochs: int = EPOCHS,
    lr: float = LR,
    temperature: float = TEMPERATURE,
    weight_decay: float = WEIGHT_DECAY,
    batch_size: int = BATCH_SIZE,
    val_fraction: float = VAL_FRACTION,
    seed: int = SEED,
    patience: int | None = PATIENCE,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    corpus_ids: Sequence[str] | None = None,
) -> tuple[LinearAdapter, FitHistory]:
    """Train a linear query adapter with a contrastive loss over the whole corpus.

    Loss: for each training query, softmax over ALL passages of ``cos(q', p) / temperature``
    (InfoNCE with every other passage as a negative); the loss is the cross-entropy against
    a target spread evenly over the query's positives, i.e. minus the MEAN log-probability
    of its positives (every positive is used every epoch; nothing is sampled).

    W is parametrised as ``I + D`` and starts at the identity (D = 0, b = 0); AdamW's weight
    decay therefore pulls towards the identity, not towards zero. A validation part of the
    training queries (``val_fraction``, drawn by ``seed``) is scored with MRR@10 after every
    epoch; the weights of the best epoch are kept, with epoch 0 (the identity) as a
    candidate, so the adapter is never worse than none on the validation queries. Training
    stops after ``patience`` epochs without a gain. Runs are repeatable: the split uses
    ``seed`` and batch shuffling a torch.Generator seeded with ``seed`` (global RNG state
    is left alone). Speed: ~700 queries x 400 passages x 384 dims, 30 epochs, takes 2-4 s
    on one CPU core; the fit runs with ``FIT_THREADS`` torch/BLAS threads (a process-wide
    setting while it runs, restored after).

    Args:
        queries: (n, dim) float32 training query vectors, L2-normalised.
        positives: per query, row indices into ``corpus`` of its relevant passages; queries
            with none are ignored.
        corpus: (m, dim) float32 passage vectors, L2-normalised.
        epochs: passes over the training part.
        lr: AdamW learning rate.
        temperature: softmax temperature (logits are cosine / temperature).
        weight_decay: AdamW decay of D and b (towards the identity map).
        batch_size: queries per update step.
        val_fraction: share of the queries held out to choose the epoch; 0 keeps the last
            epoch (no validation, no early stop).
        seed: seed of the split and the shuffling.
        patience: epochs without validation gain before stopping; None never stops early.
        progress: called with (message, fraction) after every epoch, fractions increasing,
            the last call with 1.0.
        should_stop: checked after every epoch; True ends training (the best weights so far
            are returned and ``history.cancelled`` is set).
        corpus_ids: the corpus rows' passage ids; validation ranks break score ties by id, as the
            evaluation does (None: by row order).

    Returns:
        (adapter, history); ``history.chosen`` = {"epoch", "val_mrr@10",
        "baseline_val_mrr@10", "n_train", "n_val"}.

    Raises:
        ValueError: bad shapes, positives outside the corpus, no query with a positive, or
            bad hyperparameters.
    """
    with limited_threads(torch_too=True):
        return _fit_linear_adapter(
            queries, positives, corpus, epochs=epochs, lr=lr, temperature=temperature,
            weight_decay=weight_decay, batch_size=batch_size, val_fraction=val_fraction, seed=seed,
            patience=patience, progress=progress, should_stop=should_stop, corpus_ids=corpus_ids,
        )


def _fit_linear_adapter(
    queries: np.ndarray,
    positives: list[list[int]],
    corpus: np.ndarray,
    *,
    epochs: int,
    lr: float,
    temperature: float,
    weight_decay: float,
    batch_size: int,
    val_fraction: float,
    seed: int,
    patience: int | None,
    progress: Progress | None,
    should_stop: ShouldStop | None,
    corpus_ids: Sequence[str] | None,
) -> tuple[LinearAdapter, FitHistory]:
    import torch
    import torch.nn.functional as F

    q, pos, c = check_inputs(queries, positives, corpus)
    ties = tie_order(corpus_ids, len(c))
    if epochs < 1 or batch_size < 1 or temperature <= 0 or lr <= 0:
        raise ValueError("epochs and batch_size must be >= 1, temperature and lr > 0")
    usable = np.array([i for i, p in enumerate(pos) if p], dtype=np.int64)
    if len(usable) == 0:
        raise ValueError("No training query has a relevant passage in the corpus: nothing to learn from.")
    fit_rel, val_rel = split_indices(len(usable), val_fraction, seed)
    fit_idx, val_idx = usable[fit_rel], usable[val_rel]
    val_q, val_pos = q[val_idx], [pos[i] for i in val_idx]
    dim, m = q.shape[1], c.shape[0]

    gen = torch.Generator().manual_seed(seed)
    fit_q = torch.from_numpy(q[fit_idx])
    fit_pos = [pos[i] for i in fit_idx]
    corpus_t = torch.from_numpy(c).T.contiguous()  # (dim, m)
    eye = torch.eye(dim)
    delta = torch.zeros(dim, dim, requires_grad=True)
    bias = torch.zeros(dim, requires_grad=True)
    opt = torch.optim.AdamW([delta, bias], lr=lr, weight_decay=weight_decay)

    def snapshot() -> LinearAdapter:
        with torch.no_grad():
            return LinearAdapter((eye + delta).numpy().copy(), bias.numpy().copy())

    history = FitHistory()
    has_val = len(val_idx) > 0
    baseline = mean_rr(val_q, val_pos, c, ties) if has_val else None
    best_adapter, best_epoch, best_score = LinearAdapter.identity(dim), 0, baseline
    since_best = 0
    n_fit = len(fit_idx)
    report(progress, f"Training a linear adapter on {n_fit} questions ({len(val_idx)} held out)", 0.0)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n_fit, generator=gen)
        total = 0.0
        for start in range(0, n_fit, batch_size):
            idx = order[start : start + batch_size]
            target = torch.zeros(len(idx), m)
            for r, i in enumerate(idx.tolist()):
                target[r, fit_pos[i]] = 1.0 / len(fit_pos[i])
            adapted = F.normalize(fit_q[idx] @ (eye + delta).T + bias, dim=1)
            loss = F.cross_entropy(adapted @ corpus_t / temperature, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        history.losses.append(total / n_fit)
        history.steps.append(float(epoch))
        current = snapshot()
        message = f"Epoch {epoch}/{epochs}: loss {history.losses[-1]:.4f}"
        if has_val:
            score = mean_rr(current.transform(val_q), val_pos, c, ties)
            history.val_scores.append(score)
            message += f", validation MRR@10 {score:.4f}"
            if score > best_score + 1e-12:
                best_adapter, best_epoch, best_score, since_best = current, epoch, score, 0
            else:
                since_best += 1
        else:
            best_adapter, best_epoch = current, epoch
        report(progress, message, 0.95 * epoch / epochs)
        if should_stop is not None and should_stop():
            history.cancelled = True
            break
        if has_val and patience is not None and since_best >= patience and epoch < epochs:
            history.stopped_early = True
            break

    history.chosen = {
        "epoch": best_epoch,
        "val_mrr@10": best_score,
        "baseline_val_mrr@10": baseline,
        "n_train": int(n_fit),
        "n_val": int(len(val_idx)),
    }
    why = "cancelled" if history.cancelled else "stopped early" if history.stopped_early else "done"
    kept = "no change (identity)" if best_epoch == 0 else f"epoch {best_epoch}"
    report(progress, f"Adapter {why}: kept {kept}", 1.0)
    return best_adapter, history


"""Fast tuning methods that work on cached embeddings: a linear query adapter and NUDGE.

Both start from vectors the base model already produced (``core.retrieval.embedding.encode``:
float32, L2-normalised rows) and never touch the model, so they run in seconds on a CPU.
Their output is evaluated exactly like a full fine-tune: the caller ranks with
``core.retrieval.index.DenseIndex`` and scores with ``core.retrieval.evaluation.score_ranking``.

* ``fit_linear_adapter`` learns ``q' = normalise(q @ W.T + b)`` for QUERY vectors only
  (passages stay as they are, so no re-indexing). Loss: InfoNCE over the whole corpus.
* ``nudge`` (Zeighami, Wellmer, Parameswaran 2024, arXiv 2409.02343) moves the stored
  PASSAGE vectors towards the training queries that have them as answers. It only helps
  on the corpus it was trained on; ``nudge_applies`` says whether an evaluation corpus
  qualifies and ``replace_nudged`` builds the vectors to search with.

Both hold back a validation part of the training queries (``val_fraction``, drawn by
``seed``) to choose what to keep (the epoch; the step size gamma) by MRR@10, the same
definition as ``core.retrieval.metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.retrieval.metrics import MRR_K

Progress = Callable[[str, float], None]  # (message, fraction done 0..1)
ShouldStop = Callable[[], bool]  # True -> stop early (cancel) and return what was learned so far

# Defaults of fit_linear_adapter, each with the reason it was picked.
EPOCHS = 30  # with ~700 queries and batch 64 that is ~300 steps: enough to converge, seconds on a CPU
LR = 1e-3  # AdamW's usual rate; W moves gradually away from the identity (a safe start)
TEMPERATURE = 0.05  # the usual InfoNCE scale for cosine scores (sentence-transformers uses 1/20)
WEIGHT_DECAY = 0.0  # off: the base vectors are already good; >0 pulls W towards the identity, b to 0
BATCH_SIZE = 64  # small data: more update steps per epoch; the softmax is over the whole corpus anyway
PATIENCE = 5  # epochs without a better validation MRR@10 before stopping early
VAL_FRACTION = 0.15  # enough held-out questions to rank epochs / gammas, most still used to fit
SEED = 42  # the project's default seed: fixed so runs repeat
SCORE_CHUNK = 1024  # query rows scored at once in mrr_at_10: bounds memory on large corpora
# Threads for torch / BLAS while fitting. The matrices are small (a few hundred rows), so thread
# pools cost more than they save; on a busy 2-core machine 2 threads measured ~20x slower than 1.
FIT_THREADS = 1

NUDGE_VARIANT = "N"  # unit-length output: mixes with untouched base vectors under cosine search
# NUDGE step-size grids, searched on the validation queries; both include 0 (= leave passages as they are).
# NUDGE-N: gamma bounds the SQUARED distance moved on the unit sphere; this is the grid of the
# authors' code (0, 0.02, ..., 0.48).
NUDGE_N_GAMMAS = tuple(round(0.02 * i, 2) for i in range(25))
# NUDGE-M: gamma is the distance moved (no renormalisation); scores change by at most gamma,
# and cosine gaps between candidates rarely exceed ~1, so the grid is dense below 1.
NUDGE_M_GAMMAS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0)


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
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez(fh, weight=self.weight, bias=self.bias)
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


@dataclass
class FitHistory:
    """What a fit did, for the UI and CLI to plot and report.

    Attributes:
        losses: training loss per epoch (adapter); empty for NUDGE.
        val_scores: validation MRR@10 per epoch (adapter) or per gamma of the grid (NUDGE);
            empty when there were no validation queries.
        chosen: what was kept, e.g. {"epoch": 7, "val_mrr@10": 0.81, "baseline_val_mrr@10": 0.74}
            (epoch 0 = the identity, kept when no epoch beat it) or {"gamma": 0.1, ...}.
        steps: the x values of ``val_scores``: epoch numbers (1-based) or gammas.
        stopped_early: True when the adapter stopped for lack of validation gain.
        cancelled: True when ``should_stop`` ended the fit.
    """

    losses: list[float] = field(default_factory=list)
    val_scores: list[float] = field(default_factory=list)
    chosen: dict = field(default_factory=dict)
    steps: list[float] = field(default_factory=list)
    stopped_early: bool = False
    cancelled: bool = False


# ---------------------------------------------------------------------------------------------
# Shared helpers


def _check_inputs(
    queries: np.ndarray, positives: Sequence[Sequence[int]], corpus: np.ndarray
) -> tuple[np.ndarray, list[list[int]], np.ndarray]:
    """Validate and convert (queries (n, dim), positives, corpus (m, dim)) to float32 / int lists."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    c = np.ascontiguousarray(corpus, dtype=np.float32)
    if q.ndim != 2 or c.ndim != 2:
        raise ValueError(f"queries and corpus must be 2-D (rows = vectors), got {q.shape} and {c.shape}")
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions but passages {c.shape[1]}: different models?")
    if len(positives) != len(q):
        raise ValueError(f"{len(q)} queries but {len(positives)} lists of positives")
    pos = [sorted({int(j) for j in p}) for p in positives]
    bad = [j for p in pos for j in p if j < 0 or j >= len(c)]
    if bad:
        raise ValueError(f"positive index {bad[0]} is outside the corpus (0..{len(c) - 1})")
    return q, pos, c


def _split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (fit, val) of ``n`` items; val is ``round(n * val_fraction)`` of them, at least 1
    when val_fraction > 0 and n >= 2, and never all of them."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(n - 1, 0))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _reciprocal_ranks(
    query_vecs: np.ndarray, positives: Sequence[Sequence[int]], corpus_vecs: np.ndarray, k: int = MRR_K
) -> np.ndarray:
    """1/rank of the best-ranked positive (0 beyond rank k), per query with >= 1 positive.

    Ties with the best positive count in its favour (rank = 1 + passages scoring strictly higher).
    """
    q = np.asarray(query_vecs, dtype=np.float32)
    c = np.asarray(corpus_vecs, dtype=np.float32)
    rows = [i for i, p in enumerate(positives) if len(p)]
    out = np.zeros(len(rows), dtype=np.float64)
    for start in range(0, len(rows), SCORE_CHUNK):
        part = rows[start : start + SCORE_CHUNK]
        scores = q[part] @ c.T
        mask = np.zeros(scores.shape, dtype=bool)
        for r, i in enumerate(part):
            mask[r, list(positives[i])] = True
        best = np.where(mask, scores, -np.inf).max(axis=1, keepdims=True)
        rank = 1 + ((scores > best) & ~mask).sum(axis=1)
        out[start : start + len(part)] = np.where(rank <= k, 1.0 / rank, 0.0)
    return out


def mrr_at_10(query_vecs: np.ndarray, positives: Sequence[Sequence[int]], corpus_vecs: np.ndarray) -> float:
    """MRR@10 by brute-force inner product (the ``core.retrieval.metrics`` definition), for validation.

    Args:
        query_vecs: (n, dim) float32 query vectors.
        positives: per query, row indices of its relevant passages in ``corpus_vecs``.
        corpus_vecs: (m, dim) float32 passage vectors.

    Returns:
        Mean over queries with at least one positive of 1/rank of the first relevant
        passage within the top 10 (0 if none); 0.0 when no query has a positive. A tie
        with the best positive is resolved in its favour.
    """
    with _limited_threads():
        return _mrr(query_vecs, positives, corpus_vecs)


def _mrr(query_vecs: np.ndarray, positives: Sequence[Sequence[int]], corpus_vecs: np.ndarray) -> float:
    rr = _reciprocal_ranks(query_vecs, positives, corpus_vecs)
    return float(rr.mean()) if len(rr) else 0.0


@contextmanager
def _limited_threads(n: int = FIT_THREADS, torch_too: bool = False) -> Iterator[None]:
    """Run the block with ``n`` BLAS (and torch) threads; the previous settings come back after.

    Process-wide while it lasts (thread counts are global), restored on exit. BLAS is limited
    through threadpoolctl when it is installed (it comes with scikit-learn); else left alone.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        threadpool_limits = None
    limiter = threadpool_limits(limits=n, user_api="blas") if threadpool_limits else None
    old = None
    if torch_too:
        import torch

        old = torch.get_num_threads()
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if old is not None:
            import torch

            torch.set_num_threads(old)
        if limiter is not None:
            limiter.restore_original_limits()


def _report(progress: Progress | None, message: str, fraction: float) -> None:
    if progress is not None:
        progress(message, float(min(max(fraction, 0.0), 1.0)))


# ---------------------------------------------------------------------------------------------
# Linear adapter


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

    Returns:
        (adapter, history); ``history.chosen`` = {"epoch", "val_mrr@10",
        "baseline_val_mrr@10", "n_train", "n_val"}.

    Raises:
        ValueError: bad shapes, positives outside the corpus, no query with a positive, or
            bad hyperparameters.
    """
    with _limited_threads(torch_too=True):
        return _fit_linear_adapter(
            queries, positives, corpus, epochs=epochs, lr=lr, temperature=temperature,
            weight_decay=weight_decay, batch_size=batch_size, val_fraction=val_fraction, seed=seed,
            patience=patience, progress=progress, should_stop=should_stop,
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
) -> tuple[LinearAdapter, FitHistory]:
    import torch
    import torch.nn.functional as F

    q, pos, c = _check_inputs(queries, positives, corpus)
    if epochs < 1 or batch_size < 1 or temperature <= 0 or lr <= 0:
        raise ValueError("epochs and batch_size must be >= 1, temperature and lr > 0")
    usable = np.array([i for i, p in enumerate(pos) if p], dtype=np.int64)
    if len(usable) == 0:
        raise ValueError("No training query has a relevant passage in the corpus: nothing to learn from.")
    fit_rel, val_rel = _split(len(usable), val_fraction, seed)
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
    baseline = _mrr(val_q, val_pos, c) if has_val else None
    best_adapter, best_epoch, best_score = LinearAdapter.identity(dim), 0, baseline
    since_best = 0
    n_fit = len(fit_idx)
    _report(progress, f"Training a linear adapter on {n_fit} questions ({len(val_idx)} held out)", 0.0)
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
            score = _mrr(current.transform(val_q), val_pos, c)
            history.val_scores.append(score)
            message += f", validation MRR@10 {score:.4f}"
            if score > best_score + 1e-12:
                best_adapter, best_epoch, best_score, since_best = current, epoch, score, 0
            else:
                since_best += 1
        else:
            best_adapter, best_epoch = current, epoch
        _report(progress, message, 0.95 * epoch / epochs)
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
    _report(progress, f"Adapter {why}: kept {kept}", 1.0)
    return best_adapter, history


# ---------------------------------------------------------------------------------------------
# NUDGE


def _query_sums(queries: np.ndarray, positives: Sequence[Sequence[int]], m: int) -> np.ndarray:
    """(m, dim) float64: row j = sum of the query vectors that have passage j as a positive."""
    sums = np.zeros((m, queries.shape[1]), dtype=np.float64)
    for qv, p in zip(queries, positives):
        for j in p:
            sums[j] += qv
    return sums


def _nudge_update(corpus: np.ndarray, sums: np.ndarray, gamma: float, variant: str) -> np.ndarray:
    """Passage vectors after one NUDGE step of size ``gamma`` (see ``nudge``); (m, dim) float32.

    Rows whose query sum is zero (no training query) are returned bit-for-bit unchanged.
    """
    out = corpus.astype(np.float32, copy=True)
    g_norm = np.linalg.norm(sums, axis=1)
    rows = np.nonzero(g_norm > 1e-12)[0]
    if gamma == 0 or len(rows) == 0:
        return out
    e = corpus[rows].astype(np.float64)
    g_hat = sums[rows] / g_norm[rows, None]
    if variant == "M":
        out[rows] = (e + gamma * g_hat).astype(np.float32)
        return out
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    cos = (e * g_hat).sum(axis=1)
    perp = g_hat - cos[:, None] * e
    perp_norm = np.linalg.norm(perp, axis=1)
    z = perp / np.maximum(perp_norm, 1e-12)[:, None]
    moved = (1.0 - gamma / 2.0) * e + np.sqrt(max(gamma * (1.0 - gamma / 4.0), 0.0)) * z
    reach = cos >= 1.0 - gamma / 2.0  # the queries' direction itself is within reach: go there
    new = np.where(reach[:, None], g_hat, moved)
    new = np.where((perp_norm <= 1e-9)[:, None] & ~reach[:, None], e, new)  # g is (anti)parallel: stay
    new /= np.linalg.norm(new, axis=1, keepdims=True)
    out[rows] = new.astype(np.float32)
    return out


def nudge(
    queries: np.ndarray,
    positives: list[list[int]],
    corpus: np.ndarray,
    *,
    variant: str = NUDGE_VARIANT,
    gammas: Sequence[float] | None = None,
    val_fraction: float = VAL_FRACTION,
    seed: int = SEED,
    progress: Progress | None = None,
) -> tuple[np.ndarray, FitHistory]:
    """NUDGE: move passage embeddings towards the training queries that point to them.

    Non-parametric: no model, no adapter; the stored passage vectors themselves change.
    For passage j with vector e_j, let g_j = sum of the training query vectors that have j
    as a relevant passage and ĝ_j = g_j / |g_j|. Each e_j is moved to maximise g_j · e'_j
    under a bound gamma on the change (Zeighami et al. 2024, arXiv 2409.02343):

    * NUDGE-N (``variant="N"``, the default): |e'| = 1 and |e' - e|² <= gamma. Closed form:
      e' = ĝ when e · ĝ >= 1 - gamma/2, else e' = (1 - gamma/2) e + sqrt(gamma (1 - gamma/4)) z
      with z the unit component of ĝ orthogonal to e (the point of the allowed cap nearest
      ĝ). Output rows are unit length; gamma in [0, 4] (default grid 0 .. 0.48).
    * NUDGE-M (``variant="M"``): |e' - e| <= gamma, no norm constraint: e' = e + gamma ĝ.
      As in the paper the rows are NOT renormalised (search by inner product); scores of a
      query change by at most gamma. gamma >= 0.

    One gamma is shared by all passages. It is chosen on a validation part of the training
    queries: g is computed from the remaining queries, each gamma of the grid is scored by
    the validation MRR@10 (ties -> the smaller gamma), then the final update is recomputed
    with ALL training queries at the chosen gamma. Passages that no training query points to
    are returned unchanged. Differences from the authors' code: gamma comes from a grid scored
    by MRR@10 for both variants (NUDGE-M there solves for the gamma of best top-1 accuracy
    exactly), and NUDGE-N moves a passage even when e · g < 0 (that code leaves it; the
    formula above is the exact optimum either way).

    Only meaningful when the evaluation searches the training corpus (same passage ids):
    the nudged vectors are the vectors of THOSE passages, and new queries must be answered
    from them. Check with ``nudge_applies`` and build the search vectors of an overlapping
    evaluation corpus with ``replace_nudged``.

    Args:
        queries: (n, dim) float32 training query vectors, L2-normalised.
        positives: per query, row indices into ``corpus`` of its relevant passages.
        corpus: (m, dim) float32 passage vectors, L2-normalised.
        variant: "N" (NUDGE-N) or "M" (NUDGE-M).
        gammas: step sizes to try; default ``NUDGE_N_GAMMAS`` / ``NUDGE_M_GAMMAS``.
        val_fraction: share of the queries held out to choose gamma (needed unless only
            one gamma is given).
        seed: seed of the validation split.
        progress: called with (message, fraction) per gamma tried, fractions increasing,
            the last call with 1.0.

    Returns:
        (new corpus (m, dim) float32, history); ``history.val_scores`` per gamma of
        ``history.steps``; ``history.chosen`` = {"gamma", "val_mrr@10",
        "baseline_val_mrr@10", "variant", "passages_changed", "n_train", "n_val"}.

    Raises:
        ValueError: bad shapes or variant, a gamma out of range, no query with a positive,
            or several gammas but no validation queries to choose between them.
    """
    with _limited_threads():
        return _nudge(queries, positives, corpus, variant=variant, gammas=gammas, val_fraction=val_fraction,
                      seed=seed, progress=progress)


def _nudge(
    queries: np.ndarray,
    positives: list[list[int]],
    corpus: np.ndarray,
    *,
    variant: str,
    gammas: Sequence[float] | None,
    val_fraction: float,
    seed: int,
    progress: Progress | None,
) -> tuple[np.ndarray, FitHistory]:
    variant = str(variant).upper().removeprefix("NUDGE-")
    if variant not in ("N", "M"):
        raise ValueError(f"variant must be 'N' (NUDGE-N) or 'M' (NUDGE-M), not {variant!r}")
    q, pos, c = _check_inputs(queries, positives, corpus)
    default = NUDGE_N_GAMMAS if variant == "N" else NUDGE_M_GAMMAS
    grid = sorted({float(g) for g in (default if gammas is None else gammas)})
    if not grid:
        raise ValueError("gammas is empty: give at least one step size")
    hi = 4.0 if variant == "N" else np.inf
    if grid[0] < 0 or grid[-1] > hi:
        raise ValueError(f"NUDGE-{variant} step sizes must lie in [0, {hi:g}], got {grid[0]:g}..{grid[-1]:g}")
    usable = np.array([i for i, p in enumerate(pos) if p], dtype=np.int64)
    if len(usable) == 0:
        raise ValueError("No training query has a relevant passage in the corpus: nothing to learn from.")
    fit_rel, val_rel = _split(len(usable), val_fraction, seed)
    fit_idx, val_idx = usable[fit_rel], usable[val_rel]
    if len(grid) > 1 and len(val_idx) == 0:
        raise ValueError("Choosing gamma needs validation questions: set val_fraction > 0 or give one gamma.")

    history = FitHistory()
    name = f"NUDGE-{variant}"
    baseline = None
    best_gamma, best_score = grid[0], None
    if len(val_idx):
        val_q, val_pos = q[val_idx], [pos[i] for i in val_idx]
        baseline = _mrr(val_q, val_pos, c)
        sums = _query_sums(q[fit_idx], [pos[i] for i in fit_idx], len(c))
        _report(progress, f"{name}: trying {len(grid)} step sizes on {len(val_idx)} held-out questions", 0.0)
        for k, gamma in enumerate(grid):
            score = _mrr(val_q, val_pos, _nudge_update(c, sums, gamma, variant))
            history.val_scores.append(score)
            history.steps.append(gamma)
            if best_score is None or score > best_score + 1e-12:
                best_gamma, best_score = gamma, score
            _report(progress, f"{name}: gamma {gamma:g} -> validation MRR@10 {score:.4f}", 0.9 * (k + 1) / len(grid))
    sums_all = _query_sums(q[usable], [pos[i] for i in usable], len(c))
    new = _nudge_update(c, sums_all, best_gamma, variant)
    changed = int((np.linalg.norm(sums_all, axis=1) > 1e-12).sum()) if best_gamma > 0 else 0
    history.chosen = {
        "gamma": best_gamma,
        "val_mrr@10": best_score,
        "baseline_val_mrr@10": baseline,
        "variant": name,
        "passages_changed": changed,
        "n_train": int(len(fit_idx)),
        "n_val": int(len(val_idx)),
    }
    _report(progress, f"{name}: gamma {best_gamma:g}, {changed} passages moved", 1.0)
    return new, history


def nudge_applies(train_corpus_ids: Iterable[str], eval_corpus_ids: Iterable[str]) -> tuple[bool, str]:
    """Whether NUDGE can help on an evaluation corpus, and if not, why (in plain words).

    Rule: NUDGE applies when the evaluation corpus shares at least one passage id with the
    training corpus. Nudged vectors replace those shared passages (``replace_nudged``); the
    other evaluation passages keep their base vectors. With no shared passage there is no
    nudged vector to search with, so NUDGE cannot change any result.

    Args:
        train_corpus_ids: ids of the passages NUDGE was (or will be) fitted on.
        eval_corpus_ids: ids of the passages the evaluation searches.

    Returns:
        (True, "") when it applies, else (False, a reason for the user).
    """
    train = set(train_corpus_ids)
    evals = list(dict.fromkeys(eval_corpus_ids))
    if not evals:
        return False, "The evaluation set has no passages to search, so there is nothing for NUDGE to change."
    if any(d in train for d in evals):
        return True, ""
    n = len(evals)
    return False, (
        "NUDGE changes the stored passage vectors of the training corpus; your evaluation set searches "
        f"{n} passage{'s' if n != 1 else ''} of which none {'are' if n != 1 else 'is'} in the training corpus, "
        "so NUDGE cannot help there. Use the adapter or a full fine-tune."
    )


def replace_nudged(
    eval_ids: Sequence[str], eval_vectors: np.ndarray, train_ids: Sequence[str], nudged: np.ndarray
) -> np.ndarray:
    """Evaluation passage vectors with the nudged vectors swapped in where ids match.

    Args:
        eval_ids: ids of the rows of ``eval_vectors``.
        eval_vectors: (n_eval, dim) float32 base passage vectors of the evaluation corpus.
        train_ids: ids of the rows of ``nudged``.
        nudged: (n_train, dim) float32 output of ``nudge``.

    Returns:
        (n_eval, dim) float32: the nudged row for ids in ``train_ids``, the base row otherwise.
    """
    out = np.array(eval_vectors, dtype=np.float32, copy=True)
    if len(eval_ids) != len(out) or len(train_ids) != len(nudged):
        raise ValueError("ids and vectors differ in length")
    row = {d: i for i, d in enumerate(train_ids)}
    for i, d in enumerate(eval_ids):
        j = row.get(d)
        if j is not None:
            out[i] = nudged[j]
    return out

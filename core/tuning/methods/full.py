"""The full fine-tune: every weight of the model moves (sentence-transformers' Trainer, ``core.tuning.full``).

Saves ``model/`` (a sentence-transformers folder, its token limit set to the run's search limit); the
tuned side is that model; the bundle ships it as ``model/``. :func:`fit_trained` is the fit of every
method on this training path (LoRA passes its own ``TrainHooks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from core.retrieval.embedding import load_model
from core.retrieval.evaluation import dense_ranking, evaluate_dense
from core.retrieval.index import Ranking
from core.tuning.budget import plan_budget
from core.tuning.context import Fit, FitContext
from core.tuning.cost import ENCODE_SECONDS_PER_TOKEN, over, tokens
from core.tuning.ddp import launch
from core.tuning.full import FULL_HOOKS, MERGE_METRIC, MERGE_WEIGHTS, TrainHooks, TrainInfo, train_full
from core.tuning.holdout import VAL_CORPUS_CAP, split_validation
from core.tuning.losses import LossName
from core.tuning.methods.base import Method
from core.tuning.settings import setting

TrainPassage = Literal["first", "best", "answer", "all"]
Scheduler = Literal["linear", "cosine", "constant_with_warmup"]
NegativesFrom = Literal["dense", "bm25"]
Loss = LossName  # the names of core.tuning.losses.LOSSES


@dataclass
class FullSettings:
    """A full fine-tune with sentence-transformers' Trainer (every weight of the model moves)."""

    epochs: int = setting(2, "Small domain sets overfit after a few passes; the best epoch on the "
                          "validation questions is kept anyway. Measured on sec-10k (bench/RESULTS.md): 1 epoch "
                          "reached nDCG@10 0.690 in half the time of 2 (0.694; Accuracy@10 0.851 vs 0.863).",
                          label="Epochs", min=1, max=50)
    time_budget_minutes: float = setting(15.0, "How long the training steps may take, in minutes, at the "
                                         "estimate's measured rate on this machine (0 = no limit). When every "
                                         "pair does not fit, a subset spread over all the passages is trained on "
                                         "(one question per passage first, then a second, ...; drawn with the "
                                         "seed) and the run says what it left out. 5,000 generated pairs take "
                                         "about an hour here at the default epochs.",
                                         label="Time budget (min)", min=0.0, max=10_000.0, step=5.0)
    generated_per_labelled: float = setting(
        0.0, "When the training questions are both labelled (yours, or uploaded) and generated: at most this "
        "many generated pairs for each labelled pair, spread over the passages (1 = as many generated as "
        "labelled); 0 = every generated pair. Every labelled pair is kept, and a time budget cuts generated "
        "pairs before labelled ones. Generated questions reach the passages no one labelled. Measured on sec-10k "
        "(bench/RESULTS.md): 668 labelled + 474 generated questions scored like the labelled ones alone (tuned "
        "nDCG@10 0.734 vs 0.738, tuned + BM25 0.856 vs 0.854); the generated ones alone reached 0.706 (base 0.657; 0.697 from 829 after the sentence splitter's fix).",
        label="Generated pairs per labelled pair", min=0.0, max=100.0, step=0.5, advanced=True)
    batch_size: int = setting(32, "Bigger batch = more in-batch negatives for the loss to learn from.",
                              label="Batch size", min=2, max=512)
    learning_rate: float = setting(5e-5, "Higher than the usual 2e-5: one or two epochs must move a small "
                                   "model. Measured on sec-10k (bench/RESULTS.md): 1e-4 gave nDCG@10 0.666 "
                                   "against 0.659, within noise.", label="Learning rate", min=1e-7, max=1e-2, step=1e-5,
                                   format="%.0e")
    max_seq_length: int = setting(256, "Tokens per text while training: cost grows fast with length on a "
                                  "CPU. Search uses the passage tokens of the scoring settings. Measured on "
                                  "sec-10k: 128 halves the training time but the tuned model fell below the base "
                                  "(nDCG@10 0.585 against 0.608): it learns on cut passages and searches whole ones.",
                                  label="Max tokens per text (training)", choices=[64, 128, 256, 384, 512])
    hard_negatives: int = setting(0, "Mined wrong-but-close passages per pair (0 = in-batch negatives only). "
                                  "Each one adds a passage per pair to encode: one negative took 1.6x the "
                                  "training time on sec-10k for nDCG@10 0.671 against 0.659.",
                                  label="Hard negatives",
                                  min=0, max=5)
    negatives_from: NegativesFrom = setting(
        "dense", "Where hard negatives are mined (with 'Hard negatives' above 0): the base model's ranking (dense), "
        "or keyword search (BM25): the passages BM25 ranks high that are not the answer, the confusions of the "
        "system the tuned model most often loses to. Either way a negative must score below 95% of the "
        "positive's own score in that ranking, among its top 30 (likely false negatives kept out); the "
        "training cost is the same. Measured on sec-10k with 1 negative (bench/RESULTS.md): BM25's gave "
        "nDCG@10 0.694, the base model's 0.683, no mined negative 0.694.",
        label="Mine negatives with", advanced=True,
        option_labels={"dense": "the base model (dense)", "bm25": "keyword search (BM25)"})
    merge_base: bool = setting(
        False, "Weight merging (WiSE-FT): after training, mix the tuned and base weights, "
        "(1 - w) x base + w x tuned, for w = 0.25, 0.5, 0.75 and 1 (the tuned model as trained), and keep the "
        "w with the best validation nDCG@10 (the hold-out that picks the epoch; never the evaluation "
        "questions). It can keep what the base model knew that training wore away; costs one validation "
        "pass per weight, no retraining. Needs a validation hold-out; the full fine-tune only. Measured on "
        "sec-10k (bench/RESULTS.md): the hold-out chose w 0.75 and evaluation nDCG@10 was 0.687 against 0.694 "
        "unmerged (a small loss), hence off by default.",
        label="Merge with the base model", advanced=True)
    loss: Loss = setting("cached_mnrl", "CachedMNRL gives the same gradients as plain MNRL computed in chunks: "
                         "~2 GB of RAM instead of ~6 at batch 32 (measured on sec-10k), for ~1/3 more compute. GIST "
                         "variants use the base model as a guide and drop in-batch negatives it finds too close "
                         "to the positive (likely false negatives).", label="Loss", advanced=True)
    train_passage: TrainPassage = setting("answer", "Which part of a long positive passage the model trains on: "
                                          "its first window (what the Trainer's cut leaves), the window the base "
                                          "model finds best for the question, the window holding the question's "
                                          "answer when the data gives one (else the best: the default), or every "
                                          "window. Measured (bench/RESULTS.md): the best window lifted sec-10k's "
                                          "tuned nDCG@10 from 0.659 to 0.695 in the same training time, and on "
                                          "passages twice as long from 0.625 to 0.648 (the sample: no change); "
                                          "passages that fit one window train as they are.",
                                          label="Train on (long passages)", advanced=True,
                                          option_labels={"first": "first window", "best": "best window",
                                                         "answer": "answer's window, else best",
                                                         "all": "every window"})
    mini_batch_size: int = setting(8, "Cached losses: texts per forward chunk. Memory, not the effective "
                                   "batch: the gradients are the same. Measured on sec-10k (bench/RESULTS.md): 8 "
                                   "instead of 16 cut the run's peak RAM from 3.65 to 2.50 GB, same quality, "
                                   "~6% longer training.",
                                   label="Mini-batch (CachedMNRL)", min=1, max=256, advanced=True)
    matryoshka_dims: list[int] = setting([384, 256, 128, 64], "Matryoshka loss: the dimensions trained to "
                                         "work on their own.", advanced=True, hidden=True)
    warmup_ratio: float = setting(0.1, "A short warm-up keeps the first steps from wrecking the pretrained "
                                  "space.", label="Warm-up share", min=0.0, max=0.5, step=0.05, advanced=True)
    scheduler: Scheduler = setting("linear", "Learning-rate decay to 0 by the last step.", label="Schedule",
                                   advanced=True)
    hn_relative_margin: float = setting(0.05, "A mined negative must score below 95% of the positive "
                                        "(keeps likely false negatives out).", advanced=True, hidden=True)
    hn_range_max: int = setting(30, "Mine among the base model's top 30 passages.", advanced=True, hidden=True)
    early_stopping_patience: int = setting(2, "Epochs without validation gain before stopping.",
                                           label="Early-stopping patience", min=0, max=20, advanced=True)
    max_steps: int = setting(-1, "-1 runs every epoch; a small number (e.g. 2) is a quick smoke test.",
                             label="Max steps", min=-1, max=100_000, advanced=True)
    checkpoint_every: int = setting(10, "Steps between resumable checkpoints (model + optimizer), so an "
                                    "interrupted run resumes instead of restarting. 0: only at epoch ends.",
                                    label="Checkpoint every (steps)", min=0, max=10_000, advanced=True)
    processes: int = setting(1, "Training processes (torchrun, distributed data parallel): one per GPU on a "
                             "multi-GPU machine. Each process trains on its own batch of 'batch size' pairs, so the "
                             "effective batch is batch size x processes (in-batch negatives stay per process).",
                             label="Processes (torchrun)", min=1, max=64, advanced=True)

    def __post_init__(self) -> None:
        if not isinstance(self.generated_per_labelled, (int, float)) or self.generated_per_labelled < 0:
            raise ValueError(f"generated_per_labelled {self.generated_per_labelled!r}: use 0 (every generated pair) "
                             "or a positive number of generated pairs per labelled pair")
        if self.negatives_from not in ("dense", "bm25"):
            raise ValueError(f"negatives_from {self.negatives_from!r}: use 'dense' (the base model's ranking) or "
                             "'bm25' (keyword search)")
        if not isinstance(self.merge_base, bool):
            raise ValueError(f"merge_base {self.merge_base!r}: use true or false")


def fit_trained(ctx: FitContext, hooks: TrainHooks, rebuild: Callable[[Path, Any, str | None], Any],
                name: str) -> Fit:
    """The fit of a method on the full fine-tune's training path: train (one process or several) or, re-scoring,
    ``rebuild`` the tuned model from the run folder; then score it on the evaluation questions."""
    info = None
    if ctx.reuse:  # re-scoring: the saved tuned model
        ctx.reporter.phase("preparing", "Loading the tuned model the run saved")
        model = rebuild(ctx.run_dir, ctx.spec, ctx.device)
    elif ctx.spec.settings.processes > 1:  # several processes: torchrun workers train, this process scores

        info = TrainInfo(**launch(ctx.run_dir, ctx.spec.settings.processes, ctx.cache.path, ctx.reporter, ctx.resume))
        model = rebuild(ctx.run_dir, ctx.spec, ctx.device)
    else:
        model, info = train_full(ctx.train, ctx.val, ctx.spec, ctx.run_dir, ctx.reporter, ctx.device, ctx.resume,
                                 cache=ctx.cache, hooks=hooks)
    model = ctx.encoder(model, "tuned")
    ctx.reporter.phase("evaluating", f"Scoring the tuned model: {len(ctx.ev)} evaluation questions")
    res = evaluate_dense(model, ctx.ev, passage_tokens=ctx.spec.scoring.passage_tokens, name=f"tuned ({name})",
                         cache=ctx.cache, progress=ctx.progress, label=f"tuned model of {ctx.run_dir.name}",
                         overlap=ctx.spec.overlap)
    procs = ctx.spec.settings.processes

    def val_ranking(val) -> Ranking:
        ctx.reporter.phase("evaluating", f"Choosing the hybrid's fusion on {len(val)} validation questions")
        return dense_ranking(model, val, ctx.spec.scoring.passage_tokens, cache=ctx.cache,
                             progress=ctx.progress, overlap=ctx.spec.overlap).ranking

    if info is None:
        return res, [], val_ranking, 0.0
    lines = [f"Trained {info.steps} steps ({info.epochs_run:.1f} epochs) on {info.pairs} pairs in "
             f"{info.seconds / 60:.1f} min" + (f", {procs} processes (torchrun)." if procs > 1 else ".")]
    if info.budget:
        lines.append(info.budget)
    if info.resumed_from_step:
        lines.append(f"Resumed after an interruption from the checkpoint at step {info.resumed_from_step}.")
    if info.best_value is not None:
        lines.append(f"The {info.best_metric} was best ({info.best_value:.3f}) at step {info.best_step}: "
                     f"that checkpoint is the tuned model ({info.validation_questions} held-out questions).")
    else:
        lines.append("No validation questions were held out: the model after the last step is kept.")
    if info.merge_scores:
        lines.append(merge_line(info.merge_weight, info.merge_scores, info.validation_questions))
    return res, lines, val_ranking, info.seconds


def merge_line(chosen: float, scores: list[list[float]], n_val: int) -> str:
    """The training line of weight merging: each weight's validation score and the one kept."""
    tried = ", ".join(f"w {w:g}: {v:.3f}" for w, v in scores)
    kept = ("the tuned weights as trained (w 1) scored best, so nothing was merged" if chosen == 1 else
            f"the model saved is {1 - chosen:g} x base + {chosen:g} x tuned weights")
    return (f"Weight merging (WiSE-FT), validation {MERGE_METRIC} of (1 - w) x base + w x tuned on {n_val} "
            f"held-out questions: {tried}; {kept}.")


def trained_cost(speed: float = 1.0):
    """The cost model of a method on the full fine-tune's training path, its training ``speed`` times the full
    fine-tune's per token (window choice, training, validation passes, re-encoding with the tuned model)."""

    def cost(est, spec, sub, train, ev, ev_tokens: int) -> None:
        passage_tokens = spec.scoring.passage_tokens
        if sub.train_passage in ("best", "answer"):  # the base model scores every window of a long passage
            n_long, long_tokens = over(train.corpus.values(), sub.max_seq_length)
            if n_long:
                est.add(f"choosing the training window of {n_long:,} long passage{'s' * (n_long != 1)} "
                        "(first run only)", long_tokens * ENCODE_SECONDS_PER_TOKEN)
        part = split_validation(train, spec.scoring.validation_share, spec.seed)[0]  # the run's training part
        budget = plan_budget(sub, part, spec.seed, speed)  # what the run will train on (core.tuning.budget)
        est.add("training", budget.kept_seconds)
        if budget.mix:
            est.notes.append(budget.mix)
        if budget.cut:
            est.notes.append(budget.line(done=False))
        val_tokens = tokens(list(train.corpus.values())[:VAL_CORPUS_CAP], passage_tokens)
        epochs = sub.epochs if sub.max_steps <= 0 else 1
        if spec.scoring.validation_share > 0:
            est.add("validation passes", epochs * val_tokens * ENCODE_SECONDS_PER_TOKEN)
            # the base hybrid chooses its fusion on the same hold-out: the base model searches it once
            est.add("the base model on the validation questions (for the base hybrid's fusion; first run "
                    "only)", val_tokens * ENCODE_SECONDS_PER_TOKEN)
            if getattr(sub, "merge_base", False):
                est.add(f"weight merging ({len(MERGE_WEIGHTS)} validation passes)",
                        len(MERGE_WEIGHTS) * val_tokens * ENCODE_SECONDS_PER_TOKEN)
        est.add("encoding the passages with the tuned model", ev_tokens * ENCODE_SECONDS_PER_TOKEN)

    return cost


def load_saved(run_dir: Path, spec, device: str | None = None):
    """The full fine-tune's tuned model, from the run folder's ``model/``."""
    return load_model(str(Path(run_dir) / "model"), device=device)


SNIPPET_ENCODER = '''
from sentence_transformers import SentenceTransformer  # noqa: E402

# The tuned model; truncate_dim keeps the first `dimension` coordinates, like the stored vectors.
model = SentenceTransformer(str(BUNDLE / "model"), truncate_dim=info["truncate_dim"])
model.max_seq_length = info["max_seq_length"]


def embed_query(text):
    return model.encode_query([text], normalize_embeddings=True)[0]


def embed_passages(texts):  # new passages: encode them with the same model before adding them
    return model.encode_document(list(texts), normalize_embeddings=True)
'''

CARD_USAGE = """```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("model", truncate_dim={dim})  # the model/ folder of this bundle
vectors = model.encode_document(["a passage"], normalize_embeddings=True)
question = model.encode_query(["your question"], normalize_embeddings=True)
```"""

CARD_REINDEX = ("**A new model means re-indexing the collection.** Vectors made by the base model (or any other "
                "model) do not mix with this one's: re-encode every passage of your collection with this model "
                "before you search it with this model's questions. `embeddings.parquet` holds the {rows} passages "
                "of the run's evaluation collection already encoded; every other passage must be encoded again.")


METHOD = Method(
    name="full",
    label="Full fine-tune",
    caption="Updates all the model's weights. Best results; minutes to hours on a CPU.",
    settings=FullSettings,
    fit=lambda ctx: fit_trained(ctx, FULL_HOOKS, load_saved, "full"),
    saves=("model",),
    in_shootout=True,
    shootout_default=True,
    cost=trained_cost(),
    tuned_model=load_saved,
    bundle_model="model",
    snippet_encoder=SNIPPET_ENCODER,
    card_what="a fine-tuned sentence-transformers model (all weights updated)",
    card_usage=CARD_USAGE,
    card_reindex=CARD_REINDEX,
    card_folder="model",
    train_hooks=FULL_HOOKS,
)

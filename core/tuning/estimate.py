"""How long a run will take, before it starts: rough figures measured on this project's 2-core CPU
machines, each constant with its reason."""

from __future__ import annotations

# --------------------------------------------------------------------------- duration estimate
# Measured on this project's 2-core CPU machines (other work running beside it):
# a full fine-tune epoch over ~700 pairs at 256 tokens takes ~3 minutes -> ~0.26 s per pair,
# roughly proportional to the tokens per text (shorter texts, cheaper steps).
FULL_SECONDS_PER_PAIR = 180 / 700
FULL_REFERENCE_TOKENS = 256
# Encoding ~3,000 passages takes ~2 minutes -> 0.04 s per passage (base and tuned each encode the
# eval corpus; the embedding cache makes the base side free on a second run).
ENCODE_SECONDS_PER_PASSAGE = 120 / 3000
# Loading torch, sentence-transformers and the model: ~15 s cold on 2 cores.
STARTUP_SECONDS = 15
# Adapter / NUDGE fits on cached vectors: a few seconds after encoding.
FAST_FIT_SECONDS = 5
# CachedMNRL computes every embedding twice (once without gradients), ~1/3 more time than MNRL.
LOSS_COST = {"cached_mnrl": 1.35, "matryoshka": 1.05}
# Validation during a full fine-tune searches at most this many passages once per epoch
# (core.tuning.full.VAL_CORPUS_CAP).
VAL_PASSAGES = 400


def estimate_seconds(
    method: str,
    n_pairs: int,
    n_train_passages: int,
    n_eval_passages: int,
    epochs: int = 1,
    max_seq_length: int = 256,
    batch_size: int = 32,
    max_steps: int = -1,
    hard_negatives: int = 0,
    loss: str = "mnrl",
) -> float:
    """A rough duration of a run before it starts (see the constants above for the reasons)."""
    encode_eval = n_eval_passages * ENCODE_SECONDS_PER_PASSAGE
    if method != "full":
        return (
            STARTUP_SECONDS
            + encode_eval
            + n_train_passages * ENCODE_SECONDS_PER_PASSAGE * 0.2
            + FAST_FIT_SECONDS
        )
    pairs_seen = n_pairs * max(epochs, 1)
    if max_steps and max_steps > 0:
        pairs_seen = min(pairs_seen, max_steps * batch_size)
    scale = max(min(max_seq_length, 512), 32) / FULL_REFERENCE_TOKENS
    train = pairs_seen * FULL_SECONDS_PER_PAIR * scale * LOSS_COST.get(loss, 1.0)
    train *= 1 + 0.5 * max(hard_negatives, 0)  # each mined negative is one more passage per pair to encode
    val = min(n_train_passages, VAL_PASSAGES) * ENCODE_SECONDS_PER_PASSAGE * max(epochs, 1)
    mining = n_train_passages * ENCODE_SECONDS_PER_PASSAGE if hard_negatives else 0.0
    return STARTUP_SECONDS + 2 * encode_eval + train + val + mining


def fmt_duration(seconds: float | None) -> str:
    """'12 s', 'about 4 min', 'about 1 h 10 min'; '' for None."""
    if seconds is None:
        return ""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"about {round(s / 60)} min"
    return f"about {s // 3600} h {round((s % 3600) / 60)} min"


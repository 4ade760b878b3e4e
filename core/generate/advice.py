"""Which tuning method to use when the training questions are generated: what was measured (issue 26).

``bench/bench_generate.py`` tuned on questions generated from sec-10k's passages and scored on its 790
questions no method saw (bench/RESULTS.md, "Training questions without an LLM"): only the full
fine-tune on 'sentence as question' pairs moved dense retrieval (nDCG@10 0.657 -> 0.704, +0.047,
p < 0.001, through the README's generate -> train commands, "Documents only through the README's commands"); the
query adapter never moved (0.657 with the identity kept; 0.660 and 0.647 on the other
offline questions, neither significant). :func:`method_advice` turns that into what the Train page
preselects and says, for a training split whose questions are mostly generated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.dataset import QADataset
from core.generate.pairs import is_generated

GENERATED_BEST = "full"  # what measured best on generated training questions (bench/RESULTS.md)
BASE_NDCG, FULL_NDCG, ADAPTER_NDCG = 0.657, 0.704, 0.657  # sec-10k, 'sentence as question', dense nDCG@10
# The method names as the Questions page shows them (ui/questions.py METHOD_LABELS).
_OFFLINE_NAMES = {"inverse_cloze": "sentence as question", "crop": "random excerpt", "keywords": "keywords"}
_MEASURED = {  # offline method -> (full fine-tune, query adapter) dense nDCG@10 on sec-10k, base 0.657
    "inverse_cloze": (0.704, 0.657),
    "crop": (0.661, 0.660),
    "keywords": (0.665, 0.647),
}


@dataclass(frozen=True)
class MethodAdvice:
    """What to preselect for generated training questions, and why.

    Attributes:
        method: The method to preselect (a ``core.tuning.spec.LAUNCHABLE`` name).
        why: Why, with the measured figure (shown beside the choice).
        against: Method -> a warning shown when that method is chosen instead.
        generated: Generated training questions.
        total: Training questions.
    """

    method: str
    why: str
    against: dict[str, str] = field(default_factory=dict)
    generated: int = 0
    total: int = 0


def _kind(origins: list[str]) -> str:
    """'sentence as question' / 'LLM-written' ... : the most common kind of generated question, in words."""
    counts: dict[str, int] = {}
    for o in origins:
        parts = o.split(":")
        kind = _OFFLINE_NAMES.get(parts[2], parts[2]) if len(parts) > 2 and parts[1] == "offline" else (
            "LLM-written" if len(parts) > 1 and parts[1] == "llm" else "generated")
        counts[kind] = counts.get(kind, 0) + 1
    return max(counts, key=counts.__getitem__)


def method_advice(train: QADataset) -> MethodAdvice | None:
    """The method to preselect when most training questions are generated; None otherwise.

    Args:
        train: The training split (its ``origins`` say who wrote each question).

    Returns:
        The advice (the full fine-tune, with the figures behind it), or None when fewer than half the
        training questions are generated (then nothing was measured that says what works best).
    """
    qids = train.query_ids
    gen = [train.origins[q] for q in qids if is_generated(train.origins.get(q))]
    if not qids or 2 * len(gen) < len(qids):
        return None
    kind = _kind(gen)
    method = next((m for m, name in _OFFLINE_NAMES.items() if name == kind), "inverse_cloze")
    full, adapter = _MEASURED[method]
    share = "all" if len(gen) == len(qids) else f"{len(gen):,} of {len(qids):,}"
    why = (f"The training questions are generated ({share}, mostly {kind}), so the full fine-tune is preselected: it "
           f"is what measured best on generated questions. On sec-10k (bench/RESULTS.md), a full fine-tune on "
           f"'sentence as question' pairs lifted dense nDCG@10 from {BASE_NDCG:.3f} to {FULL_NDCG:.3f} (+"
           f"{FULL_NDCG - BASE_NDCG:.3f}, significant), while the query adapter on the same pairs stayed at "
           f"{ADAPTER_NDCG:.3f} (no epoch beat the base model).")
    if kind != "sentence as question" and method in _MEASURED and kind in _OFFLINE_NAMES.values():
        why += (f" On {kind} pairs neither moved significantly (full fine-tune {full:.3f}, adapter {adapter:.3f}): "
                "'sentence as question' is the offline method to generate with.")
    against = {
        "adapter": (f"On generated questions the query adapter did not move the base model: on sec-10k it stayed at "
                    f"{ADAPTER_NDCG:.3f} nDCG@10 with 'sentence as question' pairs (the identity was kept; random "
                    f"excerpt 0.660, keywords 0.647, neither significant), where the full fine-tune reached "
                    f"{FULL_NDCG:.3f}. Expect 'scores exactly like the base model' and an export that is the base "
                    "model unchanged; choose the full fine-tune, or label real questions for the adapter."),
        "nudge": (f"NUDGE was not measured on generated questions; the full fine-tune is the method that did lift "
                  f"them ({BASE_NDCG:.3f} -> {FULL_NDCG:.3f} nDCG@10 on sec-10k)."),
    }
    return MethodAdvice(GENERATED_BEST, why, against, len(gen), len(qids))

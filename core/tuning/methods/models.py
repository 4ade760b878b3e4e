"""'Which base model?': candidate base models scored on the evaluation questions before any training.

A dispatch method: it fits nothing (``core.execute`` hands it to ``core.insight.models``), is not
one of the Train page's training methods (it has its own expander) and saves ``models.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.tuning.methods.base import Method
from core.tuning.settings import setting


@dataclass
class ModelsSettings:
    """Candidate base models scored on the evaluation questions before any training."""

    candidates: list[str] = setting(["all-MiniLM-L6-v2"], "Models to compare, one per line: the bundled "
                                    "all-MiniLM-L6-v2, any local sentence-transformers folder, or a Hugging Face "
                                    "id when this machine is online. The first is the reference for the intervals.",
                                    label="Candidate models")


METHOD = Method(
    name="models",
    label="Which base model? (comparison)",
    caption="Scores candidate base models on this dataset's evaluation questions (dense and hybrid, with "
    "intervals, speed, size and memory) before any training.",
    settings=ModelsSettings,
    kind="dispatch",
    saves=("models.json",),
    launchable=False,
)

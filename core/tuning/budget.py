"""Which training pairs the full fine-tune trains on: the mix of generated and labelled questions
(``FullSettings.generated_per_labelled``), then the time budget (``FullSettings.time_budget_minutes``).

Mixing: when the training split holds both generated questions and labelled ones (a person's, or uploaded),
every labelled pair is kept and at most ``generated_per_labelled`` generated pairs per labelled pair, spread
over the passages like the budget's subset (0: every generated pair).

From the estimate's measured rate (``core.tuning.cost.trainer_seconds``: the same numbers the Train page's
estimate shows) the training phase of all the training pairs takes ``full_seconds``; when that is over the
budget, a subset of the questions is kept, spread over every passage: the passages (each question's first
relevant passage) in an order drawn from the run's seed, then one question of each passage, then a second of
each, ... until the pairs that fit are taken. Never the first rows: a collection's first passages are often
one document. Labelled questions are taken before generated ones (``labelled_first``), so a budget cuts
generated pairs first. The validation hold-out is made before (``core.tuning.holdout``): the budget subsets the
training part only. The epochs stay as set; the budget takes pairs away.

A leaf besides ``core.tuning.cost`` (no torch): the estimate and ``core.tuning.full.train_full`` both call
:func:`plan_budget`, so what the page says is what the run does.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass

from core.dataset import QADataset, generated_ids
from core.tuning.cost import trainer_seconds
from core.workspace.jobs import fmt_duration

logger = logging.getLogger(__name__)


@dataclass
class BudgetPlan:
    """What a time budget keeps of a training split (``kept`` is the split itself when everything fits)."""

    minutes: float  # the budget (0: no limit)
    kept: QADataset
    pairs: int  # training pairs of the whole split
    kept_pairs: int
    passages: int  # passages with a training question
    kept_passages: int
    full_seconds: float  # the training phase on every pair, at the estimate's rate
    kept_seconds: float
    unit_seconds: float  # one pair for every epoch (what one more pair costs)
    mix: str = ""  # what the mix of generated and labelled questions left out, in words ('' when nothing)

    @property
    def cut(self) -> bool:
        return self.kept_pairs < self.pairs

    def pairs_for(self, minutes: float) -> int:
        """Training pairs a budget of ``minutes`` would keep."""
        if self.unit_seconds <= 0:
            return self.pairs
        return min(self.pairs, int(minutes * 60 / self.unit_seconds))

    def line(self, done: bool = True) -> str:
        """What the budget left out, in words ('' when nothing was): the run's training line (``done``) or
        the estimate's (what it will leave out, what more time would buy)."""
        if not self.cut:
            return ""
        every = self.kept_passages == self.passages
        spread = (f"every passage kept at least one question: {self.kept_passages:,} of {self.passages:,}" if every
                  else f"spread over the passages: {self.kept_passages:,} of {self.passages:,} kept a question")
        head = f"Time budget {self.minutes:g} min: {'trained' if done else 'training'} on " \
               f"{self.kept_pairs:,} of {self.pairs:,} pairs ({spread})"
        full = f"all of them would take {fmt_duration(self.full_seconds)} on this machine"
        if done:
            return f"{head} — {full}."
        more = self.minutes * 2
        extra = (f"; {more:g} min would train on {self.pairs_for(more):,}" if self.pairs_for(more) < self.pairs
                 else "")
        return (f"{head}; {self.pairs - self.kept_pairs:,} left out — {full}{extra} (Time budget in the "
                "settings; 0 = no limit).")


def spread_subset(train: QADataset, max_pairs: int, seed: int) -> QADataset:
    """Questions of ``train`` with at most ``max_pairs`` (question, passage) pairs, spread over the passages.

    Round-robin: the passages in an order drawn from ``seed`` (each with its questions in an order drawn from
    ``seed``), one question of each, then a second, ...; a question whose pairs no longer fit is skipped. The
    questions keep their order in ``train``; the corpus is kept whole (negatives, mining).
    """
    rng = random.Random(seed)
    by_doc: dict[str, list[str]] = {}
    for q in train.query_ids:
        docs = [d for d in train.relevant_docs.get(q, []) if d in train.corpus]
        if docs:
            by_doc.setdefault(docs[0], []).append(q)
    groups = list(by_doc.values())
    rng.shuffle(groups)
    for g in groups:
        rng.shuffle(g)
    size = {q: sum(d in train.corpus for d in train.relevant_docs[q]) for g in groups for q in g}
    chosen: set[str] = set()
    taken = 0
    for r in range(max((len(g) for g in groups), default=0)):
        for g in groups:
            if r < len(g) and taken + size[g[r]] <= max_pairs:
                chosen.add(g[r])
                taken += size[g[r]]
        if taken >= max_pairs:
            break
    return train.subset([q for q in train.query_ids if q in chosen])


def mix_generated(train: QADataset, per_labelled: float, seed: int) -> tuple[QADataset, str]:
    """``train`` with at most ``per_labelled`` generated pairs per labelled pair (0: all), the generated
    questions kept spread over the passages (``spread_subset``), every labelled question kept; and the mix in
    words ('' when the split holds one kind only)."""
    gen = set(generated_ids(train))
    if not gen or len(gen) == len(train):
        return train, ""
    labelled = [q for q in train.query_ids if q not in gen]
    lab_pairs = len(train.subset(labelled).pairs())
    generated = train.subset([q for q in train.query_ids if q in gen])
    gen_pairs = len(generated.pairs())
    cap = int(per_labelled * lab_pairs)
    if per_labelled <= 0 or gen_pairs <= cap:
        within = "every generated pair" if per_labelled <= 0 else f"within {per_labelled:g} per labelled pair"
        return train, f"Mix: {lab_pairs:,} labelled pairs and all {gen_pairs:,} generated ones ({within})."
    chosen = set(spread_subset(generated, cap, seed).query_ids)
    kept = train.subset([q for q in train.query_ids if q not in gen or q in chosen])
    line = (f"Mix: {lab_pairs:,} labelled pairs and {len(kept.pairs()) - lab_pairs:,} of {gen_pairs:,} generated "
            f"ones ({per_labelled:g} generated per labelled pair, spread over the passages).")
    return kept, line


def labelled_first(train: QADataset, max_pairs: int, seed: int) -> QADataset:
    """``spread_subset`` of ``train``, its labelled questions taken before its generated ones: the labelled
    spread over their passages up to ``max_pairs``, then the generated spread over theirs with what is left."""
    gen = set(generated_ids(train))
    if not gen or len(gen) == len(train):
        return spread_subset(train, max_pairs, seed)
    labelled = spread_subset(train.subset([q for q in train.query_ids if q not in gen]), max_pairs, seed)
    rest = max_pairs - len(labelled.pairs())
    generated = spread_subset(train.subset([q for q in train.query_ids if q in gen]), rest, seed) if rest > 0 else None
    keep = set(labelled.query_ids) | set(generated.query_ids if generated is not None else ())
    return train.subset([q for q in train.query_ids if q in keep])


def plan_budget(settings, train: QADataset, seed: int, speed: float = 1.0) -> BudgetPlan:
    """The training pairs of ``train`` that the run trains on: the mix of generated and labelled questions
    (``settings.generated_per_labelled``, ``mix_generated``), then what fits ``settings.time_budget_minutes``
    (a ``FullSettings``; 0 or no such setting: all) at the estimate's rate times the method's ``speed``
    (``core.tuning.methods``), labelled questions before generated ones."""
    train, mix = mix_generated(train, float(getattr(settings, "generated_per_labelled", 0) or 0), seed)
    minutes = float(getattr(settings, "time_budget_minutes", 0) or 0)
    pairs = len(train.pairs())
    full_s = trainer_seconds(settings, train, speed)
    passages = {d for q in train.query_ids for d in train.relevant_docs.get(q, [])[:1] if d in train.corpus}
    plan = BudgetPlan(minutes, train, pairs, pairs, len(passages), len(passages), full_s, full_s, 0.0, mix)
    if minutes <= 0 or pairs == 0 or full_s <= minutes * 60:
        return plan
    uncapped = dataclasses.replace(settings, max_steps=-1)  # max_steps caps the cost, not a pair's price
    plan.unit_seconds = trainer_seconds(uncapped, train, speed) / pairs
    floor = min(pairs, max(2, settings.batch_size))  # at least one batch: a step to take
    keep = max(floor, plan.pairs_for(minutes))
    kept = labelled_first(train, keep, seed)
    plan.kept = kept
    plan.kept_pairs = len(kept.pairs())
    plan.kept_passages = len({d for q in kept.query_ids for d in kept.relevant_docs[q][:1]})
    plan.kept_seconds = trainer_seconds(settings, kept, speed)
    logger.info("time budget %g min: %d of %d pairs (%d of %d passages); all would take %.0f s", minutes,
                plan.kept_pairs, pairs, plan.kept_passages, plan.passages, full_s)
    return plan

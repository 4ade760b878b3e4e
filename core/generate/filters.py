"""Filters for generated questions, with a verdict per question and counts per filter.

The filters, in the order a dropped question is attributed to them (:data:`FILTER_ORDER`):

* ``too_short`` / ``too_long``: fewer than ``min_words`` or more than ``max_words``
  whitespace words.
* ``copies_passage``: the longest run of consecutive words shared with the passage (case and
  punctuation ignored) is ``max_copy_words`` or longer: such a question teaches word
  matching, which BM25 already does. Offline pseudo-queries (inverse cloze, crops) copy by
  design: :func:`recommended_settings` turns this filter off for them.
* ``round_trip``: round-trip consistency (as in Alberti et al. 2019 and Promptagator, with
  the base model as the retriever): the question, searched against ALL the passages with
  the base model, must find its own passage in the top ``round_trip_k``. Takes
  pre-computed vectors (functions over arrays) or a model and an embedding cache.
* ``exact_duplicate`` / ``near_duplicate``: among the questions every filter above kept, a
  later question identical to an earlier one after normalisation (lower case, punctuation
  removed), or near it, is dropped; the first is kept. "Near" is the rule of
  ``core.ingest.splits`` (Jaccard similarity of character 3-gram sets of the normalised
  text, threshold 0.8), with one addition for generated text: two questions whose numbers
  differ are never near duplicates ("revenue in 2021" / "revenue in 2022" score 0.89 but
  ask different things, and generated questions over reports differ by a year all the time).

Length, copy and round-trip verdicts are independent (a question can fail several); the
duplicate check only looks at questions that passed them, so a question is never dropped
as the copy of one that is itself dropped. :class:`FilterReport` gives each question's
verdict, what each filter flagged, and a funnel whose steps add up ("412 generated, 37
duplicates, 51 failed round-trip, 324 kept"), and explains an empty result.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from core.generate.checks import (  # noqa: F401 - public here too
    NEAR_DUPLICATE_METHOD,
    NUMBER,
    WORDS,
    longest_shared_run,
    near_duplicate_pairs,
    normalize,
    round_trip_ranks,
)
from core.generate.pairs import GeneratedQuestion
from core.retrieval.embedding import encode

logger = logging.getLogger(__name__)

FilterName = Literal[
    "too_short", "too_long", "copies_passage", "round_trip", "exact_duplicate", "near_duplicate"
]
FILTER_ORDER: tuple[str, ...] = (
    "too_short",
    "too_long",
    "copies_passage",
    "round_trip",
    "exact_duplicate",
    "near_duplicate",
)
FILTER_LABELS = {
    "too_short": "too short",
    "too_long": "too long",
    "copies_passage": "copy the passage",
    "round_trip": "failed round-trip",
    "exact_duplicate": "exact duplicates",
    "near_duplicate": "near duplicates",
}


@dataclass
class FilterSettings:
    """Which generated questions to keep (see the module docstring for each filter)."""

    min_words: int = field(
        default=3,
        metadata={
            "help": "Questions with fewer words are dropped: 'Revenue?' matches anything. 3 keeps 'Who audits "
            "Acme?' and keyword queries of three terms.",
            "label": "Min words",
            "min": 0,
            "max": 50,
        },
    )
    max_words: int = field(
        default=50,
        metadata={
            "help": "Questions with more words are dropped (0: no limit). Real questions rarely pass 30 words; a "
            "longer one is usually the model pasting the passage.",
            "label": "Max words",
            "min": 0,
            "max": 1000,
        },
    )
    max_copy_words: int = field(
        default=10,
        metadata={
            "help": "A question sharing this many consecutive words with its passage is dropped (0: off). 10 words "
            "lets a question name a long product or title, not paste a sentence. Turn off for inverse "
            "cloze and crops, which copy by design.",
            "label": "Copy limit (words)",
            "min": 0,
            "max": 200,
        },
    )
    round_trip: bool = field(
        default=True,
        metadata={
            "help": "Keep a question only if the base model, searching all passages, finds its own passage in the "
            "top k. Drops questions that are vague or that another passage answers better.",
            "label": "Round-trip check",
        },
    )
    round_trip_k: int = field(
        default=3,
        metadata={
            "help": "How high the own passage must rank. 1 is strict (near-identical passages, e.g. yearly reports, "
            "take each other's first place); 3 forgives that.",
            "label": "Round-trip k",
            "min": 1,
            "max": 100,
        },
    )
    exact_duplicates: bool = field(
        default=True,
        metadata={
            "help": "Drop a question identical to an earlier one (ignoring case and punctuation).",
            "label": "Drop exact duplicates",
        },
    )
    near_duplicates: bool = field(
        default=True,
        metadata={
            "help": "Drop a question nearly identical to an earlier one (character 3-gram Jaccard >= the threshold, "
            "same numbers).",
            "label": "Drop near duplicates",
        },
    )
    near_duplicate_threshold: float = field(
        default=0.8,
        metadata={
            "help": "Similarity at or above which two questions are near duplicates: 0.8, as for the train/eval "
            "leakage check, flags rewordings by a word while keeping questions on one topic that ask "
            "different things.",
            "label": "Near-duplicate threshold",
            "min": 0.5,
            "max": 1.0,
            "step": 0.05,
            "advanced": True,
        },
    )


def recommended_settings(origin: str) -> FilterSettings:
    """Default filters for questions of this origin (e.g. ``"generated:offline:crop"``).

    Inverse cloze and crops are copied spans by design: the copy filter is off for them and
    the length limit follows their longest spans. Everything else gets the defaults.
    """
    if origin.endswith((":inverse_cloze", ":crop")):
        return FilterSettings(max_copy_words=0, max_words=0)
    return FilterSettings()


@dataclass
class Verdict:
    """What the filters said about one question.

    Attributes:
        kept: True when no filter dropped it.
        reasons: Filters that dropped it (codes of :data:`FILTER_ORDER`, in that order).
        notes: One plain-words remark per reason, e.g. "2 words (min 3)".
        words: Whitespace words in the question.
        copied_words: Longest run of words shared with its passage.
        rank: Rank of its own passage in the round-trip search (None when not run).
        duplicate_of: Index of the earlier question it duplicates (None if none).
    """

    kept: bool = True
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    words: int = 0
    copied_words: int = 0
    rank: int | None = None
    duplicate_of: int | None = None

    def drop(self, reason: str, note: str) -> None:
        self.kept = False
        self.reasons.append(reason)
        self.notes.append(note)


@dataclass
class FilterReport:
    """Every question's verdict and the counts a page shows.

    Attributes:
        verdicts: One per question, in input order.
        settings: The settings used.
        round_trip_ran: False when the round-trip check was off.
    """

    verdicts: list[Verdict]
    settings: FilterSettings
    round_trip_ran: bool = False

    @property
    def total(self) -> int:
        return len(self.verdicts)

    @property
    def kept_indices(self) -> list[int]:
        return [i for i, v in enumerate(self.verdicts) if v.kept]

    @property
    def n_kept(self) -> int:
        return sum(v.kept for v in self.verdicts)

    def kept(self, questions: Sequence[GeneratedQuestion]) -> list[GeneratedQuestion]:
        """The questions kept (``questions`` must be the list the report was made from)."""
        if len(questions) != self.total:
            raise ValueError(f"{len(questions)} questions given for a report on {self.total}.")
        return [q for q, v in zip(questions, self.verdicts) if v.kept]

    def flagged(self) -> dict[str, int]:
        """Questions each filter dropped (a question failing two filters counts in both)."""
        out = dict.fromkeys(FILTER_ORDER, 0)
        for v in self.verdicts:
            for r in v.reasons:
                out[r] += 1
        return out

    def funnel(self) -> dict[str, int]:
        """Dropped questions by their FIRST failing filter, plus ``generated`` and ``kept``: they add up."""
        out = {"generated": self.total, **dict.fromkeys(FILTER_ORDER, 0)}
        for v in self.verdicts:
            if v.reasons:
                out[v.reasons[0]] += 1
        out["kept"] = self.n_kept
        return out

    def summary(self) -> str:
        """One line, e.g. ``"412 generated, 37 duplicates, 51 failed round-trip, 324 kept"``."""
        f = self.funnel()
        parts = [f"{self.total} generated"]
        for name in ("too_short", "too_long", "copies_passage"):
            if f[name]:
                parts.append(f"{f[name]} {FILTER_LABELS[name]}")
        dups = f["exact_duplicate"] + f["near_duplicate"]
        if dups:
            parts.append(f"{dups} duplicate{'s' if dups != 1 else ''}")
        if f["round_trip"]:
            parts.append(f"{f['round_trip']} failed round-trip")
        parts.append(f"{self.n_kept} kept")
        return ", ".join(parts)

    def explain_empty(self) -> str | None:
        """Why no question is left and what to change; None when some are kept."""
        if self.n_kept:
            return None
        if not self.total:
            return "No questions were generated, so there is nothing to filter: generate questions first."
        f = self.funnel()
        worst = max(FILTER_ORDER, key=lambda k: f[k])
        s = self.settings
        advice = {
            "too_short": f"lower the minimum words (now {s.min_words})",
            "too_long": f"raise the maximum words (now {s.max_words}) or set it to 0",
            "copies_passage": (
                f"raise the copy limit (now {s.max_copy_words} words), or set it to 0 for "
                "pseudo-queries that copy by design"
            ),
            "round_trip": (
                f"raise k (now {s.round_trip_k}) or turn the round-trip check off; that the base model "
                "cannot find these passages may also mean tuning has a lot to gain"
            ),
            "exact_duplicate": "the generator repeats itself: ask for fewer questions per passage",
            "near_duplicate": "the generator repeats itself: ask for fewer questions per passage or raise the "
            "temperature",
        }[worst]
        return (
            f"No question is left after filtering: of {self.total} generated, {f[worst]} "
            f"{'was' if f[worst] == 1 else 'were'} dropped first as {FILTER_LABELS[worst]}. To keep more, "
            f"{advice}."
        )

    def rows(self, questions: Sequence[GeneratedQuestion]) -> list[dict]:
        """One dict per question for a review table: question, passage_id, kept, reasons, rank, copied words."""
        return [
            {
                "question": q.question,
                "passage_id": q.passage_id,
                "kept": v.kept,
                "why": "; ".join(v.notes),
                "rank": v.rank,
                "copied_words": v.copied_words,
                "origin": q.origin,
            }
            for q, v in zip(questions, self.verdicts)
        ]


# --------------------------------------------------------------------------- the whole pass


def filter_questions(
    questions: Sequence[GeneratedQuestion],
    passages: dict[str, str],
    settings: FilterSettings | None = None,
    *,
    question_vectors: np.ndarray | None = None,
    passage_vectors: np.ndarray | None = None,
    model=None,
    cache=None,
) -> FilterReport:
    """Run every filter and say, per question, whether it is kept and why not.

    Args:
        questions: The generated questions.
        passages: Passage id -> text: the WHOLE collection (the round trip searches all of it).
        settings: Which filters, with what limits; None: the defaults.
        question_vectors: (len(questions), dim) float32, L2-normalised, in ``questions`` order.
        passage_vectors: (len(passages), dim) float32, L2-normalised, in ``passages`` order.
        model: Encodes what was not given (questions as queries, passages as passages).
        cache: An ``EmbeddingCache`` for those encodes.

    Returns:
        The :class:`FilterReport`.

    Raises:
        ValueError: a question names a passage not in ``passages``; the round trip is on but
            neither vectors nor a model were given; vectors of the wrong length.
    """
    s = settings or FilterSettings()
    missing = sorted({q.passage_id for q in questions if q.passage_id not in passages})
    if missing:
        raise ValueError(f"{len(missing)} question(s) point to passages not given, e.g. {missing[0]!r}.")
    verdicts = [Verdict(words=len(q.question.split())) for q in questions]

    for v in verdicts:
        if v.words < s.min_words:
            v.drop("too_short", f"{v.words} word{'s' if v.words != 1 else ''} (min {s.min_words})")
        if s.max_words and v.words > s.max_words:
            v.drop("too_long", f"{v.words} words (max {s.max_words})")

    if s.max_copy_words > 0:
        matchers: dict[str, tuple[difflib.SequenceMatcher, int]] = {}
        for q, v in zip(questions, verdicts):
            if q.passage_id not in matchers:
                words = WORDS.findall(passages[q.passage_id].casefold())
                sm = difflib.SequenceMatcher(None, autojunk=False)
                sm.set_seq2(words)
                matchers[q.passage_id] = (sm, len(words))
            sm, n_p = matchers[q.passage_id]
            q_words = WORDS.findall(q.question.casefold())
            sm.set_seq1(q_words)
            v.copied_words = sm.find_longest_match(0, len(q_words), 0, n_p).size if q_words and n_p else 0
            if v.copied_words >= s.max_copy_words:
                v.drop(
                    "copies_passage",
                    f"copies {v.copied_words} words of its passage (limit {s.max_copy_words})",
                )

    ran = False
    if s.round_trip and questions:
        ranks = _round_trip(questions, passages, question_vectors, passage_vectors, model, cache)
        ran = True
        for v, r in zip(verdicts, ranks):
            v.rank = int(r)
            if r > s.round_trip_k:
                v.drop(
                    "round_trip",
                    f"own passage ranked {int(r)} by the base model (needs top {s.round_trip_k})",
                )

    if s.exact_duplicates or s.near_duplicates:
        _mark_duplicates(questions, verdicts, s)

    report = FilterReport(verdicts, s, ran)
    logger.info("filters: %s", report.summary())
    return report


def _round_trip(questions, passages, question_vectors, passage_vectors, model, cache) -> np.ndarray:
    ids = list(passages)
    if question_vectors is None or passage_vectors is None:
        if model is None:
            raise ValueError(
                "The round-trip check needs question and passage vectors, or a model to encode them."
            )
        if question_vectors is None:
            question_vectors = encode(model, [q.question for q in questions], kind="query", cache=cache)
        if passage_vectors is None:
            passage_vectors = encode(model, [passages[i] for i in ids], kind="passage", cache=cache)
    if len(passage_vectors) != len(ids):
        raise ValueError(f"{len(passage_vectors)} passage vectors for {len(ids)} passages.")
    row = {pid: i for i, pid in enumerate(ids)}
    return round_trip_ranks(question_vectors, passage_vectors, [row[q.passage_id] for q in questions])


def _mark_duplicates(
    questions: Sequence[GeneratedQuestion], verdicts: list[Verdict], s: FilterSettings
) -> None:
    alive = [i for i, v in enumerate(verdicts) if v.kept]
    norm = [normalize(questions[i].question) for i in alive]
    near = near_duplicate_pairs(norm, s.near_duplicate_threshold) if s.near_duplicates else {}
    numbers = [NUMBER.findall(t) for t in norm]
    first_of: dict[str, int] = {}
    kept_local: set[int] = set()
    for a, i in enumerate(alive):
        if s.exact_duplicates and norm[a] in first_of:
            j = first_of[norm[a]]
            verdicts[i].duplicate_of = alive[j]
            verdicts[i].drop("exact_duplicate", f"same as question {alive[j] + 1}")
            continue
        match = next(
            (
                b
                for b in near.get(a, [])
                if b in kept_local and norm[b] != norm[a] and numbers[b] == numbers[a]
            ),
            None,
        )
        if match is not None:
            verdicts[i].duplicate_of = alive[match]
            verdicts[i].drop("near_duplicate", f"nearly the same as question {alive[match] + 1}")
            continue
        first_of.setdefault(norm[a], a)
        kept_local.add(a)

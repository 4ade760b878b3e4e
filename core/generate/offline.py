"""Pseudo-queries made from the passages alone (no LLM), deterministic given a seed.

Three methods, each following its paper:

* ``"inverse_cloze"`` ("sentence as question" on the pages): a random sentence of the passage is the query, as
  in the Inverse Cloze Task of ORQA (Lee, Chang & Toutanova, ACL 2019, "Latent Retrieval for Weakly Supervised
  Open Domain Question Answering"). ORQA REMOVES the sentence from the positive 90% of the time so the model must
  learn meaning rather than word overlap (``ict_keep_sentence`` 0.1); here the positive is by default the passage
  as uploaded (``ict_keep_sentence`` 1), which measured better on all three collections tried (bench/RESULTS.md,
  "Keep the sentence"). A positive without the sentence is a new text: it is carried by
  :attr:`GeneratedQuestion.positive` and gets the corpus id ``<passage id>#ict<k>`` (k = the sentence number) in
  the dataset.
* ``"crop"``: cropping as in Contriever (Izacard et al., TMLR 2022, "Unsupervised Dense
  Information Retrieval with Contrastive Learning"): a random contiguous span of 10% to 50%
  of the passage's words (Contriever's ``ratio_min``/``ratio_max``). Contriever pairs two
  independent crops; here the positive is the whole passage, so passage ids stay those of
  the collection (and line up with an evaluation file over the same passages). The span is
  capped at ``crop_max_words``, which Contriever does not do, so that a pseudo-query on a
  long passage stays closer to the length of a real question.
* ``"keywords"``: a few of the passage's highest TF-IDF terms (IDF over the passages given),
  in the order they appear, like the keyword queries people type into a search box.

Every passage gets its own random generator seeded from (seed, passage id), so a passage's
queries do not depend on the other passages or their order (keyword IDF aside).
"""

from __future__ import annotations

import hashlib
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from core.generate.pairs import GeneratedQuestion, offline_origin

logger = logging.getLogger(__name__)

OfflineMethod = Literal["inverse_cloze", "crop", "keywords"]
OFFLINE_METHODS: tuple[str, ...] = get_args(OfflineMethod)
Progress = Callable[[int, int], None]  # (passages done, passages in all)
PROGRESS_EVERY = 500  # passages between progress calls
# What bench/bench_generate.py measured (bench/RESULTS.md): the page shows it beside the method choice.
MEASURED = (
    "Measured on sec-10k (395 passages of two 10-K filings, scored on 790 questions no method saw; nDCG@10 0.657 "
    "before): a full fine-tune on 'sentence as question' pairs lifted dense retrieval to 0.704 (+0.047, "
    "significant), which is why it is the default. The other results (measured before sentences run together "
    "by PDF extraction were cut, when half the passages gave no question) were no real change: query adapter on "
    "sentence as question 0.657, random excerpt 0.660, keywords 0.647; full fine-tune on random excerpts 0.661, "
    "on keywords 0.665. "
    "TSDAE domain adaptation of the model (no questions at all) fell to 0.122, so the lab does not offer it. "
    "Keyword search (BM25, 0.835) still did better than any tuned model alone. Offline questions may help more or "
    "less on your collection: label a few dozen real questions (Label tab) and let Compare tell you."
)

# Sentence ends: . ! ? … (then optional closing quote/bracket) before whitespace and a capital,
# digit or opening quote; or, with no space at all, after a lower-case word and before a capitalised one
# ("transportation.In 2012": text taken out of a PDF often loses the space; "U.S.A", "3.5" and "Item 1.Business"
# are not cut); or CJK full stops.
_SENTENCE_END = re.compile(
    r"[.!?…][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])"
    r"|(?<=[a-zß-öø-ÿ]{2})[.!?][\"'”’)\]]*(?=[\"'“‘(\[•]?[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ])"
    r"|[。！？]+"
)
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st no nos vs fig figs approx sec art jr sr ca cf e.g i.e".split()
)
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")
# Common English function words, kept out of keyword queries.
STOPWORDS = frozenset(
    """
a about above after again against all also am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have having he
her here hers herself him himself his how i if in into is it its itself just let me more most my myself no nor
not now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up upon very was we
were what when where which while who whom why will with would you your yours yourself yourselves may might must
shall within without per via among including include includes included however therefore thus etc every
""".split()
)


@dataclass
class OfflineSettings:
    """How pseudo-queries are cut from the passages (see the module docstring for each method)."""

    method: OfflineMethod = field(
        default="inverse_cloze",
        metadata={
            "help": "inverse_cloze: a sentence is the query, the rest of the passage its positive (ORQA). crop: a "
            "random span of the passage is the query (Contriever). keywords: a few of the passage's rarest "
            "terms. Which one helps is measured on sec-10k by bench/bench_generate.py; none needs an LLM.",
            "label": "Method",
        },
    )
    per_passage: int = field(
        default=2,
        metadata={
            "help": "Pseudo-queries per passage. Each is a different sentence / span / keyword set; more than "
            "~3 mostly repeats the same passage in training.",
            "label": "Queries per passage",
            "min": 1,
            "max": 20,
        },
    )
    seed: int = field(
        default=42,
        metadata={"help": "Same seed, same passages -> same queries.", "label": "Seed", "advanced": True},
    )
    ict_keep_sentence: float = field(
        default=1.0,
        metadata={
            "help": "Sentence as question: share of questions whose sentence stays in the passage they train on. "
            "1: the passage as uploaded. Below 1 the rest train on the passage with their sentence cut out "
            "(ORQA's inverse cloze keeps it 10% of the time, so the model must match meaning over shared words). "
            "1 measured better than 0.1 on sec-10k (dense nDCG@10 +0.012, p = 0.04), the bundled sample and a "
            "long-passage collection (bench/RESULTS.md).",
            "label": "Keep the sentence (share)",
            "min": 0.0,
            "max": 1.0,
            "step": 0.05,
            "advanced": True,
        },
    )
    min_sentence_words: int = field(
        default=5,
        metadata={
            "help": "Inverse cloze: shorter sentences (headings, 'See Note 4.') are never queries.",
            "label": "Min words per query sentence",
            "min": 1,
            "max": 50,
            "advanced": True,
        },
    )
    crop_min_ratio: float = field(
        default=0.1,
        metadata={
            "help": "Crop: shortest span as a share of the passage's words (Contriever's ratio_min).",
            "label": "Crop: min share",
            "min": 0.01,
            "max": 1.0,
            "step": 0.05,
            "advanced": True,
        },
    )
    crop_max_ratio: float = field(
        default=0.5,
        metadata={
            "help": "Crop: longest span as a share of the passage's words (Contriever's ratio_max).",
            "label": "Crop: max share",
            "min": 0.01,
            "max": 1.0,
            "step": 0.05,
            "advanced": True,
        },
    )
    crop_min_words: int = field(
        default=4,
        metadata={
            "help": "Crop: no span shorter than this; passages with fewer words give no query.",
            "label": "Crop: min words",
            "min": 1,
            "max": 100,
            "advanced": True,
        },
    )
    crop_max_words: int = field(
        default=48,
        metadata={
            "help": "Crop: no span longer than this (not in Contriever): keeps pseudo-queries near the length of "
            "real questions on long passages.",
            "label": "Crop: max words",
            "min": 1,
            "max": 512,
            "advanced": True,
        },
    )
    keywords_per_query: int = field(
        default=4,
        metadata={
            "help": "Keywords: terms per query, like a short search-box query.",
            "label": "Keywords per query",
            "min": 1,
            "max": 12,
            "advanced": True,
        },
    )
    keyword_pool: int = field(
        default=10,
        metadata={
            "help": "Keywords: a query's terms are drawn from the passage's top terms by TF-IDF, this many.",
            "label": "Keyword pool",
            "min": 1,
            "max": 50,
            "advanced": True,
        },
    )


@dataclass
class OfflineResult:
    """Pseudo-queries and the passages that gave none.

    Attributes:
        questions: One record per pseudo-query, in passage order.
        skipped: Passage id -> why it gave no query (e.g. "a single sentence").
        method: The method used.
    """

    questions: list[GeneratedQuestion] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    method: str = ""

    def summary(self) -> str:
        """One line, e.g. ``"812 inverse_cloze queries from 406 passages; 3 passages gave none (...)."``."""
        n_pass = len({q.passage_id for q in self.questions})
        line = f"{_n(len(self.questions), self.method + ' query', self.method + ' queries')} from {_n(n_pass, 'passage')}"
        if self.skipped:
            line += f"; {_n(len(self.skipped), 'passage')} gave none ({_top_reason(self.skipped)})"
        return line + "."


def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def _top_reason(skipped: dict[str, str]) -> str:
    reason, n = Counter(skipped.values()).most_common(1)[0]
    return f"most often: {reason}, {n}"


def _rng(seed: int, passage_id: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}\x00{passage_id}".encode("utf-8", "surrogatepass")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (paragraph breaks end a sentence too); empty ones dropped."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if not para:
            continue
        cuts = [m.end() for m in _SENTENCE_END.finditer(para)]
        pieces = [para[a:b].strip() for a, b in zip([0, *cuts], [*cuts, len(para)])]
        pieces = [p for p in pieces if p]
        merged: list[str] = []
        for piece in pieces:
            last_word = merged[-1].rsplit(" ", 1)[-1].rstrip(".").casefold() if merged else ""
            if merged and last_word in _ABBREVIATIONS:
                merged[-1] = f"{merged[-1]} {piece}"
            else:
                merged.append(piece)
        out.extend(merged)
    return out


def _inverse_cloze(
    pid: str, text: str, s: OfflineSettings, rng: random.Random
) -> tuple[list[GeneratedQuestion], str]:
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return [], "a single sentence (inverse cloze needs two)"
    usable = [i for i, sent in enumerate(sentences) if len(sent.split()) >= s.min_sentence_words]
    if not usable:
        return [], f"no sentence of {s.min_sentence_words}+ words"
    origin = offline_origin("inverse_cloze")
    out = []
    for i in sorted(rng.sample(usable, min(s.per_passage, len(usable)))):
        if rng.random() < s.ict_keep_sentence:
            out.append(GeneratedQuestion(sentences[i], pid, origin))
        else:
            rest = " ".join(sentences[:i] + sentences[i + 1 :])
            out.append(
                GeneratedQuestion(sentences[i], pid, origin, positive=rest, positive_tag=f"ict{i + 1}")
            )
    return out, ""


def _crop(pid: str, text: str, s: OfflineSettings, rng: random.Random) -> tuple[list[GeneratedQuestion], str]:
    words = text.split()
    if len(words) < s.crop_min_words:
        return [], f"fewer than {s.crop_min_words} words"
    origin = offline_origin("crop")
    out: list[GeneratedQuestion] = []
    seen: set[str] = set()
    for _ in range(s.per_passage * 5):  # a few tries to get distinct spans from short passages
        if len(out) >= s.per_passage:
            break
        ratio = rng.uniform(s.crop_min_ratio, s.crop_max_ratio)
        length = min(len(words), s.crop_max_words, max(s.crop_min_words, round(ratio * len(words))))
        start = rng.randint(0, len(words) - length)
        span = " ".join(words[start : start + length])
        if span not in seen:
            seen.add(span)
            out.append(GeneratedQuestion(span, pid, origin))
    return out, ""


def _terms(text: str) -> list[str]:
    """Lower-cased words worth a keyword query: 3+ characters, not a stop word, not a short number."""
    out = []
    for w in _WORD.findall(text.casefold()):
        if len(w) < 3 or w in STOPWORDS or (w.isdigit() and len(w) < 4):
            continue
        out.append(w)
    return out


def _keywords(
    pid: str, text: str, s: OfflineSettings, rng: random.Random, idf: dict[str, float], default_idf: float
) -> tuple[list[GeneratedQuestion], str]:
    terms = _terms(text)
    if not terms:
        return [], "no content words"
    tf = Counter(terms)
    first = {}
    for i, t in enumerate(terms):
        first.setdefault(t, i)
    # TF-IDF with sublinear tf (1 + log tf): a term repeated ten times is not ten times as telling.
    scored = sorted(tf, key=lambda t: (-(1 + math.log(tf[t])) * idf.get(t, default_idf), first[t]))
    pool = scored[: max(s.keyword_pool, s.keywords_per_query)]
    k = min(s.keywords_per_query, len(pool))
    origin = offline_origin("keywords")
    out: list[GeneratedQuestion] = []
    seen: set[tuple[str, ...]] = set()
    weights = [idf.get(t, default_idf) for t in pool]
    for attempt in range(s.per_passage * 5):
        if len(out) >= s.per_passage:
            break
        if attempt == 0:
            chosen = pool[:k]  # the first query is the top terms themselves
        else:
            chosen = []
            cand, w = list(pool), list(weights)
            while len(chosen) < k:
                j = rng.choices(range(len(cand)), weights=w)[0]
                chosen.append(cand.pop(j))
                w.pop(j)
        key = tuple(sorted(chosen))
        if key in seen:
            continue
        seen.add(key)
        out.append(GeneratedQuestion(" ".join(sorted(chosen, key=first.__getitem__)), pid, origin))
    return out, ""


def generate_offline(
    passages: dict[str, str], settings: OfflineSettings | None = None, progress: Progress | None = None
) -> OfflineResult:
    """Pseudo-queries for every passage with the chosen method.

    Args:
        passages: Passage id -> text.
        settings: Method, count per passage, seed and the method's knobs.
        progress: Called with (passages done, passages in all) every
            :data:`PROGRESS_EVERY` passages and at the end.

    Returns:
        The queries (origin ``generated:offline:<method>``) and the passages that gave none.

    Raises:
        ValueError: an unknown method or a setting out of range.
    """
    s = settings or OfflineSettings()
    if s.method not in OFFLINE_METHODS:
        raise ValueError(f"Unknown offline method {s.method!r}; choose one of {', '.join(OFFLINE_METHODS)}.")
    if s.per_passage < 1:
        raise ValueError("Queries per passage must be at least 1.")
    if not 0 < s.crop_min_ratio <= s.crop_max_ratio <= 1:
        raise ValueError("Crop shares must satisfy 0 < min share <= max share <= 1.")
    idf: dict[str, float] = {}
    default_idf = 1.0
    if s.method == "keywords":
        df = Counter(t for text in passages.values() for t in set(_terms(text)))
        n = len(passages)
        idf = {t: math.log((n + 1) / (d + 1)) + 1 for t, d in df.items()}
        default_idf = math.log(n + 1) + 1
    result = OfflineResult(method=s.method)
    total = len(passages)
    for done, (pid, text) in enumerate(passages.items(), start=1):
        rng = _rng(s.seed, pid)
        if not text.strip():
            qs, why = [], "empty passage"
        elif s.method == "inverse_cloze":
            qs, why = _inverse_cloze(pid, text, s, rng)
        elif s.method == "crop":
            qs, why = _crop(pid, text, s, rng)
        else:
            qs, why = _keywords(pid, text, s, rng, idf, default_idf)
        result.questions.extend(qs)
        if not qs:
            result.skipped[pid] = why
        if progress and (done % PROGRESS_EVERY == 0 or done == total):
            progress(done, total)
    logger.info("offline queries: %s", result.summary())
    return result

"""Generated questions and their passages -> a :class:`~core.dataset.QADataset` and a pair file.

This module owns the record every generator produces, :class:`GeneratedQuestion`
(question text, the id of the passage it was made from, its origin, and, for inverse
cloze with the sentence removed, the text to train against), and the two ways out:

* :func:`build_dataset`: a ``QADataset`` whose corpus is every passage under its own id
  (so training pairs and an evaluation file over the same passages line up), with the
  sources kept, plus the origin of each question (:class:`GeneratedSet`);
* :func:`pair_table` / :func:`write_pair_file`: a CSV with the columns ``question,
  passage, passage_id, source, origin`` that :func:`core.ingest.qafiles.load_qa_file`
  reads back as a pair table (it reads ``question`` and ``passage`` and ignores the rest).

Origins are strings: ``"generated:llm:<model>"`` or ``"generated:offline:<method>"``, so
evaluation can say what its questions are (:func:`is_generated`). Human questions have no
origin here; the dataset type has no origin field, so :class:`GeneratedSet` carries them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.csvsafe import neutralise
from core.dataset import QADataset, derived_from
from core.workspace.files import atomic_write_bytes

GENERATED = "generated"
VERIFIED = ":verified"  # suffix of a generated question the expert checked (core.generate.labels)
PAIR_COLUMNS = ("question", "passage", "passage_id", "source", "origin")
_MIXED = re.compile(r"mixed \((\d+) of (\d+) generated\)")


def llm_origin(model: str) -> str:
    """Origin of a question written by an LLM, e.g. ``"generated:llm:llama3.1:8b"``."""
    return f"{GENERATED}:llm:{model}"


def offline_origin(method: str) -> str:
    """Origin of a question made without an LLM, e.g. ``"generated:offline:inverse_cloze"``."""
    return f"{GENERATED}:offline:{method}"


def is_generated(origin: str | None) -> bool:
    """True for an origin made by :func:`llm_origin` or :func:`offline_origin`."""
    return bool(origin) and origin.split(":", 1)[0] == GENERATED


OFFLINE_WORDS = {"inverse_cloze": "a sentence of the passage as the question", "crop": "random excerpts",
                 "keywords": "the passage's keywords"}  # how offline origins read in reports


def origin_summary(ds: QADataset | None) -> str:
    """Where a split's questions came from, in words: "240 questions generated from the passages (offline:
    a sentence of the passage as the question)", "19 questions labelled by hand", or a mix of those."""
    if ds is None or not len(ds):
        return "no questions"
    kinds: dict[str, int] = {}
    for q in ds.query_ids:
        o = ds.origins.get(q) or ""
        if is_generated(o):
            _, how, *rest = (o.removesuffix(VERIFIED) + "::").split(":", 2)
            what = rest[0].rstrip(":")
            key = (f"generated from the passages (offline: {OFFLINE_WORDS.get(what, what)})" if how == "offline"
                   else f"generated from the passages (LLM {what})" if how == "llm" else "generated from the passages")
            if o.endswith(VERIFIED):
                key += ", checked by hand"
        elif o == "human":
            key = "labelled by hand"
        else:
            key = "as uploaded"
        kinds[key] = kinds.get(key, 0) + 1
    return "; ".join(f"{n:,} question{'s' if n != 1 else ''} {k}" for k, n in kinds.items())


def origin_warning(question_origin: str | None) -> str | None:
    """The warning to show beside scores whose evaluation questions are (partly) generated, else None.

    Args:
        question_origin: What the evaluation questions are, as :func:`core.dataset.question_origin`
            words it: "generated", "mixed (N of M generated)", "human-labelled", "as uploaded".

    Returns:
        One sentence saying why such scores are optimistic and what to do, or None.
    """
    text = (question_origin or "").strip()
    if text == GENERATED:
        share = "The evaluation questions are generated"
    else:
        m = _MIXED.match(text)
        if not m or int(m.group(1)) == 0:
            return None
        share = f"{m.group(1)} of the {m.group(2)} evaluation questions are generated"
    return (f"{share}: these scores are optimistic, because the generator that wrote the training "
            "questions also wrote the questions they are scored on. Label real questions (Questions page, "
            "Label) for a figure you can trust.")


@dataclass
class GeneratedQuestion:
    """One generated question.

    Attributes:
        question: The question (or pseudo-query) text.
        passage_id: Id of the passage it was made from (its positive).
        origin: See :func:`llm_origin` / :func:`offline_origin`.
        positive: The text to train against when it is not the passage itself: inverse
            cloze with the query sentence removed. None: the passage is the positive.
        positive_tag: Short tag naming that variant (e.g. ``"ict3"``: sentence 3 removed);
            the dataset gives such a positive the id ``<passage_id>#<positive_tag>``.
    """

    question: str
    passage_id: str
    origin: str
    positive: str | None = None
    positive_tag: str | None = None

    def positive_id(self) -> str:
        """Corpus id of the text this question trains against."""
        if self.positive is None:
            return self.passage_id
        tag = (
            self.positive_tag or hashlib.sha1(self.positive.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        )
        return f"{self.passage_id}#{tag}"


@dataclass
class GeneratedSet:
    """A dataset built from generated questions, with where each question came from.

    Attributes:
        dataset: Queries ``gen-00001``..., corpus = every passage under its own id (plus
            derived positives ``<id>#<tag>``), sources kept.
        origins: Query id -> origin string.
    """

    dataset: QADataset
    origins: dict[str, str] = field(default_factory=dict)

    def origin_counts(self) -> dict[str, int]:
        """How many questions per origin, e.g. ``{"generated:llm:qwen2.5": 412}``."""
        out: dict[str, int] = {}
        for o in self.origins.values():
            out[o] = out.get(o, 0) + 1
        return out


def is_derived_id(doc_id: str, corpus: dict[str, str]) -> bool:
    """True for a derived positive's id (``<passage id>#<tag>``, see :meth:`GeneratedQuestion.positive_id`)
    whose passage is in ``corpus``: a text made for training, not a passage of the collection."""
    return derived_from(doc_id, corpus) is not None


def collection_passages(train: QADataset, eval: QADataset | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The passages of a collection or dataset: both splits' corpora, derived positives left out.

    Args:
        train: The training split (a collection keeps its passages here).
        eval: The evaluation split, if any.

    Returns:
        (passage id -> text, passage id -> source label), training split first.
    """
    corpus = {**train.corpus, **(eval.corpus if eval is not None else {})}
    passages = {d: t for d, t in corpus.items() if not is_derived_id(d, corpus)}
    sources = {**train.sources, **(eval.sources if eval is not None else {})}
    return passages, {d: s for d, s in sources.items() if d in passages}


def _check_passages(questions: Sequence[GeneratedQuestion], passages: dict[str, str]) -> None:
    missing = sorted({q.passage_id for q in questions if q.passage_id not in passages})
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"{len(missing)} question(s) point to passage ids not in the passages: {shown}.")


def build_dataset(
    questions: Sequence[GeneratedQuestion],
    passages: dict[str, str],
    sources: dict[str, str] | None = None,
    query_prefix: str = "gen-",
) -> GeneratedSet:
    """Generated questions -> a QADataset over all the passages, ids kept.

    Args:
        questions: The (kept) generated questions, in the order their ids are given.
        passages: Passage id -> text: the whole collection (passages without questions
            stay in the corpus, where they act as distractors).
        sources: Passage id -> where it came from ("manual.pdf p.3"); kept as given.
        query_prefix: Query ids are ``<prefix>00001``... in ``questions`` order.

    Returns:
        The dataset and each question's origin.

    Raises:
        ValueError: a question names a passage id that is not in ``passages``.
    """
    _check_passages(questions, passages)
    sources = dict(sources or {})
    corpus = dict(passages)
    width = max(5, len(str(len(questions))))
    queries: dict[str, str] = {}
    relevant: dict[str, list[str]] = {}
    origins: dict[str, str] = {}
    out_sources = {d: s for d, s in sources.items() if d in corpus}
    for i, q in enumerate(questions, start=1):
        qid = f"{query_prefix}{i:0{width}d}"
        did = q.positive_id()
        if q.positive is not None:
            corpus[did] = q.positive
            if q.passage_id in sources:
                out_sources[did] = sources[q.passage_id]
        queries[qid] = q.question
        relevant[qid] = [did]
        origins[qid] = q.origin
    return GeneratedSet(QADataset(queries, corpus, relevant, {}, out_sources), origins)


def pair_table(
    questions: Sequence[GeneratedQuestion], passages: dict[str, str], sources: dict[str, str] | None = None
) -> bytes:
    """The pair file as CSV bytes (UTF-8), one row per question.

    Columns: ``question, passage, passage_id, source, origin``. A cell a spreadsheet would run as a formula
    is guarded with a leading ``'`` (:mod:`core.csvsafe`; the app removes it when it reads the file back). ``passage`` is the text the
    question trains against and ``passage_id`` its corpus id (see
    :meth:`GeneratedQuestion.positive_id`; one id per text: a cut copy that reads like a passage of ``passages``,
    or like an earlier cut copy, takes that one's id); ``source`` is empty when unknown.

    Raises:
        ValueError: a question names a passage id that is not in ``passages``.
    """
    _check_passages(questions, passages)
    sources = sources or {}
    texts = [passages[q.passage_id] if q.positive is None else q.positive for q in questions]
    # One id per text: two cut copies can read the same (overlapping passages, a table cut twice), and a reader
    # gives a text that carries two ids a new one, which loses the cut copy's link to its passage and has it
    # searched as a passage (core.ingest.pairs._doc_ids). A collection passage's own id wins, else the first.
    id_of: dict[str, str] = {}
    for pid, text in passages.items():
        id_of.setdefault(text, pid)
    for q, text in zip(questions, texts):
        id_of.setdefault(text, q.positive_id())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180; a cell holding a bare \r is quoted too
    w.writerow(PAIR_COLUMNS)
    for q, text in zip(questions, texts):
        w.writerow([neutralise(v) for v in (q.question, text, id_of[text], sources.get(q.passage_id, ""), q.origin)])
    return buf.getvalue().encode("utf-8")


def write_pair_file(
    path: str | Path,
    questions: Sequence[GeneratedQuestion],
    passages: dict[str, str],
    sources: dict[str, str] | None = None,
) -> Path:
    """Write :func:`pair_table` to ``path`` (temp file + ``os.replace``: never half-written).

    Returns:
        The path written.
    """
    path = Path(path)
    atomic_write_bytes(path, pair_table(questions, passages, sources))
    return path

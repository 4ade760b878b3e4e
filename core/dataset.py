"""The one dataset type every module shares: queries, corpus and relevant docs.

This is the shape used by sentence-transformers' InformationRetrievalEvaluator and by
the benchmark files in ../shared/data/sec-10k-qa::

    queries        {query_id: question text}
    corpus         {doc_id: passage text}
    relevant_docs  {query_id: [doc_id, ...]}

Optional extras ride along: ``negatives`` ({query_id: [doc_id, ...]}, from a pair
table's negative column), ``sources`` ({doc_id: "file.pdf p.3"}, where a passage
came from; :func:`source_label` writes that label and :func:`source_file` reads the file
back from it), ``answers`` ({query_id: answer text}, when the data gave the answer span)
and ``origins`` ({query_id: "human" | "generated:<how>"}, who wrote each question;
:func:`question_origin` sums them up in words).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

_PAGE_SUFFIX = re.compile(r" p\.\d+$")


def source_label(file: str, page: int | None = None) -> str:
    """Where a passage came from, as ``dataset.sources`` stores it: ``"file.pdf p.3"`` or ``"file.txt"``.

    Args:
        file: The document's file name (display only; never used as a path).
        page: 1-based page number (PDFs), or None.

    Returns:
        The label; :func:`source_file` turns it back into the file name.
    """
    return f"{file} p.{page}" if page is not None else file


def source_file(label: str) -> str:
    """The document a source label belongs to: ``"file.pdf p.3"`` -> ``"file.pdf"`` (other labels unchanged).

    Args:
        label: A ``dataset.sources`` value, as made by :func:`source_label` (or any text).

    Returns:
        The label without a trailing page marker ``" p.N"``.
    """
    return _PAGE_SUFFIX.sub("", label)


class DataError(ValueError):
    """A file or dataset that cannot be used. ``problems`` lists every reason found.

    The message is written for the user: what is wrong, where, and what to do.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


@dataclass
class QADataset:
    """Queries, corpus and relevance judgements (see module docstring)."""

    queries: dict[str, str]
    corpus: dict[str, str]
    relevant_docs: dict[str, list[str]]
    negatives: dict[str, list[str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.relevant_docs = {q: list(d) for q, d in self.relevant_docs.items()}

    @property
    def query_ids(self) -> list[str]:
        """Query ids that have at least one relevant doc, in insertion order."""
        return [q for q in self.queries if self.relevant_docs.get(q)]

    def pairs(self) -> list[tuple[str, str]]:
        """(query text, passage text) for each (query, relevant doc) judgement."""
        return [
            (self.queries[q], self.corpus[d])
            for q in self.query_ids
            for d in self.relevant_docs[q]
            if d in self.corpus
        ]

    def subset(self, query_ids: list[str], corpus_ids: list[str] | None = None) -> QADataset:
        """A dataset restricted to ``query_ids`` (and ``corpus_ids``; default: all corpus)."""
        corpus = self.corpus if corpus_ids is None else {c: self.corpus[c] for c in corpus_ids}
        qs = {q: self.queries[q] for q in query_ids}
        rel = {q: [d for d in self.relevant_docs.get(q, []) if d in corpus] for q in qs}
        neg = {q: [d for d in self.negatives.get(q, []) if d in corpus] for q in qs if q in self.negatives}
        src = {c: s for c, s in self.sources.items() if c in corpus}
        return QADataset(qs, dict(corpus), rel, neg, src, {q: a for q, a in self.answers.items() if q in qs},
                         {q: o for q, o in self.origins.items() if q in qs})

    def to_json(self) -> dict:
        """The {queries, corpus, relevant_docs[, negatives, sources]} mapping."""
        out: dict = {"queries": self.queries, "corpus": self.corpus, "relevant_docs": self.relevant_docs}
        if self.negatives:
            out["negatives"] = self.negatives
        for name in ("sources", "answers", "origins"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_json(cls, obj: dict) -> QADataset:
        return cls(
            queries=dict(obj["queries"]),
            corpus=dict(obj["corpus"]),
            relevant_docs={q: list(v) for q, v in obj["relevant_docs"].items()},
            negatives={q: list(v) for q, v in obj.get("negatives", {}).items()},
            sources=dict(obj.get("sources", {})),
            answers=dict(obj.get("answers", {})),
            origins=dict(obj.get("origins", {})),
        )

    def fingerprint(self) -> str:
        """A short stable hash of the content (ids and texts), for reports and caches."""
        blob = json.dumps(self.to_json(), sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.query_ids)


def _doc_key(text: str) -> str:
    return "p-" + hashlib.sha1(" ".join(text.split()).encode("utf-8", "surrogatepass")).hexdigest()[:12]


def rekey_by_text(ds: QADataset, query_prefix: str = "q-") -> QADataset:
    """Same dataset with content-derived ids: passages ``p-<sha1 of text>``, queries
    ``<query_prefix><n>``. Two files re-keyed this way share ids for identical passages."""
    dmap = {d: _doc_key(t) for d, t in ds.corpus.items()}
    qmap = {q: f"{query_prefix}{i + 1:05d}" for i, q in enumerate(ds.queries)}
    return QADataset(
        queries={qmap[q]: t for q, t in ds.queries.items()},
        corpus={dmap[d]: t for d, t in ds.corpus.items()},
        relevant_docs={qmap[q]: [dmap[d] for d in v if d in dmap] for q, v in ds.relevant_docs.items() if q in qmap},
        negatives={qmap[q]: [dmap[d] for d in v if d in dmap] for q, v in ds.negatives.items() if q in qmap},
        sources={dmap[d]: s for d, s in ds.sources.items() if d in dmap},
        answers={qmap[q]: a for q, a in ds.answers.items() if q in qmap},
        origins={qmap[q]: o for q, o in ds.origins.items() if q in qmap},
    )


def derived_from(doc_id: str, passage_ids) -> str | None:
    """The passage a training text was derived from, or None when ``doc_id`` names a passage.

    A generated question's positive that is not a passage of the collection (inverse cloze with
    the question's sentence cut out, see ``core.generate.pairs``) has the id ``<passage id>#<tag>``;
    it counts as derived only when that passage id is in ``passage_ids``, so ids that merely
    contain a ``#`` ("manual.pdf#chunk3") stay passages.

    Args:
        doc_id: A corpus id.
        passage_ids: The ids of the collection's passages (any container supporting ``in``).

    Returns:
        The passage id it was derived from, or None.
    """
    base, sep, _ = doc_id.rpartition("#")
    return base if sep and base in passage_ids else None


def derived_ids(train: QADataset, eval: QADataset | None = None) -> set[str]:
    """Ids of ``train``'s corpus that are training texts derived from a passage of either file
    (:func:`derived_from`), not passages: they are trained on, never searched."""
    known = set(train.corpus) | (set(eval.corpus) if eval is not None else set())
    return {d for d in train.corpus if derived_from(d, known) is not None}


CUT_COPIES = "cut copies of passages (a generated question's sentence cut out), trained on and never searched"


def count_passages(train: QADataset, eval: QADataset | None = None) -> tuple[int, int]:
    """(passages, cut copies) of a dataset: the passages of both splits, each id once, without the derived
    training texts (:func:`derived_ids`), and how many of those there are. Every page says the first as
    the collection's passage count, and the second, when not 0, as :data:`CUT_COPIES`."""
    derived = derived_ids(train, eval)
    ids = set(train.corpus) | (set(eval.corpus) if eval is not None else set())
    return len(ids - derived), len(derived)


def corpus_words(ds: QADataset) -> str:
    """``ds.corpus`` counted in words that say what it holds: "3,866 passages", or for a training split
    with cut copies "9,104 training texts (3,866 passages + 5,238 cut copies of passages)"."""
    n_cut = len(derived_ids(ds))
    n = len(ds.corpus)
    if not n_cut:
        return f"{n:,} passage{'s' if n != 1 else ''}"
    copies = "cut copy of a passage" if n_cut == 1 else "cut copies of passages"
    return f"{n:,} training texts ({n - n_cut:,} passages + {n_cut:,} {copies})"


def corpus_unit(ds: QADataset) -> str:
    """The unit a progress count of ``ds.corpus`` is in: "passages", or "training texts" when it holds cut
    copies (:func:`derived_ids`), so "516/9,104" never reads as passages of a 3,866-passage collection."""
    return "training texts" if derived_ids(ds) else "passages"


def _renamed_docs(ds: QADataset, rename: dict[str, str]) -> QADataset:
    """``ds`` with the passage ids in ``rename`` (old -> new) renamed everywhere."""
    def r(d: str) -> str:
        return rename.get(d, d)

    return QADataset(
        ds.queries, {r(d): t for d, t in ds.corpus.items()},
        {q: [r(d) for d in v] for q, v in ds.relevant_docs.items()},
        {q: [r(d) for d in v] for q, v in ds.negatives.items()},
        {r(d): x for d, x in ds.sources.items()}, ds.answers, ds.origins,
    )


def join_train_eval(train: QADataset, eval: QADataset) -> tuple[QADataset, QADataset]:
    """Train and eval loaded from two separate files, made consistent.

    Ids are re-keyed by content so a passage present in both files is one doc, and the
    eval corpus becomes every passage of both files (retrieval is judged against all), except
    the training file's derived texts (:func:`derived_ids`: a generated pair file's passages with
    the question's sentence cut out): those stay in the training corpus only, so a pair file
    generated from the evaluation file's passages leaves exactly those passages to search. A derived
    text keeps its link to its passage (id ``<the passage's new id>#<tag>``), which the validation
    hold-out follows (``core.tuning.holdout.split_validation``).

    Returns:
        (train, eval) re-keyed; eval.corpus = both corpora, derived training texts left out.
    """
    derived = derived_ids(train, eval)
    tr = rekey_by_text(train, "train-")
    ev = rekey_by_text(eval, "eval-")
    if derived:  # a cut copy keeps its link to its passage: <new id of the passage>#<tag> (the validation uses it)
        known = {**eval.corpus, **train.corpus}
        rename = {}
        for d in derived:
            base, _, tag = d.rpartition("#")
            rename[_doc_key(train.corpus[d])] = f"{_doc_key(known[base])}#{tag}"
        tr = _renamed_docs(tr, rename)
    passages = {_doc_key(t) for d, t in train.corpus.items() if d not in derived}
    corpus = {**{d: t for d, t in tr.corpus.items() if d in passages}, **ev.corpus}
    sources = {d: s for d, s in {**tr.sources, **ev.sources}.items() if d in corpus}
    return tr, QADataset(ev.queries, corpus, ev.relevant_docs, ev.negatives, sources, ev.answers, ev.origins)


def merge_datasets(parts: list[QADataset]) -> QADataset:
    """Several uploaded files of one role as one dataset (ids re-keyed by content, so a passage
    present in two files is one passage)."""
    if len(parts) == 1:
        return parts[0]
    out = QADataset({}, {}, {})
    for i, ds in enumerate(parts):
        r = rekey_by_text(ds, f"f{i + 1}-q")
        out.queries.update(r.queries)
        out.corpus.update(r.corpus)
        out.relevant_docs.update(r.relevant_docs)
        out.negatives.update(r.negatives)
        out.sources.update(r.sources)
        out.answers.update(r.answers)
        out.origins.update(r.origins)
    return out


def merge_splits(first: QADataset, second: QADataset) -> QADataset:
    """One split holding both splits' questions (ids unchanged: they must not clash), every passage of both
    (ids unchanged: an id in both must be the same passage) and every extra (negatives, sources, answers,
    origins)."""
    if set(first.queries) & set(second.queries):
        raise ValueError("merge_splits: the two splits share question ids")
    return QADataset({**first.queries, **second.queries}, {**second.corpus, **first.corpus},
                     {**first.relevant_docs, **second.relevant_docs}, {**first.negatives, **second.negatives},
                     {**second.sources, **first.sources}, {**first.answers, **second.answers},
                     {**first.origins, **second.origins})


def generated_ids(ds: QADataset) -> list[str]:
    """The questions of ``ds`` a generator wrote (origin "generated:..."), in ``ds``'s order."""
    return [q for q in ds.query_ids if ds.origins.get(q, "").startswith("generated")]


def question_origin(ds: QADataset) -> str:
    """What a dataset's questions are, in words: "human-labelled", "generated", "mixed (N of M
    generated)", "N human-labelled, K as uploaded", or "as uploaded" when no origin was recorded."""
    kinds = [ds.origins.get(q, "") for q in ds.query_ids]
    generated = sum(o.startswith("generated") for o in kinds)
    human = sum(o == "human" for o in kinds)
    if not kinds or generated + human == 0:
        return "as uploaded"
    if generated == len(kinds):
        return "generated"
    if human == len(kinds):
        return "human-labelled"
    if generated:
        return f"mixed ({generated} of {len(kinds)} generated)"
    return f"{human} human-labelled, {len(kinds) - human} as uploaded"

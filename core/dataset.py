"""The one dataset type every module shares: queries, corpus and relevant docs.

This is the shape used by sentence-transformers' InformationRetrievalEvaluator and by
the benchmark files in ../shared/data/sec-10k-qa::

    queries        {query_id: question text}
    corpus         {doc_id: passage text}
    relevant_docs  {query_id: [doc_id, ...]}

Optional extras ride along: ``negatives`` ({query_id: [doc_id, ...]}, from a pair
table's negative column) and ``sources`` ({doc_id: "file.pdf p.3"}, where a passage
came from).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field


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
        return QADataset(qs, dict(corpus), rel, neg, src)

    def to_json(self) -> dict:
        """The {queries, corpus, relevant_docs[, negatives, sources]} mapping."""
        out: dict = {"queries": self.queries, "corpus": self.corpus, "relevant_docs": self.relevant_docs}
        if self.negatives:
            out["negatives"] = self.negatives
        if self.sources:
            out["sources"] = self.sources
        return out

    @classmethod
    def from_json(cls, obj: dict) -> QADataset:
        return cls(
            queries=dict(obj["queries"]),
            corpus=dict(obj["corpus"]),
            relevant_docs={q: list(v) for q, v in obj["relevant_docs"].items()},
            negatives={q: list(v) for q, v in obj.get("negatives", {}).items()},
            sources=dict(obj.get("sources", {})),
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
    )


def join_train_eval(train: QADataset, eval: QADataset) -> tuple[QADataset, QADataset]:
    """Train and eval loaded from two separate files, made consistent.

    Ids are re-keyed by content so a passage present in both files is one doc, and the
    eval corpus becomes every passage of both files (retrieval is judged against all).

    Returns:
        (train, eval) re-keyed; eval.corpus = union of both corpora.
    """
    tr = rekey_by_text(train, "train-")
    ev = rekey_by_text(eval, "eval-")
    corpus = {**tr.corpus, **ev.corpus}
    sources = {**tr.sources, **ev.sources}
    return tr, QADataset(ev.queries, corpus, ev.relevant_docs, ev.negatives, sources)


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
    return out

"""Tests for core.retrieval.terms: the one tokenisation policy, and that BM25 search and answer linking share it."""

from __future__ import annotations

import core.ingest.linking as linking
import core.retrieval.index as index
import core.retrieval.terms as T
from core.ingest.chunking import chunk_segments
from core.retrieval.index import BM25Index


def test_policy_nfkc_casefold_words_stopwords_no_stemming():
    assert T.terms("What did the Company’s ＲＥＶＥＮＵＥ do in FY2023?") == ["company", "s", "revenue", "fy2023"]
    assert T.terms("Pumps pumping pumped") == ["pumps", "pumping", "pumped"]  # no stemming
    assert T.terms("STRASSE Straße") == ["strasse", "strasse"]  # case-folded, not just lower-cased
    assert T.terms("a 5 % rise, 3.2x") == ["5", "rise", "3", "2x"]  # one-character words kept, "a" a stop word
    assert T.terms("the of and") == [] and T.terms("") == []
    assert T.terms_batch(["Pump noise", "the"]) == [["pump", "noise"], []]


def test_bm25_and_linking_use_the_same_function():
    assert index.terms_batch is T.terms_batch
    assert linking.terms is T.terms
    texts = ["The PUMP’s seal leaks oil.", "Valves stick when cold.", "the of and"]
    bm25 = BM25Index(["a", "b", "c"], texts)
    assert set(bm25.retriever.vocab_dict) - {""} == {t for text in texts for t in T.terms(text)}
    chunks = chunk_segments([(None, "\n\n".join(texts[:2]))], "notes.txt", max_tokens=8)
    assert isinstance(linking._Bm25(chunks).index, BM25Index)  # linking ranks with search's own index


def test_changing_the_policy_changes_search_and_linking_together(monkeypatch):
    chunks = chunk_segments([(None, "The pump seal leaks oil.\n\nThe valve sticks when cold.")], "n.txt", max_tokens=8)
    texts = [c.text for c in chunks]
    queries, answers = {"q": "Which part?"}, {"q": "seal of the pump"}  # no exact or normalised match: BM25

    def run():
        hits = BM25Index([c.id for c in chunks], texts).search(["pump seal"])[0][0]
        (link,) = linking.link_answers(queries, answers, chunks)[1]
        return hits, link

    hits, link = run()
    assert hits == [chunks[0].id] and (link.method, link.chunk_id) == ("bm25", chunks[0].id)
    monkeypatch.setattr(T, "STOPWORDS", T.STOPWORDS | {"pump", "seal"})
    hits, link = run()
    assert hits == [] and link.method == "none"  # both stopped counting the same words

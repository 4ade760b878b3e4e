"""The hybrid snippets of an export bundle: the lab's recommended dense + BM25 retriever rebuilt with the
usual stacks' own hybrid classes (``hybrid_snippets(config)``).

    llamaindex_hybrid.py   LlamaIndex: QueryFusionRetriever over a VectorStoreIndex and a BM25Retriever
    langchain_hybrid.py    LangChain: EnsembleRetriever over an InMemoryVectorStore and a BM25 retriever
    qdrant_hybrid.py       Qdrant (local, in memory): a named dense vector and a sparse BM25 vector per
                           passage, one query_points call with two Prefetch and reciprocal rank fusion

Each reads the bundle's ``pipeline.json`` (the recommended pipeline: dense model, adapter, fusion) and
``pipeline/`` (passage ids and texts, the dense stage's full-size vectors, the bm25s index), asks the
question the way the lab did (the query model, the adapter when there is one, the BM25 terms imported
from the bundle's ``search.py``) and prints ``rank<TAB>score<TAB>id<TAB>text`` like the other snippets.
Their fusion is the library's, as close to the lab's as the library allows (each docstring says how
close); ``search.py`` is the exact one. A reranker stage is left to ``search.py`` (the snippets print a
note on stderr). They ship in a bundle whose recommended pipeline has a dense and a BM25 stage
(``is_hybrid``); ``tests/insight/test_snippets_hybrid.py`` runs each against an exported folder.
"""

from __future__ import annotations

from core.insight.snippets import TOP_K

HYBRID_SNIPPETS = ("llamaindex_hybrid.py", "langchain_hybrid.py", "qdrant_hybrid.py")


def is_hybrid(config: dict | None) -> bool:
    """Whether a bundle's ``pipeline.json`` (``config``) has a dense and a BM25 first stage."""
    return bool(config and config.get("dense") and config.get("bm25"))


_HEAD = '''"""@@TITLE@@

@@FUSION@@

Run it from anywhere:  python snippets/@@FILE@@ "your question"
(without a question it asks the bundle's example question). It prints the top @@K@@ passages as rank,
fused score, id and text, one per line, tab-separated. search.py (the bundle's root) ranks exactly as
the lab did; this file shows the same retriever in @@STACK@@.
Needs: pip install @@NEEDS@@
"""

import json
import sys
from pathlib import Path

import numpy as np

BUNDLE = Path(__file__).resolve().parent.parent  # the exported folder
info = json.loads((BUNDLE / "export.json").read_text(encoding="utf-8"))
config = json.loads((BUNDLE / "pipeline.json").read_text(encoding="utf-8"))  # the lab's recommended retriever
if not (config.get("dense") and config.get("bm25")):
    sys.exit(f"This bundle's retriever ({config['name']}) is not a dense + BM25 hybrid: use search.py.")
question = " ".join(sys.argv[1:]) or info["example_query"]
K = @@K@@
ids = json.loads((BUNDLE / "pipeline" / "ids.json").read_text(encoding="utf-8"))  # passage ids, in row order
texts = json.loads((BUNDLE / "pipeline" / "texts.json").read_text(encoding="utf-8"))
dense, fusion = config["dense"], config["fusion"]  # fusion method "rrf" or "weighted" (alpha: dense's weight)
DEPTH = min(int(fusion["k"]), len(ids))  # each first stage hands the fusion this many passages, as in the lab
vectors = np.load(BUNDLE / dense["vectors"])  # (rows, dimension) float32, unit length, full size
owner = np.load(BUNDLE / dense["owner"]) if dense.get("owner") else None  # windows: each row's passage row
PER_PASSAGE = 1 if owner is None else int(np.bincount(owner).max())  # most windows of one passage
if config.get("rerank"):
    print("note: the lab's pipeline then reranks the fused list with a cross-encoder; this snippet stops at "
          "the fusion (search.py adds the rerank)", file=sys.stderr)

sys.path.insert(0, str(BUNDLE))  # search.py's terms: the lab's BM25 words (NFKC, casefold, \\w+, no stopwords)
import bm25s  # noqa: E402
from search import terms  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

bm25 = bm25s.BM25.load(str(BUNDLE / config["bm25"]["index"]))  # the lab's own BM25 index (bm25s format)
model = SentenceTransformer(str(BUNDLE / dense["model"]) if dense["model"] else dense["hub_id"])
model.max_seq_length = int(dense["max_seq_length"])
adapter = dict(np.load(BUNDLE / dense["adapter"])) if dense.get("adapter") else None  # weight, bias


def embed_query(text):
    """The question's vector, made as the lab made it (through the adapter when the pipeline has one)."""
    q = model.encode_query([text], normalize_embeddings=True)
    if adapter is not None:
        q = q @ adapter["weight"].T + adapter["bias"]
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return q[0].astype(np.float32)


def bm25_rows(text, k=DEPTH):
    """[(passage row, BM25 score)] for the passages sharing a term with ``text``, best first (ties by id):
    a passage without a shared term was not found by BM25, so it gets no rank to fuse."""
    known = [t for t in terms(text) if t in bm25.vocab_dict]
    if not known:
        return []
    scores = np.asarray(bm25.get_scores(known), dtype=np.float32)
    rows = sorted(np.flatnonzero(scores > 0).tolist(), key=lambda r: (-float(scores[r]), ids[r]))[:k]
    return [(r, float(scores[r])) for r in rows]
'''

_FUSION_NOTES = {
    "llamaindex_hybrid.py": (
        "Fusion: QueryFusionRetriever with num_queries=1 (no LLM writes extra questions). The lab's RRF is "
        "mode \"reciprocal_rerank\": LlamaIndex counts ranks from 0 with k=60 (the lab from 1 with k=60, so "
        "its constant is in effect 59) and breaks ties by list order, not by passage id, so a near-tie can "
        "swap. The lab's weighted fusion is mode \"relative_score\" with retriever_weights [alpha, 1 - "
        "alpha]: the same min-max scaling of each list and the same weights (ties aside, the same "
        "ranking). The BM25 side is a BM25Retriever (llama-index-retrievers-bm25) on the bundle's own bm25s "
        "index whose _retrieve asks it with the lab's terms: the stock one tokenises with bm25s' tokenizer "
        "(stemmed words of 2+ letters), which would not match this index's words."),
    "langchain_hybrid.py": (
        "Fusion: EnsembleRetriever is weighted reciprocal rank fusion, score = sum w / (rank + c), ranks "
        "from 1. The lab's RRF is weights [1, 1] with c=60: the same formula, so the same ranking except "
        "that ties go to list order instead of passage id. The lab's weighted fusion (min-max scaled "
        "scores, alpha * dense + (1 - alpha) * BM25) has no EnsembleRetriever equivalent: this file uses "
        "weights [alpha, 1 - alpha] in the rank fusion, which ranks close to it, not the same. The BM25 "
        "side is a small BaseRetriever on the bundle's own bm25s index with the lab's terms (LangChain's "
        "BM25Retriever lives in langchain-community and builds its own index with other words)."),
    "qdrant_hybrid.py": (
        "Fusion: each passage has a named dense vector (max-sim over its windows for a windowed bundle) "
        "and a sparse \"bm25\" vector holding its terms' BM25 weights from the bundle's bm25s index; a "
        "question's sparse vector holds its term counts, so the sparse dot product is the lab's BM25 score. "
        "The lab's RRF is one query_points call with two Prefetch and RrfQuery(k=61): Qdrant counts ranks "
        "from 0, so k=61 is the lab's 1 / (60 + rank). Passages with equal scores come in Qdrant's order, "
        "not by passage id as in the lab, so where BM25 scores tie (short questions, templated passages) "
        "their ranks, and so the fusion, can differ. "
        "(FusionQuery(fusion=Fusion.RRF) is the same with Qdrant's default k=2, for servers before "
        "parametrised RRF.) The lab's weighted fusion has no server-side equivalent (DBSF scales by mean "
        "and spread, not min-max), so the two prefetch lists are fetched and fused here exactly as the lab "
        "does."),
}

_BODIES = {
    "llamaindex_hybrid.py": ("Search the bundle's passages with the lab's hybrid in LlamaIndex.", "LlamaIndex",
                             "sentence-transformers bm25s llama-index-core llama-index-retrievers-bm25", '''

from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.retrievers import BaseRetriever, QueryFusionRetriever  # noqa: E402
from llama_index.core.schema import NodeWithScore, TextNode  # noqa: E402
from llama_index.retrievers.bm25 import BM25Retriever  # noqa: E402


class BundleEmbedding(BaseEmbedding):
    """The bundle's query model; passages come with their stored vectors (pipeline/dense.npy)."""

    def _get_query_embedding(self, query):
        return embed_query(query).tolist()

    async def _aget_query_embedding(self, query):
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text):
        raise RuntimeError("new passages: encode them with the query model's encode_document, as the "
                                  "lab did, and add them with their vectors")


class BundleBM25Retriever(BM25Retriever):
    """LlamaIndex's BM25Retriever on the bundle's index; questions are split into the lab's terms."""

    def _retrieve(self, query_bundle):
        return [NodeWithScore(node=passages[r], score=s) for r, s in bm25_rows(query_bundle.query_str)]


class BestWindow(BaseRetriever):
    """A windowed bundle: a passage ranks by its best window, as in the lab (max-pooling)."""

    def __init__(self, windows):
        super().__init__()
        self.windows = windows

    def _retrieve(self, query_bundle):
        seen = {}
        for hit in self.windows.retrieve(query_bundle):
            seen.setdefault(hit.node.metadata["row"], hit.score)  # the first window of a passage is its best
        return [NodeWithScore(node=passages[r], score=s) for r, s in list(seen.items())[:DEPTH]]


passages = [TextNode(id_=ids[r], text=texts[r], metadata={"id": ids[r]}) for r in range(len(ids))]
if owner is None:  # one stored vector per passage
    nodes = [TextNode(id_=ids[r], text=texts[r], metadata={"id": ids[r]}, embedding=vectors[r].tolist())
             for r in range(len(ids))]
else:  # one per window, each knowing its passage's row
    nodes = [TextNode(id_=f"{ids[p]}#{w}", text=texts[p], metadata={"id": ids[p], "row": int(p)},
                      embedding=vectors[w].tolist()) for w, p in enumerate(owner.tolist())]
index = VectorStoreIndex(nodes, embed_model=BundleEmbedding())  # stored vectors: nothing is re-encoded
vector_retriever = index.as_retriever(similarity_top_k=DEPTH * PER_PASSAGE)
if owner is not None:
    vector_retriever = BestWindow(vector_retriever)
bm25_retriever = BundleBM25Retriever(existing_bm25=bm25, similarity_top_k=DEPTH, skip_stemming=True)
if fusion["method"] == "rrf":
    mode, weights = "reciprocal_rerank", None
else:
    mode, weights = "relative_score", [float(fusion["alpha"]), 1.0 - float(fusion["alpha"])]
retriever = QueryFusionRetriever([vector_retriever, bm25_retriever], mode=mode, retriever_weights=weights,
                                 similarity_top_k=K, num_queries=1, use_async=False, llm=MockLLM())
for rank, hit in enumerate(retriever.retrieve(question), start=1):
    print(f"{rank}\\t{hit.score:.4f}\\t{hit.node.metadata['id']}\\t{hit.node.get_content()[:100]}")
'''),
    "langchain_hybrid.py": ("Search the bundle's passages with the lab's hybrid in LangChain.", "LangChain",
                            "sentence-transformers bm25s langchain-core langchain-classic", '''

from langchain_classic.retrievers import EnsembleRetriever  # noqa: E402
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402


class BundleEmbeddings(Embeddings):
    """The bundle's query model for questions; the passages are added once with their stored vectors
    (pipeline/dense.npy, in row order), so nothing is re-encoded."""

    def embed_documents(self, texts):
        if len(texts) != len(vectors):
            raise ValueError("add the bundle's rows once, in order; encode new passages with the query "
                             "model's encode_document, as the lab did")
        return vectors.tolist()

    def embed_query(self, text):
        return embed_query(text).tolist()


class BundleBM25(BaseRetriever):
    """BM25 on the bundle's own bm25s index with the lab's terms."""

    def _get_relevant_documents(self, query, *, run_manager=None):
        return [Document(page_content=texts[r], id=ids[r], metadata={"id": ids[r]})
                for r, _ in bm25_rows(query)]


class BestWindow(BaseRetriever):
    """The vector store's top passages; a windowed bundle ranks a passage by its best window, as the lab."""

    store: InMemoryVectorStore

    def _get_relevant_documents(self, query, *, run_manager=None):
        best = {}
        for doc in self.store.similarity_search(query, k=DEPTH * PER_PASSAGE):
            best.setdefault(doc.metadata["id"], doc)  # the first window of a passage is its best
        return list(best.values())[:DEPTH]


rows = range(len(ids)) if owner is None else owner.tolist()  # the passage of each stored vector
store = InMemoryVectorStore(BundleEmbeddings())
store.add_documents([Document(page_content=texts[p], id=f"{ids[p]}#{n}", metadata={"id": ids[p]})
                     for n, p in enumerate(rows)])
if fusion["method"] == "rrf":
    weights = [1.0, 1.0]  # the lab's RRF: 1 / (60 + rank) from each list
else:  # the lab's min-max weighted fusion has no EnsembleRetriever form: its weights in the rank fusion
    weights = [float(fusion["alpha"]), 1.0 - float(fusion["alpha"])]
ensemble = EnsembleRetriever(retrievers=[BestWindow(store=store), BundleBM25()], weights=weights, c=60,
                             id_key="id")

# ensemble.invoke(question) returns these documents; the two lists are kept here to print the fused score
lists = [r.invoke(question) for r in ensemble.retrievers]
score = {}
for docs, w in zip(lists, weights):
    for rank, doc in enumerate(docs, start=1):
        score[doc.metadata["id"]] = score.get(doc.metadata["id"], 0.0) + w / (rank + ensemble.c)
for rank, doc in enumerate(ensemble.weighted_reciprocal_rank(lists)[:K], start=1):
    print(f"{rank}\\t{score[doc.metadata['id']]:.4f}\\t{doc.metadata['id']}\\t{doc.page_content[:100]}")
'''),
    "qdrant_hybrid.py": ("Search the bundle's passages with the lab's hybrid in Qdrant (dense + sparse vectors).",
                         "Qdrant", "sentence-transformers bm25s qdrant-client", '''

from collections import Counter  # noqa: E402

from qdrant_client import QdrantClient, models  # noqa: E402

# bm25s keeps BM25 as a term x passage matrix (CSC: column t lists the passages holding term t and the
# term's BM25 weight in each); a passage's sparse vector is its row: term ids and weights.
data, rows_of, indptr = (np.asarray(bm25.scores[key]) for key in ("data", "indices", "indptr"))
term_of = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
order = np.argsort(rows_of, kind="stable")
cuts = np.searchsorted(rows_of[order], np.arange(len(ids) + 1))


def sparse_passage(row):
    cell = order[cuts[row]:cuts[row + 1]]
    return models.SparseVector(indices=term_of[cell].tolist(), values=data[cell].astype(float).tolist())


def sparse_question(text):  # term counts: the dot product with a passage's weights is its BM25 score
    counts = Counter(bm25.vocab_dict[t] for t in terms(text) if t in bm25.vocab_dict)
    return models.SparseVector(indices=list(counts), values=[float(c) for c in counts.values()])


windows = owner is not None  # a windowed bundle: every window of a passage, scored by the best (max-sim)
client = QdrantClient(":memory:")  # local, in-process; a server: QdrantClient(url="http://localhost:6333")
client.create_collection(
    "passages",
    vectors_config={"dense": models.VectorParams(
        size=vectors.shape[1], distance=models.Distance.COSINE,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
        if windows else None)},
    sparse_vectors_config={"bm25": models.SparseVectorParams()},
)
if windows:
    by_passage = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[by_passage], np.arange(len(ids) + 1))


def dense_passage(row):  # its vector, or the vectors of its windows
    return vectors[by_passage[starts[row]:starts[row + 1]]].tolist() if windows else vectors[row].tolist()


client.upload_points("passages", [
    models.PointStruct(id=r, payload={"id": ids[r], "text": texts[r]},
                       vector={"dense": dense_passage(r), "bm25": sparse_passage(r)})
    for r in range(len(ids))
])

q = embed_query(question).tolist()
sparse = sparse_question(question)
lists = [("dense", [q] if windows else q)]
if sparse.indices:  # a question without a known term: BM25 finds nothing
    lists.append(("bm25", sparse))
if fusion["method"] == "rrf":
    prefetch = [models.Prefetch(query=query, using=using, limit=DEPTH) for using, query in lists]
    hits = client.query_points("passages", prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=61)),
                               limit=K).points
    top = [(hit.score, hit.payload["id"], hit.payload["text"]) for hit in hits]
else:  # the lab's weighted fusion: min-max scale each list, alpha * dense + (1 - alpha) * BM25, ties by id
    alpha, fused, payload = float(fusion["alpha"]), {}, {}
    for (using, query), w in zip(lists, (alpha, 1.0 - alpha)):
        hits = client.query_points("passages", query=query, using=using, limit=DEPTH).points
        if not hits:
            continue
        lo, hi = min(h.score for h in hits), max(h.score for h in hits)
        for h in hits:
            fused[h.id] = fused.get(h.id, 0.0) + w * ((h.score - lo) / (hi - lo) if hi > lo else 1.0)
            payload[h.id] = h.payload
    best = sorted(fused, key=lambda i: (-fused[i], payload[i]["id"]))[:K]
    top = [(fused[i], payload[i]["id"], payload[i]["text"]) for i in best]
for rank, (score, pid, text) in enumerate(top, start=1):
    print(f"{rank}\\t{score:.4f}\\t{pid}\\t{text[:100]}")
'''),
}


def hybrid_snippets(config: dict | None) -> dict[str, str]:
    """The hybrid snippet files for a bundle whose ``pipeline.json`` is ``config`` ({file name: Python
    source}); empty when its pipeline is not a dense + BM25 hybrid (``is_hybrid``)."""
    if not is_hybrid(config):
        return {}
    out = {}
    for name, (title, stack, needs, body) in _BODIES.items():
        head = (_HEAD.replace("@@TITLE@@", title).replace("@@FUSION@@", _wrap(_FUSION_NOTES[name]))
                .replace("@@FILE@@", name).replace("@@STACK@@", stack).replace("@@NEEDS@@", needs)
                .replace("@@K@@", str(TOP_K)))
        out[name] = head + body
    return out


def _wrap(text: str, width: int = 104) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def hybrid_readme(config: dict | None) -> str:
    """The bundle README's lines on the snippets: which searches what (the hybrid ones only in a hybrid's
    bundle)."""
    lines = ["## The snippets", "",
             "- `snippets/*_search.py`: the tuned model alone (dense search over `embeddings.parquet`), in each "
             "stack listed above."]
    if is_hybrid(config):
        lines += [
            "- `snippets/llamaindex_hybrid.py`, `snippets/langchain_hybrid.py`, `snippets/qdrant_hybrid.py`: the "
            "retriever above (dense + BM25, fused) in LlamaIndex (QueryFusionRetriever over a vector index and "
            "BM25Retriever), LangChain (EnsembleRetriever) and Qdrant (dense + sparse vectors, one fusion query), "
            "from `pipeline.json` and `pipeline/`. Each uses its library's fusion, as close to the lab's as the "
            "library allows (its docstring says how close); `search.py` is the exact one"
            + (" and the only one that applies the reranker" if config and config.get("rerank") else "") + "."]
    else:
        lines += ["- The retriever above is not a dense + BM25 hybrid, so the bundle has no hybrid snippets: "
                  "`search.py` runs it."]
    return "\n".join(lines)

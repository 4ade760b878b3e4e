"""The snippets of an export bundle: short scripts, one per retrieval stack, that search the bundle's
``embeddings.parquet`` with a question encoded the way the run encoded (``snippets(method)``: the method's ``snippet_encoder``,
``core.tuning.methods``).

Each reads the bundle's ``export.json`` (so it follows the bundle it sits in) and prints its top hits
as ``rank<TAB>score<TAB>id<TAB>text``; ``tests/insight/test_snippets.py`` runs every one against an exported
folder.
"""

from __future__ import annotations

from core.tuning.methods import method_of

TOP_K = 5
SNIPPETS = ("sentence_transformers_search.py", "faiss_search.py", "qdrant_search.py", "llamaindex_search.py",
            "langchain_search.py", "onnx_search.py")


_HEAD = '''"""{title}

Run it from anywhere:  python snippets/{file} "your question"
(without a question it asks the bundle's example question). It prints the top {k} passages as
rank, score, id and text, one per line, tab-separated.{needs}
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

BUNDLE = Path(__file__).resolve().parent.parent  # the exported folder
info = json.loads((BUNDLE / "export.json").read_text(encoding="utf-8"))
question = " ".join(sys.argv[1:]) or info["example_query"]
table = pd.read_parquet(BUNDLE / "embeddings.parquet")  # id, text, source, vector
vectors = np.stack(table["vector"].to_numpy()).astype(np.float32)  # (rows, dimension), unit length


def base_model():
    """The base model: a base_model/ folder in the bundle, else the local folder the run used (when it exists
    on this machine), else its hub id (downloaded once; needs the internet)."""
    for folder in (BUNDLE / "base_model", BUNDLE / "pipeline" / "query_model"):  # query_model: search.py's copy
        if folder.is_dir():
            return str(folder)
    local = info.get("base_model_path")
    if local and Path(local).is_dir():
        return local
    return info["base_model"]
'''

_BODIES = {
    "sentence_transformers_search.py": ("Search the bundle's passages with sentence-transformers and numpy (no vector "
                                        "database).", "sentence-transformers", '''
scores = vectors @ embed_query(question)  # cosine: every vector has unit length
for rank, row in enumerate(np.argsort(-scores)[:{k}], start=1):
    print(f"{{rank}}\\t{{scores[row]:.4f}}\\t{{table['id'][row]}}\\t{{table['text'][row][:100]}}")
'''),
    "faiss_search.py": ("Search the bundle's passages with FAISS (exact inner product = cosine on unit vectors).",
                        "sentence-transformers faiss-cpu", '''
import faiss  # noqa: E402

index = faiss.IndexFlatIP(vectors.shape[1])  # exact; for millions of rows see faiss.IndexHNSWFlat
index.add(vectors)
scores, rows = index.search(embed_query(question)[None, :].astype(np.float32), {k})
for rank, (score, row) in enumerate(zip(scores[0], rows[0]), start=1):
    print(f"{{rank}}\\t{{score:.4f}}\\t{{table['id'][row]}}\\t{{table['text'][row][:100]}}")
'''),
    "qdrant_search.py": ("Load the bundle's passages into Qdrant and search them.", "sentence-transformers qdrant-client",
                         '''
from qdrant_client import QdrantClient, models  # noqa: E402

client = QdrantClient(":memory:")  # a local, in-process Qdrant; a server: QdrantClient(url="http://localhost:6333")
client.create_collection("passages", vectors_config=models.VectorParams(size=vectors.shape[1],
                                                                          distance=models.Distance.COSINE))
client.upload_points("passages", [
    models.PointStruct(id=i, vector=vectors[i].tolist(),
                       payload={{"id": table["id"][i], "text": table["text"][i], "source": table["source"][i]}})
    for i in range(len(table))
])
hits = client.query_points("passages", query=embed_query(question).tolist(), limit={k}).points
for rank, hit in enumerate(hits, start=1):
    print(f"{{rank}}\\t{{hit.score:.4f}}\\t{{hit.payload['id']}}\\t{{hit.payload['text'][:100]}}")
'''),
    "llamaindex_search.py": ("Search the bundle's passages with LlamaIndex (a VectorStoreIndex over the stored vectors).",
                             "sentence-transformers llama-index-core", '''
from llama_index.core import VectorStoreIndex  # noqa: E402
from llama_index.core.embeddings import BaseEmbedding  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402


class BundleEmbedding(BaseEmbedding):
    """This bundle's encoder as a LlamaIndex embedding model. For a full fine-tune,
    llama_index.embeddings.huggingface.HuggingFaceEmbedding(model_name="model", truncate_dim=...)
    does the same; this class also covers adapter and NUDGE bundles."""

    def _get_query_embedding(self, query):
        return embed_query(query).tolist()

    async def _aget_query_embedding(self, query):
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text):
        return embed_passages([text])[0].tolist()


nodes = [TextNode(id_=str(table["id"][i]), text=table["text"][i], embedding=vectors[i].tolist(),
                  metadata={{"source": table["source"][i]}}) for i in range(len(table))]
index = VectorStoreIndex(nodes, embed_model=BundleEmbedding())  # stored vectors: nothing is re-encoded
for rank, hit in enumerate(index.as_retriever(similarity_top_k={k}).retrieve(question), start=1):
    print(f"{{rank}}\\t{{hit.score:.4f}}\\t{{hit.node.node_id}}\\t{{hit.node.get_content()[:100]}}")
'''),
    "langchain_search.py": ("Search the bundle's passages with LangChain (an InMemoryVectorStore over the stored vectors).",
                            "sentence-transformers langchain-core", '''
from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import Embeddings  # noqa: E402
from langchain_core.vectorstores import InMemoryVectorStore  # noqa: E402

stored = dict(zip(table["text"], vectors))


class BundleEmbeddings(Embeddings):
    """This bundle's encoder for LangChain; passages already in embeddings.parquet keep their stored vector
    (no re-encoding). For a full fine-tune, langchain_huggingface.HuggingFaceEmbeddings(model_name="model")
    encodes the same way (without the truncation)."""

    def embed_documents(self, texts):
        missing = [t for t in texts if t not in stored]
        stored.update(zip(missing, embed_passages(missing)) if missing else [])
        return [stored[t].tolist() for t in texts]

    def embed_query(self, text):
        return embed_query(text).tolist()


store = InMemoryVectorStore(BundleEmbeddings())
store.add_documents([Document(page_content=table["text"][i], id=str(table["id"][i]),
                              metadata={{"id": table["id"][i], "source": table["source"][i]}})
                     for i in range(len(table))])
for rank, (doc, score) in enumerate(store.similarity_search_with_score(question, k={k}), start=1):
    print(f"{{rank}}\\t{{score:.4f}}\\t{{doc.metadata['id']}}\\t{{doc.page_content[:100]}}")
'''),
}

_ONNX = '''
import onnxruntime as ort  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ONNX = BUNDLE / "onnx"
cfg = json.loads((ONNX / "onnx.json").read_text(encoding="utf-8"))
int8 = "--int8" in sys.argv
question = " ".join(a for a in sys.argv[1:] if a != "--int8") or info["example_query"]
session = ort.InferenceSession(str(ONNX / (cfg["int8"] if int8 else cfg["fp32"])), providers=["CPUExecutionProvider"])
tokenizer = Tokenizer.from_file(str(ONNX / "tokenizer.json"))
tokenizer.enable_truncation(max_length=cfg["max_seq_length"])
pad = json.loads((ONNX / "tokenizer_config.json").read_text(encoding="utf-8")).get("pad_token") or "[PAD]"
pad = pad["content"] if isinstance(pad, dict) else pad
tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)


def _encode(texts, prompt=""):
    batch = tokenizer.encode_batch([prompt + t for t in texts])
    feeds = {{"input_ids": np.array([e.ids for e in batch], dtype=np.int64),
             "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
             "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64)}}
    tokens = session.run(None, {{k: feeds[k] for k in cfg["inputs"]}})[0]  # (batch, sequence, hidden)
    mask = feeds["attention_mask"][..., None].astype(np.float32)
    parts = []
    for mode in cfg["modes"]:
        if mode == "mean":
            parts.append((tokens * mask).sum(1) / np.maximum(mask.sum(1), 1e-9))
        elif mode == "cls":
            parts.append(tokens[:, 0])
        elif mode == "max":
            parts.append(np.where(mask > 0, tokens, -np.inf).max(1))
        else:
            raise SystemExit(f"pooling {{mode!r}}: see sentence-transformers' Pooling module")
    v = np.concatenate(parts, axis=1)
    if cfg["normalize"]:
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return v


def _cut(v):  # the first `dimension` coordinates, unit length again
    v = v[..., : info["dimension"]]
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def embed_query(text):
    q = _encode([text], cfg["prompts"].get("query", ""))
    if info.get("adapter"):  # an adapter bundle: questions pass through the adapter
        z = np.load(BUNDLE / info["adapter"], allow_pickle=False)
        q = q @ z["weight"].T + z["bias"]
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
    return _cut(q)[0]


scores = vectors @ embed_query(question)
for rank, row in enumerate(np.argsort(-scores)[:{k}], start=1):
    print(f"{{rank}}\\t{{scores[row]:.4f}}\\t{{table['id'][row]}}\\t{{table['text'][row][:100]}}")
'''


def snippets(method: str, with_onnx: bool = True) -> dict[str, str]:
    """The snippet files of a bundle of ``method`` ({file name: Python source})."""
    out = {}
    for name, (title, needs, body) in _BODIES.items():
        head = _HEAD.format(title=title, file=name, k=TOP_K, needs=f"\nNeeds: pip install {needs} pandas pyarrow")
        out[name] = head + method_of(method).snippet_encoder + body.format(k=TOP_K)
    if with_onnx:
        title = ("Search the bundle's passages with the ONNX file and no torch: ONNX Runtime, the tokenizers "
                 "package and numpy (add --int8 for the int8 file).")
        out["onnx_search.py"] = (_HEAD.format(title=title, file="onnx_search.py", k=TOP_K,
                                              needs="\nNeeds: pip install onnxruntime tokenizers pandas pyarrow")
                                 + _ONNX.format(k=TOP_K))
    return out

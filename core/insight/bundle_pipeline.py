"""The retriever a run recommends, shipped whole: the files behind ``pipeline/`` and ``search.py``.

A run's verdict names a pipeline (``RunResults.recommended``: BM25, a hybrid, a dense model, maybe
a reranker). ``pipeline_files`` returns what the export bundle needs to run exactly that pipeline
with no part of this project installed::

    pipeline.json            the recommended pipeline: stages, fusion, rerank, why it was chosen, its scores
    pipeline/ids.json        passage ids in the order of every array below; pipeline/texts.json their texts
    pipeline/dense.npy       the dense stage's passage vectors (float32, full size, unit length); with windowed
    pipeline/owner.npy       passages one row per window and owner = each window's passage row
    pipeline/bm25/           the BM25 index in bm25s' own save format (``bm25s.BM25.load``)
    pipeline/query_model/    the model that encodes questions when it is not ``model/`` (the base model of a
                             base-model pipeline, an adapter or NUDGE run), copied when it is a local folder;
                             a hub id is recorded in pipeline.json instead
    pipeline/reranker/       the cross-encoder of a rerank stage
    search.py                ``search(question, k) -> [(passage id, score)]``, and a command line

``search.py`` is written from this project's own functions (the BM25 terms, the exact top-k with its
tie-break by id, the window max-pool, RRF and weighted fusion: their source is copied in, not
rewritten), so it reproduces the run's rankings: ``tests/insight/test_bundle_pipeline.py`` checks the top 10 of
every evaluation question of a smoke run against ``rankings.json``.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from core.insight.model_card import md_text
from core.retrieval import index as index_module
from core.retrieval import metrics as M
from core.retrieval import terms as terms_module
from core.retrieval import windows as windows_module
from core.retrieval.embedding import cpu_has_bf16, resolve_model
from core.retrieval.index import BM25Index
from core.retrieval.pipeline import Pipeline
from core.retrieval.results import RunResults
from core.tuning.methods import method_of
from core.tuning.spec import RunSpec

logger = logging.getLogger(__name__)

SEARCH_FILE = "search.py"
CONFIG_FILE = "pipeline.json"
FOLDER = "pipeline"
Files = list[tuple[str, "bytes | Path"]]  # bundle path -> bytes, or a file to copy


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr, dtype=arr.dtype), allow_pickle=False)
    return buf.getvalue()


def _folder_files(folder: Path, prefix: str) -> Files:
    """Every regular file under ``folder`` (symlinks skipped) as bundle entries under ``prefix``."""
    out: Files = []
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not p.is_file() or any(part.is_symlink() for part in p.relative_to(folder).parents
                                                    if str(part) != "."):
            continue
        out.append((f"{prefix}/{p.relative_to(folder).as_posix()}", p))
    return out


def query_model(spec: RunSpec, pipe: Pipeline) -> tuple[str | None, str | None]:
    """(bundle folder, hub id) of the model that encodes questions for ``pipe``'s dense stage: ``model`` for
    a full fine-tune's tuned stage, else the base model (copied as ``pipeline/query_model`` when it is a
    local folder, otherwise named by its hub id). (None, None) without a dense stage."""
    if pipe.dense is None:
        return None, None
    bundled = method_of(spec.method).bundle_model  # the method ships a plain model folder for its tuned side
    if pipe.dense == "tuned" and bundled:
        return bundled, None
    resolved = resolve_model(spec.base_model)  # None: the bundled all-MiniLM-L6-v2 folder
    if Path(resolved).is_dir():
        return f"{FOLDER}/query_model", None
    return None, resolved


def pipeline_files(view, results: RunResults, spec: RunSpec, run_dir: Path, role: str | None = None) -> Files:
    """The files of the recommended pipeline (or ``role``'s) for the bundle (see the module docstring).

    Args:
        view: the run's ``RunView`` (its stored vectors; nothing is encoded).
        results: the run's results.
        spec: the run's spec.
        run_dir: the run folder (adapter.npz, the reranker).
        role: a pipeline other than the recommended one.
    """
    role = role or results.recommended
    pipe = results.pipelines[role]
    ids = list(view.passage_ids)
    files: Files = [(f"{FOLDER}/ids.json", json.dumps(ids).encode("utf-8")),
                    (f"{FOLDER}/texts.json", json.dumps([view.eval.corpus[d] for d in ids]).encode("utf-8"))]
    dense_cfg = None
    if pipe.dense is not None:
        which = pipe.dense
        windows = getattr(view, f"{which}_w", None)
        vectors = windows if windows is not None else getattr(view, f"{which}_d")
        files.append((f"{FOLDER}/dense.npy", _npy(np.asarray(vectors, dtype=np.float32))))
        if windows is not None:
            files.append((f"{FOLDER}/owner.npy", _npy(np.asarray(view.owner, dtype=np.int64))))
        folder, hub = query_model(spec, pipe)
        if folder == f"{FOLDER}/query_model":
            files += _folder_files(Path(resolve_model(spec.base_model)), folder)
        adapter = method_of(spec.method).query_file if which == "tuned" else None  # moves question vectors
        dense_cfg = {"model": folder, "hub_id": hub, "max_seq_length": spec.scoring.passage_tokens,
                     "vectors": f"{FOLDER}/dense.npy", "owner": f"{FOLDER}/owner.npy" if windows is not None else None,
                     "adapter": adapter, "which": which,
                     # bf16: the run encoded on a CPU in bf16 (core.retrieval.embedding.encodes_in_bf16); search.py
                     # encodes questions so too where the CPU has bf16 instructions
                     "precision": "bf16" if results.systems[which].conditions.backend == "torch bf16" else "float32"}
        if adapter and not any(n == adapter for n, _ in files):
            files.append((adapter, run_dir / adapter))
    bm25_cfg = None
    if pipe.bm25:
        bm = BM25Index(ids, [view.eval.corpus[d] for d in ids])
        with tempfile.TemporaryDirectory() as tmp:
            bm.retriever.save(tmp)
            files += [(f"{FOLDER}/bm25/{p.name}", p.read_bytes()) for p in sorted(Path(tmp).iterdir()) if p.is_file()]
        bm25_cfg = {"index": f"{FOLDER}/bm25"}
    rerank_cfg = None
    if pipe.rerank:
        rr = run_dir / "reranker"
        if rr.is_dir():
            files += _folder_files(rr, f"{FOLDER}/reranker")
            rerank_cfg = {"model": f"{FOLDER}/reranker", "hub_id": None, "top_k": pipe.rerank_top_k}
        elif Path(pipe.rerank).expanduser().is_dir():  # a cross-encoder the user brought from a folder
            files += _folder_files(Path(pipe.rerank).expanduser(), f"{FOLDER}/reranker")
            rerank_cfg = {"model": f"{FOLDER}/reranker", "hub_id": None, "top_k": pipe.rerank_top_k}
        else:
            rerank_cfg = {"model": None, "hub_id": pipe.rerank, "top_k": pipe.rerank_top_k}
        rerank_cfg["max_length"] = spec.rerank.max_length if spec.rerank is not None else None
    head = results.headline_delta
    config = {
        "format": 1,
        "role": role,
        "name": results.systems[role].name,
        "stages": pipe.stages(),
        "uses_tuning": pipe.uses_tuning,
        "why": results.headline_lines() or [results.verdict],
        "metrics": {k: round(v, 4) for k, v in results.systems[role].metrics.items()},
        "depth": M.DEPTH,
        "dense": dense_cfg,
        "bm25": bm25_cfg,
        "fusion": ({"method": pipe.fusion.method, "alpha": pipe.fusion.alpha, "k": M.DEPTH}
                   if pipe.hybrid and pipe.fusion else {"method": "rrf", "alpha": None, "k": M.DEPTH}
                   if pipe.hybrid else None),
        "rerank": rerank_cfg,
        "backend_scored": spec.scoring.backend,
        "index_scored": results.systems[role].conditions.index,
        "headline": None if head is None else {"without_tuning": results.systems[head.a].name,
                                               "with_tuning": results.systems[head.b].name,
                                               "change": round(head.delta, 4), "low": round(head.low, 4),
                                               "high": round(head.high, 4), "p": round(head.p_value, 4)},
    }
    files.append((CONFIG_FILE, json.dumps(config, indent=1).encode("utf-8")))
    files.append((SEARCH_FILE, search_script(config).encode("utf-8")))
    return files


def pipeline_readme(results: RunResults, role: str | None = None) -> str:
    """The bundle README's section on the retriever it ships: which pipeline, why, and how to run it."""
    role = role or results.recommended
    pipe = results.pipelines[role]
    name = md_text(results.systems[role].name)
    lines = ["## The retriever to deploy", "",
             f"This bundle ships **{name}**, whole: " + "; ".join(md_text(s) for s in pipe.stages()) + ".", ""]
    why = results.headline_lines()
    if why:
        lines += ["Why this one (measured on your evaluation questions):", ""] + [f"- {md_text(w)}" for w in why] + [""]
    else:
        lines += [f"Why: {md_text(results.verdict)}", ""]
    lines += ["Run it (it reproduces the lab's ranking of every evaluation question):", "", "```bash",
              'python search.py "your question" --k 10', "```", "", "```python",
              "from search import Pipeline", "", "retriever = Pipeline()          # loads pipeline.json and pipeline/",
              'hits = retriever.search("your question", k=10)   # [(passage id, score), ...]', "```", "",
              "`pipeline.json` lists the stages; `pipeline/` holds the passage ids and texts"
              + (", the dense stage's passage vectors" if pipe.dense else "")
              + (", the BM25 index (bm25s format)" if pipe.bm25 else "")
              + (", the reranker" if pipe.rerank else "") + ". "
              "New or changed passages mean rebuilding these files (export the run again after adding them)."]
    backend = results.systems[role].conditions.backend
    if pipe.dense and backend == "torch bf16":
        lines += ["", "The run encoded in bf16 on a CPU with bf16 instructions (ETL_CPU_BF16=1); `search.py` encodes "
                      "questions in bf16 too where the CPU has them (avx512_bf16 or amx_bf16), else in float32. Either "
                      "way a near-tie may order differently than in the run: a bf16 vector depends slightly on the "
                      "texts encoded with it, and search.py encodes one question at a time."]
    elif pipe.dense and backend not in (None, "torch"):
        lines += ["", f"The run scored the dense stage on the {md_text(backend)} backend; `search.py` encodes questions "
                      "with torch (sentence-transformers), so a near-tie may order differently than in the run."]
    return "\n".join(lines)


def _source(*objects) -> str:
    return "\n\n".join(inspect.getsource(o) for o in objects)


def search_script(config: dict) -> str:
    """``search.py`` for a bundle whose pipeline.json is ``config`` (it reads the file at run time)."""
    shared = "\n\n".join([
        f"STOPWORDS = frozenset({sorted(terms_module.STOPWORDS)!r})",
        "_WORD = re.compile(r\"\\w+\")",
        _source(terms_module.terms),
        _source(index_module.top_k, windows_module.max_pool),
        f"RRF_K = {index_module.RRF_K!r}",
        _source(index_module.rrf_fuse, index_module.weighted_fuse),
        _source(cpu_has_bf16),
    ])
    name = json.dumps(config["name"])
    return TEMPLATE.replace("@@NAME@@", name).replace("@@SHARED@@", shared)


TEMPLATE = '''"""Search your passages with the retriever this bundle ships: @@NAME@@ (see pipeline.json and README.md).

    python search.py "your question" [--k 10]

    from search import Pipeline
    hits = Pipeline().search("your question", k=10)   # [(passage id, score), ...], best first

The stages, the fusion and the reranker are read from pipeline.json. The functions below the
marker were copied from the Embedding Tuning Lab, which scored this pipeline: the same BM25 terms,
exact search with ties broken by passage id, best-window scoring of long passages, and fusion; so this
file ranks passages as the lab's run did.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
Ranking = tuple

# ---- copied from the Embedding Tuning Lab ----------------------------------------------------------
@@SHARED@@
# ---- end of the copied functions -------------------------------------------------------------------


class Pipeline:
    """The bundle's retriever, loaded once; ``search`` answers one question."""

    def __init__(self, folder: str | Path = HERE):
        self.folder = Path(folder)
        self.config = json.loads((self.folder / "pipeline.json").read_text(encoding="utf-8"))
        self.ids = json.loads((self.folder / "pipeline" / "ids.json").read_text(encoding="utf-8"))
        self.depth = int(self.config["depth"])
        self.model = self.adapter = self.bm25 = self.reranker = None
        dense = self.config.get("dense")
        if dense:
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(str(self.folder / dense["model"]) if dense["model"] else dense["hub_id"],
                                             device="cpu")
            self.model.max_seq_length = int(dense["max_seq_length"])
            self.vectors = np.load(self.folder / dense["vectors"], allow_pickle=False)
            self.owner = np.load(self.folder / dense["owner"], allow_pickle=False) if dense.get("owner") else None
            if dense.get("adapter"):
                with np.load(self.folder / dense["adapter"], allow_pickle=False) as z:
                    self.adapter = (z["weight"].astype(np.float32), z["bias"].astype(np.float32))
        if self.config.get("bm25"):
            import bm25s

            self.bm25 = bm25s.BM25.load(str(self.folder / self.config["bm25"]["index"]))
        rerank = self.config.get("rerank")
        if rerank:
            from sentence_transformers import CrossEncoder

            self.reranker = CrossEncoder(str(self.folder / rerank["model"]) if rerank["model"] else rerank["hub_id"],
                                         device="cpu", max_length=rerank.get("max_length"))
            self.texts = json.loads((self.folder / "pipeline" / "texts.json").read_text(encoding="utf-8"))

    def _dense(self, question: str) -> tuple[list[str], list[float]]:
        import contextlib

        import torch

        # the run's precision: bf16 where it encoded in bf16 and this CPU has bf16 instructions, else float32
        bf16 = self.config["dense"].get("precision") == "bf16" and cpu_has_bf16()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            q = self.model.encode_query([question], normalize_embeddings=True, convert_to_numpy=True)
        q = np.asarray(q, dtype=np.float32)
        if self.adapter is not None:
            W, b = self.adapter
            q = q @ W.T + b
            q = (q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        scores = q @ self.vectors.T
        if self.owner is not None:
            scores = max_pool(scores, self.owner, len(self.ids))
        ids, sc = top_k(scores, self.ids, self.depth)
        return ids[0], sc[0]

    def _bm25(self, question: str) -> tuple[list[str], list[float]]:
        known = [t for t in terms(question) if t and t in self.bm25.vocab_dict]
        if not known:
            return [], []
        scores = np.asarray(self.bm25.get_scores(known), dtype=np.float32)
        hit = np.flatnonzero(scores > 0)
        pairs = sorted(((float(scores[i]), self.ids[i]) for i in hit), key=lambda x: (-x[0], x[1]))[: self.depth]
        return [d for _, d in pairs], [s for s, _ in pairs]

    def ranking(self, question: str) -> tuple[list[str], list[float]]:
        """The whole ranking (``depth`` passages): first stages, fusion, rerank."""
        stages = []
        if self.model is not None:
            stages.append(self._dense(question))
        if self.bm25 is not None:
            stages.append(self._bm25(question))
        if len(stages) == 2:
            fusion = self.config["fusion"]
            dense, sparse = ([stages[0][0]], [stages[0][1]]), ([stages[1][0]], [stages[1][1]])
            if fusion["method"] == "rrf":
                ids, sc = rrf_fuse([dense, sparse], k=int(fusion["k"]))
            else:
                ids, sc = weighted_fuse(dense, sparse, alpha=float(fusion["alpha"]), k=int(fusion["k"]))
            ids, sc = ids[0], sc[0]
        else:
            ids, sc = stages[0]
        if self.reranker is not None and ids:
            k = int(self.config["rerank"]["top_k"])
            row = {d: i for i, d in enumerate(self.ids)}
            head = ids[:k]
            import torch

            # raw logits, as the lab reranked (a sigmoid saturates at 1.0 and would tie confident pairs)
            scores = self.reranker.predict([(question, self.texts[row[d]]) for d in head], convert_to_numpy=True,
                                           activation_fn=torch.nn.Identity(), batch_size=32, show_progress_bar=False)
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            order = sorted(range(len(head)), key=lambda i: (-float(scores[i]), i))
            ids = [head[i] for i in order] + ids[k:]
            sc = [float(scores[i]) for i in order] + list(sc[k:])
        return list(ids), [float(s) for s in sc]

    def search(self, question: str, k: int = 10) -> list[tuple[str, float]]:
        """The top ``k`` passages for ``question``: [(passage id, score)], best first."""
        ids, sc = self.ranking(question)
        return list(zip(ids[:k], sc[:k]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("question")
    p.add_argument("--k", type=int, default=10)
    args = p.parse_args(argv)
    pipe = Pipeline()
    texts = json.loads((pipe.folder / "pipeline" / "texts.json").read_text(encoding="utf-8"))
    row = {d: i for i, d in enumerate(pipe.ids)}
    for rank, (pid, score) in enumerate(pipe.search(args.question, args.k), 1):
        print(f"{rank}\\t{score:.4f}\\t{pid}\\t{texts[row[pid]][:100]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

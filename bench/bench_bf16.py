"""bfloat16 on the CPU (issue 26 item 6): one process does one thing, in the precision ``$ETL_CPU_BF16``
says ("1" bf16 autocast, "0" float32), through the project's own code path (``core.retrieval.embedding
.encode`` and ``core.tuning.full.train_full``), so whole processes can be timed against each other:

    ETL_CPU_BF16=0 .venv/bin/python bench/bench_bf16.py encode --passages 96
    ETL_CPU_BF16=1 .venv/bin/python bench/bench_bf16.py encode --passages 96
    ETL_CPU_BF16=1 .venv/bin/python bench/bench_bf16.py train --steps 4
    .venv/bin/python bench/bench_bf16.py quality [--collection sec10k|long|sample]

``quality`` encodes a collection's evaluation passages (512 tokens) and questions both ways in one process
(the base model) and prints nDCG@10 of each and the cosine between the two vectors of each text.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sec-10k-qa"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _encode(passages: int) -> dict:
    from bench.bench_encode import sec10k
    from core.retrieval.embedding import cpu_bf16, encode, load_model

    ds = sec10k(0, 0)
    texts = list(ds.corpus.values())[:passages]
    model = load_model(device="cpu")
    model.max_seq_length = 512
    t0 = time.perf_counter()
    vecs = encode(model, texts, kind="passage", batch_size=32)
    return {"what": "encode", "bf16": cpu_bf16(), "passages": len(vecs), "seconds": time.perf_counter() - t0}


def _train(steps: int, batch: int) -> dict:
    from core.dataset import QADataset
    from core.retrieval.embedding import cpu_bf16
    from core.tuning.full import train_full
    from core.tuning.spec import RunSpec

    ds = QADataset.from_json(json.loads((DATA / "train_dataset.json").read_text(encoding="utf-8")))
    qids = ds.query_ids[: steps * batch]
    train = ds.subset(qids, list(dict.fromkeys(d for q in qids for d in ds.relevant_docs[q])))
    spec = RunSpec.for_method("full", max_steps=steps, batch_size=batch, time_budget_minutes=0.0)
    with tempfile.TemporaryDirectory() as run_dir:
        _, info = train_full(train, None, spec, run_dir, device="cpu")
    return {"what": "train", "bf16": cpu_bf16(), "steps": info.steps, "pairs": info.pairs,
            "seconds": info.seconds}


def _collection(name: str):
    """The evaluation questions and passages of ``name``: sec10k (val_dataset.json), long (each sec-10k
    passage joined with the next: twice the length, the same questions; what 512 tokens cut matters most
    for), sample (the project's sample evaluation split)."""
    from bench.bench_encode import sec10k
    from core.dataset import QADataset
    from core.sample import load_sample

    if name == "sample":
        return load_sample()[1]
    ds = sec10k(0, 0)
    if name == "long":
        ids = list(ds.corpus)
        ds = QADataset(ds.queries, {d: ds.corpus[d] + "\n\n" + ds.corpus[ids[(i + 1) % len(ids)]]
                                    for i, d in enumerate(ids)}, ds.relevant_docs)
    return ds


def _quality(collection: str) -> dict:
    import numpy as np

    from core.retrieval import embedding
    from core.retrieval.embedding import encode, load_model

    ds = _collection(collection)
    model = load_model(device="cpu")
    model.max_seq_length = 512
    out = {"collection": collection, "questions": len(ds), "passages": len(ds.corpus)}
    vecs = {}
    for name, flag in (("fp32", "0"), ("bf16", "1")):
        os.environ[embedding.CPU_BF16_ENV] = flag
        q = encode(model, [ds.queries[i] for i in ds.query_ids], kind="query")
        d = encode(model, list(ds.corpus.values()), kind="passage")
        vecs[name] = (q, d)
        out[name] = _ndcg10(q, d, ds)
    for i, part in enumerate(("questions", "passages")):
        cos = np.sum(vecs["fp32"][i] * vecs["bf16"][i], axis=1)
        out[f"cosine_{part}_min"] = float(cos.min())
        out[f"cosine_{part}_median"] = float(np.median(cos))
    return {"what": "quality", **out}


def _ndcg10(q, d, ds) -> float:
    from core.retrieval.metrics import per_query_metrics, summarize

    ids = list(ds.corpus)
    order = (-(q @ d.T)).argsort(axis=1)[:, :100]
    ranked = [[ids[j] for j in row] for row in order]
    return summarize(per_query_metrics(ranked, [ds.relevant_docs[q] for q in ds.query_ids]))["nDCG@10"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["encode", "train", "quality"])
    p.add_argument("--passages", type=int, default=96, help="encode: this many sec-10k val passages, 512 tokens")
    p.add_argument("--steps", type=int, default=4, help="train: this many steps of the default full fine-tune")
    p.add_argument("--batch", type=int, default=32, help="train: pairs per step")
    p.add_argument("--collection", choices=["sec10k", "long", "sample"], default="sec10k",
                   help="quality: which evaluation questions and passages")
    args = p.parse_args()
    out = (_encode(args.passages) if args.what == "encode" else _train(args.steps, args.batch)
           if args.what == "train" else _quality(args.collection))
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

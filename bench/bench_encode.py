"""Encoding speed and quality per backend: torch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8
(``core.retrieval.backends``), for issue 15 item 1.

Measures, for each backend, on the bundled all-MiniLM-L6-v2 at 512 passage tokens:

* sec-10k (``../shared/data/sec-10k-qa/val_dataset.json``: 395 passages, 790 questions):
  passages/second encoding the passages, and dense nDCG@10 (exact search) with its change against
  torch; the passage vectors' cosine to torch's (min / mean).
* a 20k-passage collection made from varied text: the sentences of every sec-10k passage (train
  and val), shuffled and recombined into passages of 2 to 12 sentences (speed only: it has no
  questions).

Then it names the default by the issue's rule: the fastest backend whose nDCG@10 moves by 0.002
at most against torch (torch itself qualifies, so torch when no other does). "Fastest" is the
20k collection's passages/second (sec-10k's when --synthetic 0). Every encode is uncached, batch
32 (the app's), after a warm-up batch; ONNX exports (timed separately) go to --onnx-dir (default: a
temporary folder, so the first export is part of the run).

The full run (about an hour per backend on a quiet 2-core CPU: the 20k collection dominates):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encode.py --json bench/results/bench_encode.json

A small slice (minutes; validates the script, its figures are not the benchmark's):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_encode.py --questions 40 --passages 40 --synthetic 200

Options: --backends torch onnx onnx-int8 (any subset, torch always included as the reference),
--passage-tokens 512, --batch-size 32, --seed 0, --onnx-dir DIR (reuse exports across runs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = ROOT.parent / "shared" / "data" / "sec-10k-qa"
NDCG_TOLERANCE = 0.002  # the rule: a backend may move nDCG@10 by this much at most


def sec10k(questions: int, passages: int):
    """The sec-10k validation set; with ``questions`` / ``passages`` > 0 a slice: the first questions,
    their gold passages, then other passages up to ``passages``."""
    from core.dataset import QADataset

    ds = QADataset.from_json(json.loads((DATA / "val_dataset.json").read_text(encoding="utf-8")))
    if not questions and not passages:
        return ds
    qids = ds.query_ids[: questions or None]
    gold = list(dict.fromkeys(d for q in qids for d in ds.relevant_docs[q]))
    others = [d for d in ds.corpus if d not in set(gold)]
    keep = gold + others[: max(0, (passages or len(ds.corpus)) - len(gold))]
    return ds.subset(qids, keep)


def synthetic_collection(n: int, seed: int) -> list[str]:
    """``n`` distinct passages of 2-12 sentences drawn from every sec-10k passage (train and val)."""
    texts = []
    for name in ("train_dataset.json", "val_dataset.json"):
        texts += list(json.loads((DATA / name).read_text(encoding="utf-8"))["corpus"].values())
    sentences = [s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+", t) if len(s.strip()) > 20]
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        out.add(" ".join(rng.sample(sentences, rng.randint(2, 12))))
    return sorted(out, key=lambda _: rng.random())


def timed_encode(enc, texts: list[str], batch_size: int):
    """(vectors, seconds) encoding ``texts`` as passages, uncached, after one warm-up batch."""
    from core.retrieval.embedding import encode

    encode(enc, texts[:batch_size], kind="passage", batch_size=batch_size)
    t0 = time.perf_counter()
    vecs = encode(enc, texts, kind="passage", batch_size=batch_size)
    return vecs, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", nargs="+", default=["torch", "onnx", "onnx-int8"])
    p.add_argument("--questions", type=int, default=0, help="sec-10k questions (0: all 790)")
    p.add_argument("--passages", type=int, default=0, help="sec-10k passages (0: all 395)")
    p.add_argument("--synthetic", type=int, default=20_000, help="passages of the made-up collection (0: skip)")
    p.add_argument("--passage-tokens", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--onnx-dir", default=None, help="where ONNX exports are kept (default: a temporary folder)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    from core.retrieval.backends import BACKENDS, with_backend
    from core.retrieval.embedding import encode, load_model
    from core.retrieval.evaluation import Conditions, evaluate_vectors

    backends = ["torch"] + [b for b in args.backends if b != "torch"]
    for b in backends:
        if b not in BACKENDS:
            p.error(f"unknown backend {b!r}: use {', '.join(BACKENDS)}")
    ds = sec10k(args.questions, args.passages)
    passages = list(ds.corpus.values())
    questions = [ds.queries[q] for q in ds.query_ids]
    synth = synthetic_collection(args.synthetic, args.seed) if args.synthetic else []
    onnx_dir = Path(args.onnx_dir) if args.onnx_dir else Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    print(f"sec-10k: {len(questions)} questions, {len(passages)} passages; synthetic: {len(synth)} passages; "
          f"{args.passage_tokens} tokens, batch {args.batch_size}; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs", flush=True)

    model = load_model(device="cpu")
    model.max_seq_length = args.passage_tokens
    rows, ref_vecs = [], None
    for backend in backends:
        t0 = time.perf_counter()
        enc = with_backend(model, backend, onnx_dir)
        prepare = time.perf_counter() - t0
        d_vecs, secs = timed_encode(enc, passages, args.batch_size)
        q_vecs = encode(enc, questions, kind="query", batch_size=args.batch_size)
        res = evaluate_vectors(backend, ds, q_vecs, d_vecs,
                               Conditions.of(ds, args.passage_tokens, "all-MiniLM-L6-v2", backend=backend))
        if ref_vecs is None:
            ref_vecs = d_vecs
        cos = np.sum(ref_vecs * d_vecs, axis=1)
        row = {"backend": backend, "prepare_s": round(prepare, 1), "sec10k_s": round(secs, 2),
               "sec10k_passages_per_s": round(len(passages) / secs, 2), "nDCG@10": round(res.metrics["nDCG@10"], 4),
               "nDCG@10_exact": res.metrics["nDCG@10"],  # the rule compares these, not the rounded figures
               "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5)}
        if synth:
            _, s2 = timed_encode(enc, synth, args.batch_size)
            row.update(synthetic_s=round(s2, 1), synthetic_passages_per_s=round(len(synth) / s2, 2))
        rows.append(row)
        print(json.dumps(row), flush=True)

    speed = "synthetic_passages_per_s" if synth else "sec10k_passages_per_s"
    base = rows[0]
    for r in rows:
        r["speed_vs_torch"] = round(r[speed] / base[speed], 2)
        r["sec10k_speed_vs_torch"] = round(r["sec10k_passages_per_s"] / base["sec10k_passages_per_s"], 2)
        change = r["nDCG@10_exact"] - base["nDCG@10_exact"]
        r["nDCG@10_change"] = round(change, 5)
        r["qualifies"] = abs(change) <= NDCG_TOLERANCE + 1e-12  # float noise must not decide a tie
    default = max((r for r in rows if r["qualifies"]), key=lambda r: r[speed])["backend"]

    print()
    head = f"{'backend':<10} {'sec-10k p/s':>11} {'x torch':>7} {'synth p/s':>9} {'x torch':>7} {'nDCG@10':>8} " \
           f"{'change':>7} {'cos min':>8} {'export s':>8}"
    print(head)
    for r in rows:
        print(f"{r['backend']:<10} {r['sec10k_passages_per_s']:>11.2f} {r['sec10k_speed_vs_torch']:>7.2f} "
              f"{r.get('synthetic_passages_per_s', float('nan')):>9.2f} "
              f"{(r['speed_vs_torch'] if synth else float('nan')):>7.2f} {r['nDCG@10']:>8.4f} "
              f"{r['nDCG@10_change']:>+7.4f} {r['cosine_min']:>8.4f} {r['prepare_s']:>8.1f}")
    print(f"\ndefault backend: {default} (the fastest, by {speed}, whose nDCG@10 moves by <= {NDCG_TOLERANCE} "
          "against torch; torch if none)")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"args": vars(args), "rows": rows, "default": default,
                                   "speed_measure": speed}, indent=1), encoding="utf-8")
        print(f"figures written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Encode sec-10k's 395 evaluation passages once with one backend, in a process of its own, no cache.

For timing whole processes against each other (torch vs ONNX): the figure includes loading the model
and, for ONNX, opening the exported session (the export itself is made once in ``--onnx-dir`` by a
warm-up run and reused).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/encode_once.py --backend onnx --onnx-dir /tmp/onnx
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="torch", help="torch, onnx or onnx-int8")
    p.add_argument("--onnx-dir", default=str(ROOT / ".cache" / "onnx"))
    p.add_argument("--passage-tokens", type=int, default=512)
    args = p.parse_args()

    from bench.bench_encode import sec10k
    from core.retrieval.backends import with_backend
    from core.retrieval.embedding import encode, load_model

    ds = sec10k(0, 0)
    model = load_model(device="cpu")
    model.max_seq_length = args.passage_tokens
    enc = with_backend(model, args.backend, Path(args.onnx_dir))
    vecs = encode(enc, list(ds.corpus.values()), kind="passage", batch_size=32)
    print(f"{args.backend}: {vecs.shape[0]} passages encoded")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The Questions page's time estimate against the real generation (issue 26), on one collection.

Measures the encoding rate on a sample (as the page does when the workspace has no measured generation),
prints the estimate, then runs the generation (sentence as question, default filters) with a fresh
embedding cache in WORKSPACE and prints the real time:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/check_generation_estimate.py /tmp/gen/walk/documents /tmp/gen/ws2
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    from core.generate.job import GenerationSpec, generate
    from core.generate.timing import estimate_generation, measure_rate
    from core.ingest.collection import load_passages_path
    from core.retrieval.embedding import EmbeddingCache, load_model
    from core.workspace.jobs import fmt_duration

    ps, _, _ = load_passages_path(sys.argv[1])
    Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
    spec = GenerationSpec.for_backend("", "offline", "inverse_cloze")
    model = load_model(device="cpu")
    cache = EmbeddingCache(Path(sys.argv[2]) / "cache.sqlite")
    t = time.perf_counter()
    rate = measure_rate(model, ps, spec)
    print(f"sample measured in {time.perf_counter() - t:.1f} s; estimate: {estimate_generation(ps, spec, rate, cache).text()}",
          flush=True)
    est = estimate_generation(ps, spec, rate, cache)
    t = time.perf_counter()
    s = generate(ps, spec, embedding_cache=cache, model=model).summary
    real = time.perf_counter() - t
    print(f"real: {fmt_duration(real)} ({real:.0f} s: generate {s.generation_seconds:.1f} s, encode "
          f"{s.encode_seconds:.0f} s); estimated {est.seconds:.0f} s; {s.line}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

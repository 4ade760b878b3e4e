"""Large collections (issue 15): 10k / 30k / 100k passages on this machine.

The collection: sec-10k's 395 evaluation passages (so its 790 real questions have their answers)
plus synthetic distractors made from varied text (sentences of both sec-10k files and of the
bundled sample documents, recombined --sentences MIN MAX at a time, default 3-6, with a fixed seed; every text distinct). Per size it measures:

* encode throughput of the base model (passages per second; cached afterwards);
* FAISS exact search, HNSW and IVF: build and search time for the 790 questions, recall@10 against
  exact search;
* BM25 (bm25s): index and search time;
* peak resident memory of this process after each phase;
* a finished run over the collection (the query adapter: the passages are encoded once, by the base
  model) and the time every page takes to open it in Chromium (``--pages``), until the app is idle
  and the browser has drawn it (main thread idle: charts included), without re-encoding anything.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_scale.py --sizes 10000 30000 100000 \\
        --workspace /work/bench-ws/scale --out bench/results/scale.jsonl [--pages]

Each size writes one JSON line; re-running skips sizes already in the file (the encodings are in the
workspace's embedding cache, so an interrupted run resumes cheaply). Page open times of one finished run
again (fresh server each round, so each is a first open):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/bench_scale.py --workspace WS --time-run RUN_ID --repeat 2 \
        --shots /tmp/shots --out bench/results/scale-pages.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sec-10k-qa"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def collection(size: int, seed: int = 7, span: tuple[int, int] = (3, 6)):
    """(eval QADataset over ``size`` passages, training QADataset of sec-10k's train file)."""
    from core.dataset import QADataset, join_train_eval
    from core.ingest.qafiles import load_qa_path

    train = load_qa_path(DATA / "train_dataset.json").dataset
    ev = load_qa_path(DATA / "val_dataset.json").dataset
    train, ev = join_train_eval(train, ev)
    texts = list(ev.corpus.values())
    for p in sorted((ROOT / "sample_data" / "documents").glob("*")):
        texts.append(re.sub(r"<[^>]+>", " ", p.read_text(encoding="utf-8", errors="replace")))
    sentences = [s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+", " ".join(t.split())) if 30 < len(s) < 400]
    rng = np.random.default_rng(seed)
    corpus = dict(ev.corpus)
    seen = set(corpus.values())
    n = size - len(corpus)
    i = 0
    while i < n:  # every text distinct: a repeated text would tie in exact search and blur "recall vs exact"
        k = int(rng.integers(span[0], span[1] + 1))
        text = " ".join(sentences[j] for j in rng.integers(0, len(sentences), size=k))
        if text in seen:
            continue
        seen.add(text)
        corpus[f"syn-{i:06d}"] = text
        i += 1
    return QADataset(ev.queries, corpus, ev.relevant_docs), train, len(sentences)


def measure(size: int, workspace: Path, pages: bool, passage_tokens: int = 512,
            sentences: tuple[int, int] = (3, 6)) -> dict:
    import faiss

    from core.retrieval.embedding import EmbeddingCache, encode, load_model
    from core.retrieval.evaluation import evaluate_bm25
    from core.workspace.store import Store

    out: dict = {"passages": size, "passage_tokens": passage_tokens, "sentences_per_passage": list(sentences)}
    t0 = time.perf_counter()
    ev, train, n_sent = collection(size, span=sentences)
    out["build_collection_s"] = round(time.perf_counter() - t0, 1)
    out["distinct_sentences"] = n_sent
    store = Store(workspace)
    cache = EmbeddingCache(store.cache_path)
    model = load_model(device="cpu")
    model.max_seq_length = passage_tokens
    ids = list(ev.corpus)
    first: list[tuple[int, int]] = []  # (found in the cache, total) as the encoder starts
    t0 = time.perf_counter()
    d = encode(model, [ev.corpus[i] for i in ids], kind="passage", cache=cache, batch_size=32,
               progress=lambda done, total: first.append((done, total)) if not first else None)
    dt = time.perf_counter() - t0
    cached, total = first[0]
    # A smaller size's passages are a prefix of this one's (same seed): they come from the cache, so the
    # throughput counts only the passages encoded now.
    out["encode_s"] = round(dt, 1)
    out["encoded_now"], out["from_cache"] = total - cached, cached
    out["encode_passages_per_s"] = round((total - cached) / dt, 1) if total > cached and dt > 1 else None
    q = encode(model, [ev.queries[x] for x in ev.query_ids], kind="query", cache=cache)
    out["rss_after_encode_mb"] = round(rss_mb())

    k = 10
    t0 = time.perf_counter()
    flat = faiss.IndexFlatIP(d.shape[1])
    flat.add(d)
    out["exact_build_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    _, exact = flat.search(q, k)
    out["exact_search_s"] = round(time.perf_counter() - t0, 2)

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(exact, found)]))

    ex_scores, _ = flat.search(q, k)

    def recall_ties(found: np.ndarray) -> float:
        """Share of the k found passages that score at least the exact k-th score (a tie at the cut counts)."""
        got = np.einsum("qd,qkd->qk", q, d[np.maximum(found, 0)])
        return float(np.mean((got >= ex_scores[:, -1:] - 1e-5) & (found >= 0)))

    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    hnsw.add(d)
    out["hnsw_build_s"] = round(time.perf_counter() - t0, 1)
    for ef in (64, 128, 256, 512):
        hnsw.hnsw.efSearch = ef
        t0 = time.perf_counter()
        _, found = hnsw.search(q, k)
        out[f"hnsw_ef{ef}_search_s"] = round(time.perf_counter() - t0, 3)
        out[f"hnsw_ef{ef}_recall10"] = round(recall(found), 4)
        out[f"hnsw_ef{ef}_recall10_ties"] = round(recall_ties(found), 4)
    nlist = int(4 * np.sqrt(size))
    t0 = time.perf_counter()
    quant = faiss.IndexFlatIP(d.shape[1])
    ivf = faiss.IndexIVFFlat(quant, d.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.train(d)
    ivf.add(d)
    out["ivf_nlist"] = nlist
    out["ivf_build_s"] = round(time.perf_counter() - t0, 1)
    for nprobe in (8, 32, 64, 128):
        ivf.nprobe = nprobe
        t0 = time.perf_counter()
        _, found = ivf.search(q, k)
        out[f"ivf_nprobe{nprobe}_search_s"] = round(time.perf_counter() - t0, 3)
        out[f"ivf_nprobe{nprobe}_recall10"] = round(recall(found), 4)
        out[f"ivf_nprobe{nprobe}_recall10_ties"] = round(recall_ties(found), 4)
    out["rss_after_indexes_mb"] = round(rss_mb())

    t0 = time.perf_counter()
    bm25 = evaluate_bm25(ev)
    out["bm25_index_and_search_s"] = round(time.perf_counter() - t0, 1)
    out["bm25_ndcg10"] = round(bm25.metrics["nDCG@10"], 4)
    out["rss_after_bm25_mb"] = round(rss_mb())
    del flat, hnsw, ivf
    run_id = finished_run(store, ev, train, size, passage_tokens)
    out["run_id"] = run_id
    out["rss_after_run_mb"] = round(rss_mb())
    if pages:
        out["page_open_s"] = time_pages(workspace, run_id)
    return out


def finished_run(store, ev, train, size: int, passage_tokens: int) -> str:
    """A query-adapter run over the collection (passages encoded once, by the base model), with its views
    prepared as the app prepares them."""
    from core.cli import PrintReporter
    from core.execute import execute
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import run_foreground

    name = f"scale {size}"
    found = store.find_dataset(name)
    ds_id = found["id"] if found else store.save_dataset(name, train, ev)
    for r in store.list_runs():
        if r["dataset_id"] == ds_id and r["status"] == "done":
            return r["id"]
    spec = RunSpec.for_method("adapter")
    spec.scoring.passage_tokens = passage_tokens  # as encoded above: the run finds every vector in the cache
    run_id = create_run(store, ds_id, spec, name=name)
    t0 = time.perf_counter()
    job = run_foreground(store, run_id, lambda j: execute(store, run_id, j, device="cpu", prepare_views=True),
                         PrintReporter())
    if job.snapshot().status != "done":
        raise SystemExit(f"the {size} run failed: {job.snapshot().error}")
    print(f"run {run_id} over {size} passages: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return run_id


# Resolves when the page's main thread has nothing left to do (charts drawn), at most 20 s later.
MAIN_THREAD_IDLE = "() => new Promise(r => requestIdleCallback(() => r(), {timeout: 20000}))"


def time_pages(workspace: Path, run_id: str, shots: Path | None = None,
               detail: dict[str, dict] | None = None) -> dict[str, float]:
    """Seconds each page takes to open the run in Chromium, the run selected: from the click in the sidebar
    until the app is idle (script finished) AND the browser's main thread is idle (charts drawn); with
    ``shots``, a screenshot of each page there once it is drawn (taken after the timing). With ``detail`` (a
    dict), per page: ``server_s``, when the server's last websocket message of the open arrived (the rest
    is the browser drawing), and Chromium's main-thread seconds during the open (CDP Performance metrics:
    task, script, layout, style)."""
    from playwright.sync_api import sync_playwright

    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from conftest import CHROMIUM, LAUNCH_ARGS, start_app, stop_app  # the e2e tests' own server helpers

    url, proc = start_app(workspace)
    out: dict[str, float] = {}
    frames: list[float] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("websocket", lambda ws: ws.on("framereceived", lambda _f: frames.append(time.perf_counter())))
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")

            def metrics() -> dict[str, float]:
                got = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                return {k: got.get(k, 0.0) for k in ("TaskDuration", "ScriptDuration", "LayoutDuration",
                                                     "RecalcStyleDuration")}

            t_start = time.perf_counter()
            page.goto(url)
            page.get_by_role("heading", name="Data", exact=True).first.wait_for(timeout=120_000)
            page.locator('[data-test-script-state="running"]').wait_for(state="detached", timeout=120_000)
            page.locator(".st-key-etl_preload .js-plotly-plot").wait_for(state="attached", timeout=120_000)
            page.evaluate(MAIN_THREAD_IDLE)
            # The app's first load in a fresh tab (not a page open): the browser also loads the app's code, and the
            # chart and table code the app asks for at a session's start (ui.widgets.preload_components).
            out["App first load (Data)"] = round(time.perf_counter() - t_start, 2)
            for title in ("Train", "Questions", "Embedding map", "Compare", "Runs", "Data", "Embedding map", "Compare"):
                page.wait_for_timeout(300)
                before, frames[:] = metrics(), []
                t0 = time.perf_counter()
                page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
                page.get_by_role("heading", name=title, exact=True).first.wait_for(timeout=120_000)
                page.wait_for_timeout(50)
                page.locator('[data-test-script-state="running"]').wait_for(state="detached", timeout=120_000)
                t_idle = time.perf_counter()
                page.evaluate(MAIN_THREAD_IDLE)  # the browser has also finished drawing (plotly draws after)
                t1 = time.perf_counter()
                key = title if title not in out else f"{title} (again)"
                out[key] = round(t1 - t0, 2)
                if detail is not None:
                    after = metrics()
                    detail[key] = {"app_idle_s": round(t_idle - t0, 2),
                                   "server_s": round(max([f for f in frames if f <= t1], default=t0) - t0, 2),
                                   "messages": len(frames),
                                   **{k: round(after[k] - before[k], 2) for k in after}}
                if shots:
                    shots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(shots / f"{len(out):02d}-{key.replace(' ', '_')}.png"), full_page=True)
            browser.close()
    finally:
        stop_app(proc)
    return out


def time_run(workspace: Path, run_id: str, out: Path, repeat: int, shots: Path | None) -> int:
    from core.insight.explore import open_run
    from core.workspace.store import Store

    store = Store(workspace)
    t0 = time.perf_counter()
    view = open_run(store, run_id)
    view.prepare()
    prepared = round(time.perf_counter() - t0, 1)
    for i in range(repeat):
        row = {"run_id": run_id, "passages": len(view.passage_ids), "questions": len(view.query_ids),
               "prepare_s": prepared, "round": i + 1}
        detail: dict[str, dict] = {}
        row["page_open_s"] = time_pages(workspace, run_id, shots if i == 0 else None, detail)
        row["detail"] = detail
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", nargs="+", type=int, default=[10_000, 30_000, 100_000])
    p.add_argument("--workspace", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--pages", action="store_true", help="also time every page opening the run in Chromium")
    p.add_argument("--passage-tokens", type=int, default=512,
                   help="tokens read per passage (encoding and the run); fewer encodes faster, same counts")
    p.add_argument("--sentences", nargs=2, type=int, default=[3, 6], metavar=("MIN", "MAX"),
                   help="sentences per synthetic passage")
    p.add_argument("--time-run", metavar="RUN_ID", default=None,
                   help="only time the pages of this finished run of --workspace (its views prepared first, as a "
                        "run finishing with this code leaves them), --repeat times, one JSON line each to --out")
    p.add_argument("--repeat", type=int, default=1, help="with --time-run: server starts (each a first open)")
    p.add_argument("--shots", default=None, help="with --time-run: a screenshot of each page here (first round)")
    args = p.parse_args()
    out = Path(args.out)
    if args.time_run:
        return time_run(Path(args.workspace), args.time_run, out, args.repeat, Path(args.shots) if args.shots else None)
    done = {json.loads(x)["passages"] for x in out.read_text().splitlines() if x.strip()} if out.exists() else set()
    for size in args.sizes:
        if size in done:
            print(f"{size}: done already")
            continue
        row = measure(size, Path(args.workspace), args.pages, args.passage_tokens, tuple(args.sentences))
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(json.dumps(row, indent=1), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

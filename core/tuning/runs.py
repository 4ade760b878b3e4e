"""One run end to end: base scores, the chosen method, tuned scores, baselines, results.

``execute_run`` is what a background job (or the CLI) executes for a run created in the
store. It writes into the run folder:

    results.json      metrics of every system (base, tuned, BM25, hybrid), info, timings
    per_query.csv     gold rank and metrics per eval question for each system
    rankings.json     top-10 doc ids and scores per question for each system
    model/            the tuned model (full fine-tune) in sentence-transformers format
    adapter.npz       the linear adapter (adapter method)
    nudged.npy        the nudged passage vectors (NUDGE), ids in nudged_ids.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.dataset import DataError, QADataset
from core.insight import stats
from core.retrieval.evaluation import (
    RetrievalResult,
    dense_ranking,
    evaluate_bm25,
    evaluate_dense,
    score_ranking,
)
from core.retrieval.fusion import choose_fusion, fuse, hybrid_name
from core.store import Store, atomic_write_bytes, atomic_write_json, read_json
from core.tuning.jobs import Reporter

METHODS = ("full", "adapter", "nudge")
TOP_SAVED = 10  # ranked docs per question kept in rankings.json for the comparison pages


def _stage(reporter: Reporter):
    return lambda message, fraction: reporter.progress(int(fraction * 1000), 1000)


def _vectors(model, ds: QADataset, cache, reporter: Reporter, label: str):
    from core.retrieval.embedding import encode

    reporter.phase("encoding", f"Encoding {label}: {len(ds.corpus)} passages, {len(ds)} questions")
    ids = list(ds.corpus)
    d = encode(model, [ds.corpus[i] for i in ids], kind="passage", cache=cache,
               progress=lambda a, b: reporter.progress(a, b))
    q = encode(model, [ds.queries[i] for i in ds.query_ids], kind="query", cache=cache)
    return ids, d, q


def _run_adapter(base, train: QADataset, ev: QADataset, config: dict, cache, reporter: Reporter, run_dir: Path):
    from core.retrieval.index import DenseIndex
    from core.tuning.adapters import fit_linear_adapter

    t0 = time.perf_counter()
    ids, d_vecs, q_vecs = _vectors(base, train, cache, reporter, "training data")
    pos_index = {d: i for i, d in enumerate(ids)}
    positives = [[pos_index[d] for d in train.relevant_docs[q] if d in pos_index] for q in train.query_ids]
    reporter.phase("training", "Fitting the query adapter")
    kw = {k: config[k] for k in ("epochs", "lr", "temperature", "seed") if k in config}
    adapter, hist = fit_linear_adapter(q_vecs, positives, d_vecs, progress=_stage(reporter),
                                       should_stop=reporter.should_stop, **kw)
    for i, loss in enumerate(hist.losses):
        reporter.loss(i + 1, loss)
    reporter.check_cancel()
    adapter.save(run_dir / "adapter.npz")
    e_ids, e_d, e_q = _vectors(base, ev, cache, reporter, "evaluation data")
    t_q = adapter.transform(e_q)
    ranking = DenseIndex(e_ids, e_d).search(t_q)
    res = score_ranking("tuned (adapter)", ev, ranking, time.perf_counter() - t0)
    res.vectors = (t_q, e_d)
    vecs = dict(zip(ids, d_vecs))
    qv = dict(zip(train.query_ids, q_vecs))

    def val_ranking(val: QADataset):
        v_ids = list(val.corpus)
        return DenseIndex(v_ids, np.stack([vecs[i] for i in v_ids])).search(
            adapter.transform(np.stack([qv[q] for q in val.query_ids])))

    return res, {"chosen": hist.chosen, "train_seconds": time.perf_counter() - t0}, val_ranking


def _run_nudge(base, train: QADataset, ev: QADataset, config: dict, cache, reporter: Reporter, run_dir: Path):
    from core.retrieval.index import DenseIndex
    from core.tuning.adapters import nudge, nudge_applies

    ok, why = nudge_applies(train.corpus, ev.corpus)
    if not ok:
        raise DataError(why)
    t0 = time.perf_counter()
    ids, d_vecs, q_vecs = _vectors(base, train, cache, reporter, "training data")
    pos_index = {d: i for i, d in enumerate(ids)}
    positives = [[pos_index[d] for d in train.relevant_docs[q] if d in pos_index] for q in train.query_ids]
    reporter.phase("training", "NUDGE: moving passage vectors toward their questions")
    new_d, hist = nudge(q_vecs, positives, d_vecs, progress=_stage(reporter),
                        **{k: config[k] for k in ("seed",) if k in config})
    reporter.check_cancel()
    np.save(run_dir / "nudged.npy", new_d.astype(np.float32), allow_pickle=False)
    atomic_write_json(run_dir / "nudged_ids.json", ids)
    e_ids, e_d, e_q = _vectors(base, ev, cache, reporter, "evaluation data")
    nudged = dict(zip(ids, new_d))
    e_d = np.stack([nudged.get(i, v) for i, v in zip(e_ids, e_d)]).astype(np.float32)
    ranking = DenseIndex(e_ids, e_d).search(e_q)
    res = score_ranking("tuned (NUDGE)", ev, ranking, time.perf_counter() - t0)
    res.vectors = (e_q, e_d)
    qv = dict(zip(train.query_ids, q_vecs))

    def val_ranking(val: QADataset):
        v_ids = list(val.corpus)
        return DenseIndex(v_ids, np.stack([nudged[i] for i in v_ids])).search(
            np.stack([qv[q] for q in val.query_ids]))

    return res, {"chosen": hist.chosen, "train_seconds": time.perf_counter() - t0}, val_ranking


def _run_full(train: QADataset, ev: QADataset, config: dict, cache, reporter: Reporter, run_dir: Path,
              device: str | None):
    from core.tuning.full import TrainConfig, train_full

    cfg = TrainConfig.from_dict(config)
    model, info = train_full(train, cfg, run_dir, reporter, device=device)
    reporter.phase("evaluating", f"Scoring the tuned model on {len(ev)} eval questions")
    res = evaluate_dense(model, ev, name="tuned (full)", cache=cache, progress=_stage(reporter))

    def val_ranking(val: QADataset):
        reporter.phase("evaluating", f"Choosing the hybrid's fusion on {len(val)} validation questions")
        return dense_ranking(model, val, cache=cache, progress=_stage(reporter))[0]

    return res, info, val_ranking


def save_results(run_dir: Path, ev: QADataset, systems: list[RetrievalResult], info: dict[str, Any]) -> dict:
    """Write results.json, per_query.csv, rankings.json and vectors.npz; return the results dict.

    ``systems`` starts with the base and the tuned dense systems.
    """
    frames = []
    for r in systems:
        f = r.per_query[["gold_rank", "Accuracy@10", "MRR@10", "nDCG@10"]].copy()
        f.columns = [f"{r.name}|{c}" for c in f.columns]
        frames.append(f)
    per_query = pd.concat(frames, axis=1)
    per_query.insert(0, "question", [ev.queries[q] for q in per_query.index])
    atomic_write_bytes(run_dir / "per_query.csv", per_query.to_csv().encode("utf-8"))
    base, tuned = systems[0], systems[1]
    if base.vectors is not None and tuned.vectors is not None:
        with open(run_dir / "vectors.npz", "wb") as fh:  # for the map and free-text search: no re-encoding
            np.savez(fh, base_q=base.vectors[0], base_d=base.vectors[1], tuned_q=tuned.vectors[0],
                     tuned_d=tuned.vectors[1])
    rankings = {r.name: {q: [ids[:TOP_SAVED], [round(s, 5) for s in sc[:TOP_SAVED]]]
                         for q, ids, sc in zip(r.query_ids, r.ids, r.scores)} for r in systems}
    atomic_write_json(run_dir / "rankings.json", rankings)
    order = [r.name for r in systems]
    deltas = stats.compare_systems(per_query, order) if len(systems) > 1 else []
    results = {
        "systems": {r.name: {**r.metrics, "seconds": r.seconds} for r in systems},
        "order": [r.name for r in systems],
        "headline": {k: systems[1].metrics[k] for k in ("Accuracy@10", "MRR@10", "nDCG@10")} if len(systems) > 1 else {},
        "info": info,
        "n_eval_questions": len(ev),
        "n_eval_passages": len(ev.corpus),
        "comparisons": [d.to_dict() for d in deltas],
        "verdict": stats.verdict(deltas, order) if deltas else "",
    }
    atomic_write_json(run_dir / "results.json", results)
    return results


def execute_run(store: Store, run_id: str, reporter: Reporter | None = None, device: str | None = None) -> dict:
    """Run the method recorded in the run's config and save everything (see module docstring).

    Raises:
        DataError: the dataset cannot serve this method (e.g. NUDGE on a disjoint eval corpus).
        jobs.Cancelled: the reporter asked to stop.
    """
    from core.retrieval.embedding import EmbeddingCache, load_model

    reporter = reporter or Reporter()
    run = store.get_run(run_id)
    config = read_json(store.run_dir(run_id) / "config.json", {})
    method = config.get("method", run["method"])
    if method == "shootout":
        from core.tuning.shootout import run_shootout

        return run_shootout(store, run_id, reporter, device=device)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    run_dir = store.run_dir(run_id)
    train, ev = store.load_dataset(run["dataset_id"])
    if ev is None or len(ev) == 0:
        raise DataError("This dataset has no evaluation split: split it on the Data page first.")
    cache = EmbeddingCache(store.cache_path)
    t0 = time.perf_counter()
    reporter.phase("preparing", "Loading the base model")
    base = load_model(config.get("base_model"), device=device)
    if config.get("index_max_seq_length"):
        base.max_seq_length = int(config["index_max_seq_length"])
    reporter.phase("encoding", "Scoring the base model")
    base_res = evaluate_dense(base, ev, name="base", cache=cache, progress=_stage(reporter))
    reporter.check_cancel()
    if method == "full":
        tuned, info, val_ranking = _run_full(train, ev, config, cache, reporter, run_dir, device)
    elif method == "adapter":
        tuned, info, val_ranking = _run_adapter(base, train, ev, config, cache, reporter, run_dir)
    else:
        tuned, info, val_ranking = _run_nudge(base, train, ev, config, cache, reporter, run_dir)
    reporter.check_cancel()
    # The hybrid's fusion is chosen on the same validation questions the full fine-tune held out
    # (same fraction and seed), never on the evaluation split.
    from core.tuning.full import TrainConfig, split_validation

    cfg = TrainConfig.from_dict(config)
    _, val = split_validation(train, cfg.val_fraction or 0.1, cfg.seed)
    choice = choose_fusion(val, val_ranking(val) if val is not None else None)
    if method != "full" and val is not None:
        choice["note"] += (f" The {method} fit also saw some of these questions, so the choice may lean toward the "
                           "dense side.")
    reporter.note(choice["note"])
    reporter.phase("evaluating", "BM25 and hybrid baselines")
    bm25 = evaluate_bm25(ev)
    hybrid = score_ranking(hybrid_name(choice), ev, fuse(tuned.ranking(), bm25.ranking(), choice),
                           tuned.seconds + bm25.seconds)
    info = {**info, "method": method, "fusion": choice, "total_seconds": time.perf_counter() - t0}
    results = save_results(run_dir, ev, [base_res, tuned, bm25, hybrid], info)
    if method == "full":
        from core.tuning.full import append_model_card_metrics

        table = pd.DataFrame(results["systems"]).T.drop(columns=["seconds"]).round(4)
        append_model_card_metrics(run_dir / "model", table.to_markdown() if _has_tabulate() else table.to_string(),
                                  f"Evaluated on {len(ev)} held-out questions against {len(ev.corpus)} passages.")
    reporter.phase("done", "Finished")
    return results


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


def load_results(store: Store, run_id: str) -> dict | None:
    """results.json of a run; runs saved before intervals existed get them computed (and saved) here."""
    run_dir = store.run_dir(run_id)
    results = read_json(run_dir / "results.json")
    if results and "comparisons" not in results and (run_dir / "per_query.csv").exists():
        first = pd.read_csv(run_dir / "per_query.csv", nrows=0).columns[0]
        per_query = pd.read_csv(run_dir / "per_query.csv", index_col=0, dtype={first: str})
        deltas = stats.compare_systems(per_query, results["order"])
        results["comparisons"] = [d.to_dict() for d in deltas]
        results["verdict"] = stats.verdict(deltas, results["order"]) if deltas else ""
        atomic_write_json(run_dir / "results.json", results)
    return results


def comparisons_table(results: dict) -> pd.DataFrame:
    """The paired comparisons of a results dict as a display table."""
    return stats.deltas_frame([stats.Delta(**{k: v for k, v in d.items() if k != "significant"})
                               for d in results.get("comparisons", [])])


def load_rankings(store: Store, run_id: str) -> dict:
    return read_json(store.run_dir(run_id) / "rankings.json", {})


def results_table(results: dict) -> pd.DataFrame:
    """Systems x headline metrics, in the saved order."""
    from core.retrieval.metrics import HEADLINE

    rows = [{"system": n, **{c: results["systems"][n][c] for c in HEADLINE}} for n in results["order"]]
    return pd.DataFrame(rows).set_index("system")


def _json_default(o):  # pragma: no cover - numpy scalars in configs
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


def dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, indent=1)

"""The run folder: its layout and every read and write of it, in one place.

A run folder (``<workspace>/runs/<run id>/``, made by ``Store.create_run``) holds::

    config.json        the run spec (``core.tuning.spec.RunSpec.to_dict``): :func:`read_config` / :func:`write_config`
    data/              the data the run was scored on, copied at its start: train.json, eval.json and the
                       expert's judgments.json as they were then (:func:`write_data`, :func:`read_data`,
                       :func:`judgments_at_start`)
    results.json       ``RunResults.to_dict()`` (:func:`save_results` / :func:`load_results`)
    per_query.csv      one row per evaluation question: question, then '<role>|<metric>' columns
    rankings.json      {role: {question id: [[top-10 passage ids], [scores]]}}
    rankings_deep.npz  every system's top 100 passage ids per question (re-scoring after judging)
    vectors/           base_q, base_d, tuned_q, tuned_d (+ base_w, tuned_w, owner) .npy, memory-mapped on reading
    progress.jsonl     the job's events (phase, progress, loss, evaluation, note), appended as they come
    error.json         why a failed run failed (message and traceback)
    status.json        the catalog's row of the run, mirrored after each change
    ending.json        reserved at the start, overwritten in place at the end (works on a full disk)
    <method files>     what the method's fit saved (model/, adapter.npz, nudged.npy, ...): each method names
                       its own files; :func:`artifact` gives their paths

Every write is atomic (a temporary file, then ``os.replace``: ``core.workspace.files``), so a reader
never sees half a file. Results saved in older formats are upgraded in place on first read.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.dataset import QADataset
from core.npyio import load_npy, load_npz
from core.retrieval.evaluation import Conditions, RetrievalResult
from core.retrieval.fusion import FusionChoice
from core.retrieval.results import LEGACY_ORDER, NOT_RECORDED, RunResults
from core.workspace.files import append_jsonl, atomic_write_bytes, atomic_write_json, read_json, read_jsonl

logger = logging.getLogger(__name__)

CONFIG = "config.json"
RESULTS = "results.json"
PER_QUERY = "per_query.csv"
RANKINGS = "rankings.json"
DEEP_FILE = "rankings_deep.npz"
VECTORS = "vectors"
DATA = "data"
JUDGMENTS = "judgments.json"
PROGRESS = "progress.jsonl"
ERROR = "error.json"
STATUS = "status.json"  # the catalog row, mirrored for someone reading the folder alone
ENDING_FILE = "ending.json"  # reserved at a run's start, overwritten in place at its end (see reserve_ending)
ENDING_BYTES = 4096
MODEL = "model"  # the full fine-tune's model folder (a method's files are named by the method)
TOP_SAVED = 10  # ranked docs per question kept in rankings.json for the comparison pages
DEEP_SAVED = 100  # ranked passage ids per question kept in rankings_deep.npz (re-scoring: MAP@100)
VECTOR_NAMES = ("base_q", "base_d", "tuned_q", "tuned_d", "base_w", "tuned_w", "owner")


def artifact(run_dir: str | Path, name: str) -> Path:
    """The path of a file or folder a method saves in the run folder (``model``, ``adapter.npz``, ...)."""
    return Path(run_dir) / name


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """config.json: the run's spec as a dict (raises when the folder has none)."""
    return json.loads((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))


def write_config(run_dir: str | Path, config: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / CONFIG, config)


def write_data(run_dir: str | Path, train: QADataset, ev: QADataset | None, judgments: bytes | None) -> None:
    """Copy the data a run is scored on into ``data/`` (and the judgments as they are now)."""
    d = Path(run_dir) / DATA
    atomic_write_json(d / "train.json", train.to_json())
    if ev is not None:
        atomic_write_json(d / "eval.json", ev.to_json())
    if judgments is not None:
        atomic_write_bytes(d / JUDGMENTS, judgments)


def read_data(run_dir: str | Path) -> tuple[QADataset, QADataset | None] | None:
    """The run's own copy of (train, eval); None for runs made before copies were kept."""
    d = Path(run_dir) / DATA
    if not (d / "train.json").exists():
        return None
    ev = read_json(d / "eval.json")
    return QADataset.from_json(read_json(d / "train.json")), (QADataset.from_json(ev) if ev else None)


def write_eval(run_dir: str | Path, ev: QADataset) -> bool:
    """Replace the run's copy of its evaluation questions (judged passages added to the labels); False (nothing
    written) for a run made before copies were kept, which reads its dataset."""
    d = Path(run_dir) / DATA
    if not (d / "train.json").exists():
        return False
    atomic_write_json(d / "eval.json", ev.to_json())
    return True


def judgments_at_start(run_dir: str | Path) -> dict | None:
    """The expert's judgments as they were when the run started; None when no copy was made (none existed
    then, or the run predates copies). Raises ValueError when the copy is not valid JSON."""
    path = Path(run_dir) / DATA / JUDGMENTS
    if not path.exists():
        return None
    return read_json(path, {}) or {}


def progress_file(run_dir: str | Path) -> Path:
    return Path(run_dir) / PROGRESS


def append_progress(run_dir: str | Path, event: dict[str, Any]) -> None:
    append_jsonl(Path(run_dir) / PROGRESS, event)


def read_progress(run_dir: str | Path) -> list[Any]:
    return read_jsonl(Path(run_dir) / PROGRESS)


def write_error(run_dir: str | Path, message: str, traceback: str) -> None:
    atomic_write_json(Path(run_dir) / ERROR, {"error": message, "traceback": traceback})


def write_status(run_dir: str | Path, row: dict[str, Any]) -> None:
    atomic_write_json(Path(run_dir) / STATUS, row)


def read_status(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / STATUS, {}) or {}


def is_run_folder(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run (its config.json)."""
    return (Path(run_dir) / CONFIG).exists()


def read_error(run_dir: str | Path) -> dict:
    return read_json(Path(run_dir) / ERROR, {}) or {}


def read_ending(run_dir: str | Path) -> dict:
    """How the run ended as recorded in ending.json ({} while reserved or when missing)."""
    path = Path(run_dir) / ENDING_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8").strip() or "{}")


def reserve_ending(run_dir: str | Path) -> None:
    """Write the run's ending file (:data:`ENDING_BYTES` of blanks) while there is space, so its end can be
    recorded later by overwriting it in place (:func:`write_ending`) even when the disk has filled up."""
    atomic_write_bytes(Path(run_dir) / ENDING_FILE, b" " * ENDING_BYTES)


def write_ending(run_dir: str | Path, status: str, error: str | None) -> bool:
    """Record how a run ended in its reserved ending file, in place (no new disk block); False if it cannot."""
    path = Path(run_dir) / ENDING_FILE
    blob = json.dumps({"status": status, "error": error, "at": time.time()}, ensure_ascii=False).encode("utf-8")
    if not path.exists() or len(blob) > ENDING_BYTES:
        return False
    try:
        with open(path, "r+b") as fh:
            fh.write(blob + b" " * (ENDING_BYTES - len(blob)))
            fh.flush()
            os.fsync(fh.fileno())
        return True
    except OSError:
        return False


def save_results(run_dir: str | Path, results: RunResults, per_query: pd.DataFrame, questions: dict[str, str],
                 systems: dict[str, RetrievalResult]) -> None:
    """Write results.json, per_query.csv, rankings.json and vectors/ (see the module docstring)."""
    run_dir = Path(run_dir)
    pq = per_query.copy()
    pq.insert(0, "question", [questions[q] for q in pq.index])
    atomic_write_bytes(run_dir / PER_QUERY, pq.to_csv().encode("utf-8"))
    arrays = vectors_of(systems)
    if arrays is not None:
        save_vectors(run_dir, arrays)
    atomic_write_json(run_dir / RANKINGS, rankings_of(systems))
    save_deep_rankings(run_dir, {role: dict(zip(r.query_ids, r.ids)) for role, r in systems.items()})
    atomic_write_json(run_dir / RESULTS, results.to_dict())


def rankings_of(systems: dict[str, RetrievalResult]) -> dict[str, dict[str, list]]:
    """What rankings.json holds: {role: {question id: [[top ``TOP_SAVED`` ids], [their scores]]}}."""
    return {role: {q: [ids[:TOP_SAVED], [round(s, 5) for s in sc[:TOP_SAVED]]]
                   for q, ids, sc in zip(r.query_ids, r.ids, r.scores)} for role, r in systems.items()}


def vectors_of(systems: dict[str, RetrievalResult]) -> dict[str, np.ndarray] | None:
    """What vectors/ holds (``VECTOR_NAMES``) from the base and tuned systems' vectors; None without them."""
    base, tuned = systems.get("base"), systems.get("tuned")
    if base is None or tuned is None or base.vectors is None or tuned.vectors is None:
        return None
    arrays = {"base_q": base.vectors[0], "base_d": base.vectors[1], "tuned_q": tuned.vectors[0],
              "tuned_d": tuned.vectors[1]}
    if base.windows is not None and tuned.windows is not None:  # windowed passages: search by best window
        arrays |= {"base_w": base.windows[0], "tuned_w": tuned.windows[0], "owner": base.windows[1]}
    return arrays


def save_deep_rankings(run_dir: str | Path, rankings: dict[str, dict[str, list[str]]]) -> None:
    """rankings_deep.npz: each role's top ``DEEP_SAVED`` passage ids per question (see the module docstring)."""
    roles = list(rankings)
    qids = list(next(iter(rankings.values()), {}))
    vocab = list(dict.fromkeys(d for r in roles for q in qids for d in rankings[r].get(q, [])[:DEEP_SAVED]))
    row = {d: i for i, d in enumerate(vocab)}
    arrays = {"query_ids": np.array(qids, dtype=str), "passage_ids": np.array(vocab, dtype=str)}
    for r in roles:
        m = np.full((len(qids), DEEP_SAVED), -1, dtype=np.int32)
        for i, q in enumerate(qids):
            ids = rankings[r].get(q, [])[:DEEP_SAVED]
            m[i, :len(ids)] = [row[d] for d in ids]
        arrays[f"rank_{r}"] = m
    path = Path(run_dir) / DEEP_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(path)


def load_deep_rankings(run_dir: str | Path) -> dict[str, dict[str, list[str]]] | None:
    """{role: {question id: [top-100 passage ids]}} from rankings_deep.npz; None for runs saved before it."""
    path = Path(run_dir) / DEEP_FILE
    if not path.exists():
        return None
    z = load_npz(path)
    qids, vocab = [str(q) for q in z["query_ids"]], z["passage_ids"]
    out = {}
    for key, m in z.items():
        if key.startswith("rank_"):
            out[key[5:]] = {q: vocab[row[row >= 0]].tolist() for q, row in zip(qids, m)}
    return out


def save_vectors(run_dir: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """One .npy file per array under ``run_dir/vectors/`` (each written whole, then renamed)."""
    folder = Path(run_dir) / VECTORS
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        tmp = folder / f".{name}.npy.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
        tmp.replace(folder / f"{name}.npy")


def load_vectors(run_dir: str | Path) -> dict[str, np.ndarray] | None:
    """A run's saved vectors, memory-mapped (read lazily from disk); None when it has none. Runs saved
    before vectors/ existed have one vectors.npz, read whole."""
    folder = Path(run_dir) / VECTORS
    if (folder / "base_d.npy").exists():
        return {n: load_npy(folder / f"{n}.npy", mmap=True) for n in VECTOR_NAMES
                if (folder / f"{n}.npy").exists()}
    legacy = Path(run_dir) / "vectors.npz"
    if legacy.exists():
        with np.load(legacy, allow_pickle=False) as z:
            return {k: z[k] for k in z.files if k in VECTOR_NAMES}
    return None


def load_results(run_dir: str | Path) -> RunResults | None:
    """The results of a run folder (None when it has none); older formats are upgraded in place."""
    run_dir = Path(run_dir)
    d = read_json(run_dir / RESULTS)
    if d is None:
        return None
    if d.get("format") != 2:
        d = _upgrade_legacy(run_dir, d)
    return RunResults.from_dict(d)


def load_per_query(run_dir: str | Path) -> pd.DataFrame:
    """per_query.csv: 'question', then '<role>|<metric>' columns; question ids stay text."""
    path = Path(run_dir) / PER_QUERY
    first = pd.read_csv(path, nrows=0).columns[0]
    return pd.read_csv(path, index_col=0, dtype={first: str})


def load_rankings(run_dir: str | Path) -> dict[str, dict[str, list]]:
    return read_json(Path(run_dir) / RANKINGS, {}) or {}


def _upgrade_legacy(run_dir: Path, d: dict) -> dict:
    """Results saved by position ('order': [base, tuned, BM25, hybrid]) -> roles; files rewritten once."""
    order = list(d.get("order") or d.get("systems", {}))
    roles = dict(zip(order, LEGACY_ORDER))
    unknown = Conditions(int(d.get("n_eval_passages") or 0), NOT_RECORDED, int(d.get("n_eval_questions") or 0),
                         NOT_RECORDED)
    systems = {roles[n]: {"name": n, "metrics": {k: v for k, v in m.items() if k != "seconds"},
                          "seconds": m.get("seconds", 0.0), "conditions": unknown.to_dict()}
               for n, m in d.get("systems", {}).items() if n in roles}
    info = d.get("info", {}) or {}
    comps = [{**c, "a": roles.get(c["a"], c["a"]), "b": roles.get(c["b"], c["b"])} for c in d.get("comparisons", [])]
    new = {"format": 2, "method": info.get("method", "?"), "systems": systems, "comparisons": comps,
           "verdict": d.get("verdict", ""),
           "fusion": FusionChoice.from_dict({**info["fusion"], "fixed": False}).to_dict() if info.get("fusion") else None,
           "training": [], "question_origin": "as uploaded", "total_seconds": info.get("total_seconds", 0.0),
           "notes": ["Saved before runs recorded their conditions (passage token limits were not recorded)."]}
    pq_path = run_dir / PER_QUERY
    if pq_path.exists():
        pq = load_per_query(run_dir)
        pq.columns = [c if "|" not in c else f"{roles.get(c.split('|')[0], c.split('|')[0])}|{c.split('|')[1]}"
                      for c in pq.columns]
        atomic_write_bytes(pq_path, pq.to_csv().encode("utf-8"))
    rankings = load_rankings(run_dir)
    if rankings:
        atomic_write_json(run_dir / RANKINGS, {roles.get(k, k): v for k, v in rankings.items()})
    atomic_write_json(run_dir / RESULTS, new)
    logger.info("upgraded %s/results.json to the role-keyed format", run_dir.name)
    return new


def write_results(run_dir: str | Path, results: RunResults) -> None:
    """Rewrite results.json only (re-scoring after judging keeps the other files)."""
    atomic_write_json(Path(run_dir) / RESULTS, results.to_dict())


def write_per_query(run_dir: str | Path, per_query: pd.DataFrame) -> None:
    atomic_write_bytes(Path(run_dir) / PER_QUERY, per_query.to_csv().encode("utf-8"))

"""Workspace: a SQLite catalog of datasets and runs, plus one folder per dataset and run.

Layout under the workspace root (``$ETL_WORKSPACE``, default ``<project>/workspace``)::

    catalog.sqlite            datasets and runs tables (the index; folders hold the data)
    datasets/<id>/            train.json, eval.json (QADataset JSON), report.json, meta.json
    runs/<id>/                config.json, status.json, metrics.jsonl, model/, results ...
    cache/embeddings.sqlite   the embedding cache (core.retrieval.embedding.EmbeddingCache)

Permissions: one policy for the whole workspace, as for datasets: owner-only. Folders are 0700
(created by :class:`Store` and ``tempfile.mkdtemp``), files 0600 (``tempfile.mkstemp`` in
:func:`atomic_write_bytes`; writers that go through a library call :func:`owner_only`), so passage
text in maps, caches and exports is never readable by other users of the machine.

Every file is written to a temporary name and moved into place with ``os.replace``; a
dataset folder is complete before its catalog row exists, so a crash leaves either
nothing or a whole dataset. Each call opens its own SQLite connection, so one Store is
safe to share between threads (the UI's job thread and page scripts).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from core.dataset import DataError, QADataset, count_passages
from core.workspace import run_folder
from core.workspace.files import OWNER_ONLY_DIR, atomic_write_json, owner_only, read_json

logger = logging.getLogger(__name__)

ENV_VAR = "ETL_WORKSPACE"
RUN_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
ACTIVE_STATES = ("queued", "running")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, created REAL NOT NULL,
    n_train INTEGER, n_eval INTEGER, n_passages INTEGER, fingerprint TEXT, meta TEXT, updated REAL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT, dataset_id TEXT, method TEXT, status TEXT NOT NULL,
    created REAL NOT NULL, started REAL, ended REAL, pid INTEGER,
    config TEXT, metrics TEXT, error TEXT, heartbeat REAL
);
"""
_MIGRATIONS = (  # catalogs made before these columns existed
    ("runs", "ALTER TABLE runs ADD COLUMN heartbeat REAL"),
    ("datasets", "ALTER TABLE datasets ADD COLUMN updated REAL"),
)


def default_root() -> Path:
    """``$ETL_WORKSPACE`` if set, else ``workspace/`` beside the core package."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[2] / "workspace"


def _new_id(prefix: str) -> str:
    return f"{prefix}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class Store:
    """Catalog + folders under ``root`` (see module docstring)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_root()
        for sub in ("datasets", "runs", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for folder in (self.root, *(self.root / sub for sub in ("datasets", "runs", "cache"))):
            try:
                owner_only(folder)  # nothing inside is reachable by other users, whatever a library wrote
            except OSError as exc:  # a workspace on a file system without modes (e.g. a mounted share)
                logger.warning("could not make %s owner-only: %s", folder, exc)
        self.db_path = self.root / "catalog.sqlite"
        with closing(self._connect()) as con, con:
            con.execute("PRAGMA journal_mode=WAL")
            con.executescript(_SCHEMA)
            for table, stmt in _MIGRATIONS:
                if stmt.split()[5] not in {r[1] for r in con.execute(f"PRAGMA table_info({table})")}:
                    con.execute(stmt)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.db_path, timeout=30)
        con.row_factory = sqlite3.Row
        return con

    @property
    def cache_path(self) -> Path:
        return self.root / "cache" / "embeddings.sqlite"

    # ---- datasets -------------------------------------------------------------------
    def save_dataset(self, name: str, train: QADataset, eval: QADataset | None = None,
                     report: dict | None = None, meta: dict | None = None) -> str:
        """Write a dataset folder, then its catalog row; returns the new dataset id.

        A dataset whose ``meta["kind"]`` is ``"collection"`` holds passages without questions yet
        (documents or a vector-store export); its questions come later (``update_dataset``).

        Raises:
            DataError: empty name, a name already taken, an empty train split (an empty collection).
        """
        name = (name or "").strip()
        if not name:
            raise DataError("Give the dataset a name.")
        if (meta or {}).get("kind") == "collection":
            if not train.corpus:
                raise DataError(f"Collection {name!r} has no passages; nothing to save.")
        elif len(train) == 0:
            raise DataError(f"Dataset {name!r} has no question with a passage; nothing to save.")
        if self.find_dataset(name):
            raise DataError(f"A dataset named {name!r} already exists: choose another name or delete it first.")
        ds_id = _new_id("ds-")
        final = self.root / "datasets" / ds_id
        tmp = Path(tempfile.mkdtemp(dir=self.root / "datasets", prefix=".tmp-"))
        try:
            atomic_write_json(tmp / "train.json", train.to_json())
            if eval is not None:
                atomic_write_json(tmp / "eval.json", eval.to_json())
            atomic_write_json(tmp / "report.json", report or {})
            atomic_write_json(tmp / "meta.json", {"name": name, **(meta or {})})
            os.replace(tmp, final)
            n_pass = count_passages(train, eval)[0]  # cut copies of passages are not passages
            with closing(self._connect()) as con, con:
                now = time.time()
                con.execute(
                    "INSERT INTO datasets VALUES (?,?,?,?,?,?,?,?,?)",
                    (ds_id, name, now, len(train), len(eval) if eval else 0, n_pass,
                     train.fingerprint(), json.dumps(meta or {}), now),
                )
        except sqlite3.IntegrityError as exc:
            shutil.rmtree(final, ignore_errors=True)
            raise DataError(f"A dataset named {name!r} already exists: choose another name.") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            raise
        return ds_id

    def list_datasets(self) -> list[dict]:
        with closing(self._connect()) as con:
            return [dict(r) for r in con.execute("SELECT * FROM datasets ORDER BY created")]

    def find_dataset(self, name: str) -> dict | None:
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM datasets WHERE name=?", (name,)).fetchone()
        return dict(row) if row else None

    def get_dataset(self, ds_id: str) -> dict:
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM datasets WHERE id=?", (ds_id,)).fetchone()
        if row is None:
            raise KeyError(f"no dataset {ds_id}")
        return dict(row)

    def update_dataset(self, ds_id: str, train: QADataset | None = None, eval: QADataset | None = None,
                       meta: dict | None = None) -> None:
        """Replace a dataset's train and/or eval split (each written atomically) and merge ``meta`` into
        its metadata; the catalog's counts and ``updated`` time follow. Runs keep their own copy of
        the data they used, so changing a dataset never changes a finished run."""
        row = self.get_dataset(ds_id)
        d = self.dataset_dir(ds_id)
        old_train, old_eval = self.load_dataset(ds_id)
        train = train if train is not None else old_train
        eval = eval if eval is not None else old_eval
        if train is not old_train:
            atomic_write_json(d / "train.json", train.to_json())
        if eval is not old_eval and eval is not None:
            atomic_write_json(d / "eval.json", eval.to_json())
        new_meta = {**json.loads(row.get("meta") or "{}"), **(meta or {})}
        if meta:
            atomic_write_json(d / "meta.json", {"name": row["name"], **new_meta})
        n_pass = count_passages(train, eval)[0]  # cut copies of passages are not passages
        with closing(self._connect()) as con, con:
            con.execute("UPDATE datasets SET n_train=?, n_eval=?, n_passages=?, fingerprint=?, meta=?, updated=? "
                        "WHERE id=?", (len(train), len(eval) if eval else 0, n_pass, train.fingerprint(),
                                       json.dumps(new_meta), time.time(), ds_id))

    def dataset_dir(self, ds_id: str) -> Path:
        return self.root / "datasets" / ds_id

    def load_dataset(self, ds_id: str) -> tuple[QADataset, QADataset | None]:
        """(train, eval or None) of a saved dataset."""
        self.get_dataset(ds_id)
        d = self.dataset_dir(ds_id)
        train = QADataset.from_json(read_json(d / "train.json"))
        ev = read_json(d / "eval.json")
        return train, (QADataset.from_json(ev) if ev else None)

    def snapshot_run_data(self, run_id: str, dataset_id: str) -> tuple[QADataset, QADataset | None]:
        """Copy the dataset a run uses into its folder (``data/``) and return it: the run keeps the exact
        questions and passages it was scored on, even if the dataset changes later (labels added). The expert's
        judgments (``judgments.json``) are copied too: what was judged when the run started, told apart from what
        is judged later (``core.insight.judging``)."""
        train, ev = self.load_dataset(dataset_id)
        judged = self.dataset_dir(dataset_id) / "judgments.json"
        run_folder.write_data(self.run_dir(run_id), train, ev, judged.read_bytes() if judged.exists() else None)
        return train, ev

    def run_data(self, run_id: str) -> tuple[QADataset, QADataset | None]:
        """The (train, eval) a run was made on: its own copy, else (runs made before copies) its dataset."""
        own = run_folder.read_data(self.run_dir(run_id))
        return own if own is not None else self.load_dataset(self.get_run(run_id)["dataset_id"])

    def dataset_report(self, ds_id: str) -> dict:
        return read_json(self.dataset_dir(ds_id) / "report.json", {})

    def delete_dataset(self, ds_id: str) -> None:
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM datasets WHERE id=?", (ds_id,))
        shutil.rmtree(self.dataset_dir(ds_id), ignore_errors=True)

    # ---- runs -----------------------------------------------------------------------
    def create_run(self, dataset_id: str | None, method: str, config: dict, name: str | None = None) -> str:
        """Create a run folder with its config and a 'queued' catalog row."""
        run_id = _new_id("run-")
        d = self.run_dir(run_id)
        d.mkdir(parents=True, mode=OWNER_ONLY_DIR)
        run_folder.write_config(d, {**config, "method": method, "dataset_id": dataset_id})
        with closing(self._connect()) as con, con:
            con.execute(
                "INSERT INTO runs (id, name, dataset_id, method, status, created, pid, config)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (run_id, name or run_id, dataset_id, method, "queued", time.time(), os.getpid(), json.dumps(config)),
            )
        return run_id

    def scoring_data(self, run_id: str, *, fresh: bool = True) -> tuple[QADataset, QADataset | None, dict]:
        """(train, eval, the dataset's metadata) a run is scored on: ``fresh`` copies its dataset into the run
        folder now (a run starting), else reads the run's own copy (a re-scoring). The metadata is {} when the
        dataset was deleted since."""
        row = self.get_run(run_id)
        train, ev = self.snapshot_run_data(run_id, row["dataset_id"]) if fresh else self.run_data(run_id)
        try:
            meta = json.loads(self.get_dataset(row["dataset_id"]).get("meta") or "{}") if row["dataset_id"] else {}
        except KeyError:
            meta = {}
        return train, ev, meta

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Set catalog fields (status, started, ended, metrics, error, pid, name, heartbeat)."""
        allowed = {"status", "started", "ended", "metrics", "error", "pid", "name", "config", "heartbeat"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown run fields {bad}")
        if "status" in fields and fields["status"] not in RUN_STATES:
            raise ValueError(f"unknown status {fields['status']!r}")
        vals = {k: (json.dumps(v, default=str) if k in ("metrics", "config") else v) for k, v in fields.items()}
        with closing(self._connect()) as con, con:
            con.execute(
                f"UPDATE runs SET {', '.join(f'{k}=?' for k in vals)} WHERE id=?", (*vals.values(), run_id)
            )
        run_folder.write_status(self.run_dir(run_id), self.get_run(run_id))

    def get_run(self, run_id: str) -> dict:
        with closing(self._connect()) as con:
            row = con.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id}")
        return self._run_row(row)

    @staticmethod
    def _run_row(row: sqlite3.Row) -> dict:
        r = dict(row)
        for k in ("config", "metrics"):
            r[k] = json.loads(r[k]) if r.get(k) else {}
        return r

    def list_runs(self) -> list[dict]:
        with closing(self._connect()) as con:
            return [self._run_row(r) for r in con.execute("SELECT * FROM runs ORDER BY created DESC")]

    def delete_run(self, run_id: str) -> None:
        if self.get_run(run_id)["status"] in ACTIVE_STATES:
            raise ValueError("This run is still active: cancel it before deleting it.")
        with closing(self._connect()) as con, con:
            con.execute("DELETE FROM runs WHERE id=?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def mark_interrupted(self, stale_seconds: float, no_job_running: bool = False) -> list[str]:
        """Runs left queued/running whose job stopped become 'interrupted'.

        A running job refreshes its ``heartbeat`` every few seconds (``core.workspace.jobs``); a run
        whose last sign of life (heartbeat, else start, else creation) is older than
        ``stale_seconds`` has no process behind it any more. With ``no_job_running`` (nobody holds
        the workspace's job lock, so no process is executing a run), every 'running' run is
        interrupted at once.

        Returns:
            The ids marked interrupted.
        """
        now = time.time()
        marked = []
        for r in self.list_runs():
            if r["status"] not in ACTIVE_STATES:
                continue
            last = r.get("heartbeat") or r.get("started") or r["created"]
            if now - last <= stale_seconds and not (no_job_running and r["status"] == "running"):
                continue
            seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last))
            try:
                ending = run_folder.read_ending(self.run_dir(r["id"]))
            except (OSError, json.JSONDecodeError):
                ending = {}
            if ending.get("status") in ("done", "failed", "cancelled"):  # it ended, but the catalog missed it
                self.update_run(r["id"], status=ending["status"], ended=ending.get("at") or last,
                                error=ending.get("error"))
                marked.append(r["id"])
                continue
            self.update_run(r["id"], status="interrupted", ended=last,
                            error=f"The app or command running this run stopped while it was active (process "
                                  f"{r.get('pid') or '?'} ended: killed, crashed or restarted); last seen {seen}.")
            marked.append(r["id"])
        return marked

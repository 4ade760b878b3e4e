"""What the map and comparison pages need from a finished run, without re-encoding.

``open_run`` reads the run folder (eval split, results, rankings, saved vectors);
``RunView.search`` answers a free-text query with base and tuned side by side, loading
only the query encoders (the passage vectors come from the run's ``vectors/``, memory-mapped).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.dataset import QADataset, source_file
from core.insight.clouds import fit_clouds
from core.insight.matryoshka import quality_by_dimension
from core.insight.projection import Projection, ProjectionParams, fit_projection, retrieval_alignment
from core.insight.unchanged import base_unchanged
from core.retrieval.backends import with_backend
from core.retrieval.embedding import encode, load_model
from core.retrieval.index import DenseIndex
from core.retrieval.results import RunResults
from core.retrieval.windows import maxp_search
from core.tuning.methods import method_of
from core.tuning.runs import Finished
from core.tuning.spec import RunSpec
from core.workspace.files import owner_only
from core.workspace.run_folder import (
    load_per_query,
    load_rankings,
    load_results,
    load_vectors,
    rankings_of,
    vectors_of,
)
from core.workspace.store import Store

logger = logging.getLogger(__name__)

RING_DEPTHS = (10, 5, 3, 1)  # top passages per question a map guarantees, tried in this order
BY_DIMENSION_FILE = "by_dimension.csv"  # RunView.by_dimension's table, saved in the run folder
MAP_KEEP_CAP = 6000  # questions + kept passages above which the ring depth is lowered


@dataclass
class RunView:
    """A finished run's eval data, results and vectors (rows: ``query_ids`` / ``passage_ids``)."""

    run_id: str
    run_dir: Path
    spec: RunSpec
    eval: QADataset
    results: RunResults
    rankings: dict[str, Any]  # role -> {question id: [[top-10 ids], [scores]]}
    query_ids: list[str]
    passage_ids: list[str]
    base_q: np.ndarray
    base_d: np.ndarray
    tuned_q: np.ndarray
    tuned_d: np.ndarray
    # windowed passages: (W, dim) window vectors of each model and their passage rows (else None)
    base_w: np.ndarray | None = None
    tuned_w: np.ndarray | None = None
    owner: np.ndarray | None = None
    onnx_dir: Path | None = None  # the workspace's cache/onnx: free-text search encodes on the run's backend
    _encoders: dict[str, Any] = field(default_factory=dict, repr=False)
    _alignment: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    @property
    def method(self) -> str:
        return self.spec.method

    def per_query(self) -> pd.DataFrame:
        """per_query.csv: question, then '<role>|gold_rank', '<role>|MRR@10', ... per system."""
        return load_per_query(self.run_dir)

    def winners_losers(self) -> pd.DataFrame:
        """Per eval question: gold rank base -> tuned, its change and movement, best wins first."""
        pq = self.per_query()
        before, after = pq["base|gold_rank"], pq["tuned|gold_rank"]
        b, a = before.fillna(101), after.fillna(101)
        df = pd.DataFrame({"question": pq["question"], "rank before": before, "rank after": after,
                           "change": b - a})
        df["movement"] = np.where(a < b, "improved", np.where(a > b, "worsened", "same"))
        return df.sort_values(["change", "rank after"], ascending=[False, True])

    def gold_links(self, wl: pd.DataFrame | None = None) -> pd.DataFrame:
        """(query_id, passage_id, movement): each eval question to its first gold passage."""
        movement = (self.winners_losers() if wl is None else wl)["movement"]
        return pd.DataFrame({
            "query_id": self.query_ids,
            "passage_id": [self.eval.relevant_docs[q][0] for q in self.query_ids],
            "movement": [movement.get(q, "same") for q in self.query_ids],
        })

    def map_points(self, proj, wl: pd.DataFrame | None = None) -> pd.DataFrame:
        """A projection's points with their text, passage sources (label and file), each question's
        movement, for each answer passage the movement of the question it answers, and the hover text."""
        from core.insight.plots import hover_column  # heavy: plotly, loaded only when drawing

        path = self.run_dir / f"map-points-{proj.params.key()}.parquet"  # saved: hover texts take a second
        source = self.run_dir / f"projection-{proj.params.key()}.npz"
        if path.exists() and source.exists() and path.stat().st_mtime >= source.stat().st_mtime:
            try:
                pts = pd.read_parquet(path)
                if len(pts) == len(proj.points) and (pts["id"].to_numpy() == proj.points["id"].to_numpy()).all():
                    return pts
            except (OSError, ValueError, KeyError):
                pass
        movement = (self.winners_losers() if wl is None else wl)["movement"]
        answers = {}
        for q in self.query_ids:
            for d in self.eval.relevant_docs[q]:
                answers.setdefault(d, movement.get(q, "same"))
        pts = proj.points.copy()
        is_q = (pts["kind"] == "query").to_numpy()
        ids = pts["id"].astype(str)
        pts["text"] = [self.eval.queries.get(i, "") if q else self.eval.corpus.get(i, "") for i, q in zip(ids, is_q)]
        sources = [None if q else (self.eval.sources.get(i) or None) for i, q in zip(ids, is_q)]
        pts["source"] = sources
        pts["file"] = [source_file(s) if isinstance(s, str) else None for s in sources]  # NaN-safe: not from pts
        pts["movement"] = [movement.get(i) if q else None for i, q in zip(ids, is_q)]
        pts["answers"] = [None if q else answers.get(i) for i, q in zip(ids, is_q)]
        pts["hover"] = hover_column(pts)
        if source.exists():
            try:
                tmp = path.with_name(f".{path.name}.tmp")
                pts.to_parquet(tmp, index=False)
                owner_only(tmp)  # passage text: owner-only, like datasets
                tmp.replace(path)
            except (OSError, ValueError) as exc:
                logger.warning("could not save %s: %s", path, exc)
        return pts

    def map_keep(self) -> tuple[set[str], int]:
        """Passages every map of this run shows, and the ring depth that guarantees: each question's
        answer passages plus its top ``depth`` passages in both models (``depth`` 10, lowered for
        very large evaluation sets so the map stays under MAP_KEEP_CAP points)."""
        gold = {d for q in self.query_ids for d in self.eval.relevant_docs[q]}
        for depth in RING_DEPTHS:
            keep = set(gold)
            for role in ("base", "tuned"):
                for ranked in self.rankings.get(role, {}).values():
                    keep.update(ranked[0][:depth])
            if len(self.query_ids) + len(keep) <= MAP_KEEP_CAP or depth == RING_DEPTHS[-1]:
                return keep, depth
        raise AssertionError("unreachable")

    def projection(self, params, progress=None):
        """The run's 2-D maps for ``params``: read from the run folder, else fitted and saved there.

        Every evaluation question, its answer passages and the passages a question's rings can
        show (``map_keep``) are always on the map; only other passages are sampled.
        """
        path = self.run_dir / f"projection-{params.key()}.npz"
        if path.exists():
            try:
                return Projection.load(path)
            except (ValueError, OSError):
                path.unlink(missing_ok=True)  # unreadable (old format, torn): fit again
        keep, depth = self.map_keep()
        proj = fit_projection(self.query_ids, self.passage_ids, self.base_q, self.base_d, self.tuned_q,
                              self.tuned_d, params, progress=progress, keep_passage_ids=keep)
        proj.ring_depth = depth
        proj.save(path)
        return proj

    def by_dimension(self) -> pd.DataFrame:
        """``core.insight.matryoshka.quality_by_dimension`` of this run, saved in its folder once computed."""
        path = self.run_dir / BY_DIMENSION_FILE
        if path.exists():
            return pd.read_csv(path)
        table = quality_by_dimension(self)
        tmp = path.with_name(".by_dimension.csv.tmp")
        table.to_csv(tmp, index=False)
        owner_only(tmp)
        tmp.replace(path)
        return table

    def prepare(self, progress=None) -> None:
        """Compute what the Map and Compare pages show (the default map with its hover texts, quality by
        dimension, how questions meet their answers) and save it in the run folder, so those pages open at once
        even for a large collection."""
        self.by_dimension()
        self.alignment("base"), self.alignment("tuned")
        self.map_points(self.projection(ProjectionParams(), progress=progress))

    def alignment(self, space: str) -> dict[str, float]:
        """``core.insight.projection.retrieval_alignment`` of the base or tuned vectors (all passages)."""
        path = self.run_dir / "alignment.json"
        if not self._alignment and path.exists():  # saved by ``prepare`` or an earlier view
            try:
                self._alignment = {k: dict(v) for k, v in json.loads(path.read_text()).items()}
            except (OSError, ValueError, AttributeError):
                self._alignment = {}
        if space not in self._alignment:  # a pass over every passage: once per run
            row = {p: i for i, p in enumerate(self.passage_ids)}
            gold = [[row[d] for d in self.eval.relevant_docs[q] if d in row] for q in self.query_ids]
            q, d = (self.base_q, self.base_d) if space == "base" else (self.tuned_q, self.tuned_d)
            self._alignment[space] = retrieval_alignment(q, d, gold)
            try:
                tmp = path.with_name(".alignment.json.tmp")
                tmp.write_text(json.dumps(self._alignment))
                tmp.replace(path)
            except OSError:
                logger.warning("could not save %s", path)
        return dict(self._alignment[space])

    def _encoder(self, which: str):
        """A function text -> (dim,) query vector for 'base' or 'tuned' (models loaded once, on the
        encoding backend the run was scored with)."""
        if which in self._encoders:
            return self._encoders[which]
        tokens = self.spec.scoring.passage_tokens  # the limit both models were scored with
        backend = self.spec.scoring.backend
        method = method_of(self.method)  # how the method's tuned side is rebuilt from the run folder
        if which == "tuned" and method.tuned_model is not None:
            model = with_backend(method.tuned_model(self.run_dir, self.spec, None), backend, self.onnx_dir)
            model.max_seq_length = tokens
            self._encoders["_tuned_model"] = model
        else:
            model = self._encoders.get("_base_model") or with_backend(load_model(self.spec.base_model), backend,
                                                                      self.onnx_dir)
            model.max_seq_length = tokens
            self._encoders["_base_model"] = model
        move = method.query_transform(self.run_dir) if which == "tuned" and method.query_transform else None
        if move is not None:
            fn = lambda t: move(encode(model, [t], kind="query"))[0]  # noqa: E731
        else:
            fn = lambda t: encode(model, [t], kind="query")[0]  # noqa: E731
        self._encoders[which] = fn
        return fn

    def search(self, text: str, k: int = 10) -> dict[str, pd.DataFrame]:
        """Top ``k`` passages for ``text`` from base and tuned, side by side.

        Returns:
            {"base": df, "tuned": df}; each df has rank, passage_id, score, passage, source,
            gold (True when ``text`` is an eval question and this is its passage) and
            other_rank (this passage's rank in the other system's top 100, NaN if absent).
        """
        text = (text or "").strip()
        if not text:
            raise ValueError("Type a question first.")
        gold: set[str] = set()
        for q in self.query_ids:
            if self.eval.queries[q].strip().lower() == text.lower():
                gold = set(self.eval.relevant_docs[q])
                break
        out = {}
        full = {}
        for space, mat, win in (("base", self.base_d, self.base_w), ("tuned", self.tuned_d, self.tuned_w)):
            qv = self._encoder(space)(text)[None, :]
            if win is not None:  # the run searched by each passage's best window: so does this
                ids, scores = maxp_search(qv, win, self.owner, self.passage_ids, 100)
            else:
                ids, scores = DenseIndex(self.passage_ids, mat, kind="exact").search(qv, 100)
            full[space] = (ids[0], scores[0])
        for space, other in (("base", "tuned"), ("tuned", "base")):
            ids, scores = full[space]
            other_rank = {d: r + 1 for r, d in enumerate(full[other][0])}
            out[space] = pd.DataFrame({
                "rank": range(1, min(k, len(ids)) + 1),
                "passage_id": ids[:k],
                "score": scores[:k],
                "passage": [self.eval.corpus[d] for d in ids[:k]],
                "source": [self.eval.sources.get(d, "") for d in ids[:k]],
                "gold": [d in gold for d in ids[:k]],
                "other_rank": [other_rank.get(d, np.nan) for d in ids[:k]],
            })
        return out


def finished_view(store: Store, run_id: str, done: Finished) -> RunView:
    """The view of a run that has just finished, from what it holds in memory: what ``open_run`` would read
    back from the files the run has just saved (a test holds that the two views agree).

    Raises:
        FileNotFoundError: the run kept no base and tuned vectors (``open_run`` would find none saved).
    """
    vecs = vectors_of(done.systems)
    if vecs is None:
        raise FileNotFoundError(f"Run {run_id} kept no vectors to draw its maps from.")
    return RunView(run_id=run_id, run_dir=store.run_dir(run_id), spec=done.spec, eval=done.eval,
                   results=done.results, rankings=rankings_of(done.systems), query_ids=done.eval.query_ids,
                   passage_ids=list(done.eval.corpus), **vecs, onnx_dir=store.cache_path.parent / "onnx")


def open_run(store: Store, run_id: str) -> RunView:
    """Load a finished run's view (no model, no encoding).

    Raises:
        FileNotFoundError: the run has no saved results or vectors (not finished, or failed).
    """
    run = store.get_run(run_id)
    run_dir = store.run_dir(run_id)
    results = load_results(run_dir)
    vecs = load_vectors(run_dir)
    if vecs is None or results is None:
        raise FileNotFoundError(f"Run {run_id} has no results yet (status: {run['status']}).")
    _, ev = store.run_data(run_id)
    return RunView(run_id=run_id, run_dir=run_dir, spec=RunSpec.load(run_dir), eval=ev, results=results,
                   rankings=load_rankings(run_dir), query_ids=ev.query_ids, passage_ids=list(ev.corpus), **vecs,
                   onnx_dir=store.cache_path.parent / "onnx")

def fmt_rank(r) -> str:
    """A gold or passage rank for display: '3', or '>100' when it was not in the top 100."""
    return ">100" if r is None or (isinstance(r, float) and np.isnan(r)) else str(int(r))


def rank_change(before, after) -> str:
    """'5 → 1 ▲4': a rank with the base model, then with the tuned model, and which way it moved."""
    b = 101 if before is None or (isinstance(before, float) and np.isnan(before)) else int(before)
    a = 101 if after is None or (isinstance(after, float) and np.isnan(after)) else int(after)
    arrow = f" ▲{b - a}" if a < b else f" ▼{a - b}" if a > b else ""
    if ">" in fmt_rank(before) or ">" in fmt_rank(after):
        arrow = arrow[:2]  # moved into or out of the top 100: by how much is unknown
    return f"{fmt_rank(before)} → {fmt_rank(after)}{arrow}"


def ranks_table(wl: pd.DataFrame) -> pd.DataFrame:
    """The winners/losers frame for display: ranks as text ('>100'), the change as 'base → tuned'."""
    return pd.DataFrame({
        "question": wl["question"],
        "base → tuned": [rank_change(b, a) for b, a in zip(wl["rank before"], wl["rank after"])],
        "places gained": wl["change"].astype(int),
        "movement": wl["movement"],
    }, index=wl.index)


def search_table(df: pd.DataFrame, space: str, preview: int = 160) -> pd.DataFrame:
    """A ``RunView.search`` result of ``space`` for display: ✓ on the known answer, each passage's rank
    with the base model → with the tuned model, a preview of the passage (select a row to read it all)."""
    base, tuned = (df["rank"], df["other_rank"]) if space == "base" else (df["other_rank"], df["rank"])
    return pd.DataFrame({
        "rank": df["rank"],
        "answer": ["✓" if g else "" for g in df["gold"]],
        "score": df["score"].round(3),
        "base → tuned": [rank_change(b, t) for b, t in zip(base, tuned)],
        "passage": [p if len(p) <= preview else p[:preview].rstrip() + "…" for p in df["passage"]],
        "source": df["source"],
    })


CLOUDS_FILE = "clouds-{key}.npz"  # the "questions vs passages" pictures of a run (one frame, uniform passages)


def clouds_projection(view: RunView, params, progress=None):
    """The run's "questions vs passages" pictures for ``params`` (``core.insight.clouds.fit_clouds``): read
    from the run folder, else fitted once and saved there (no labels enter it: re-scoring leaves it valid)."""
    path = view.run_dir / CLOUDS_FILE.format(key=params.key())
    if path.exists():
        try:
            return Projection.load(path)
        except (ValueError, OSError):
            path.unlink(missing_ok=True)  # unreadable (old format, torn): fit again
    proj = fit_clouds(view.query_ids, view.passage_ids, view.base_q, view.base_d, view.tuned_q, view.tuned_d,
                      params, progress=progress)
    proj.save(path)
    return proj


def unchanged_note(view: RunView) -> str | None:
    """Why the run's tuned model is the base model unchanged (``core.insight.unchanged.base_unchanged``, or its
    stored vectors equal the base model's), in a sentence; None when it changed."""
    note = base_unchanged(view.run_dir)
    if note is None and np.array_equal(view.base_q, view.tuned_q) and np.array_equal(view.base_d, view.tuned_d):
        note = "The tuned model's vectors equal the base model's: the tuned model is the base model unchanged."
    return note

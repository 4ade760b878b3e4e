"""The catalog as tables: run history and saved datasets, as the Runs and Data pages show them."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pandas as pd

from core.retrieval.results import RunResults
from core.tuning.methods import fitted
from core.workspace.store import Store


def dataset_choices(store: Store) -> list[dict]:
    """Saved datasets in the order a picker offers them: the user's own, newest first, then the bundled
    sample (so a user's new dataset is the default, even if the sample was added again later)."""
    newest = list(reversed(store.list_datasets()))
    is_sample = [json.loads(d.get("meta") or "{}").get("origin") == "sample_data" for d in newest]
    return [d for d, s in zip(newest, is_sample) if not s] + [d for d, s in zip(newest, is_sample) if s]


NOT_TUNING = ("generate",)  # run methods that tune nothing (question generation): shown on their own page
EXPLORABLE = fitted()  # runs with a map and a comparison of their own (the registry's methods with a fit)


def done_runs(store: Store) -> list[dict]:
    """Finished tuning runs, newest first: a shoot-out has no map or comparison of its own (its method runs
    do), a base-model comparison or a question-generation run tunes nothing."""
    return [r for r in store.list_runs() if r["status"] == "done" and r["method"] in EXPLORABLE]


def dataset_names(store: Store) -> dict[str, str]:
    return {d["id"]: d["name"] for d in store.list_datasets()}


def run_label(run: dict, names: dict[str, str]) -> str:
    created = time.strftime("%d %b %H:%M", time.localtime(run["created"]))
    return f"{run.get('name') or run['id']} · {run['method']} · {names.get(run.get('dataset_id'), '?')} · {created}"



def runs_frame(runs: list[dict], names: dict[str, str]) -> pd.DataFrame:
    """The run history as a display table (newest first)."""
    rows = []
    for r in runs:
        m = r.get("metrics") or {}
        rows.append(
            {
                "name": r.get("name") or r["id"],
                "status": r["status"],
                "method": r["method"],
                "dataset": names.get(r.get("dataset_id"), "(deleted)"),
                "created": datetime.fromtimestamp(r["created"]),
                # Text, so a run without scores (running, failed, a model comparison) reads "—", not "None";
                # not a plain "-", which the CSV download guard would show as "'-" (a formula guard)
                **{k: "—" if m.get(k) is None else f"{m[k]:.3f}" for k in ("Accuracy@10", "MRR@10", "nDCG@10")},
                "id": r["id"],
            }
        )
    return pd.DataFrame(rows)


def datasets_frame(store: Store) -> pd.DataFrame:
    rows = [
        {
            "name": d["name"],
            "train questions": d["n_train"],
            "eval questions": d["n_eval"],
            "passages": d["n_passages"],
            "created": datetime.fromtimestamp(d["created"]),
        }
        for d in reversed(store.list_datasets())
    ]
    return pd.DataFrame(rows)



def not_comparable(a: RunResults, b: RunResults) -> list[str]:
    """Why two runs' scores cannot be set side by side, one reason a line; [] when both were scored on the
    same evaluation questions (texts and answer passages) over the same passages. A score is an average over
    the questions asked and a rank among the passages searched: change either and the numbers measure
    something else (issue 27: runs of 271 and of 19 evaluation questions were shown side by side)."""
    ca, cb = a.systems["base"].conditions, b.systems["base"].conditions
    out = []
    if ca.questions_fingerprint != cb.questions_fingerprint:
        out.append(f"different evaluation questions ({ca.questions:,} vs {cb.questions:,})" if ca.questions !=
                   cb.questions else f"different evaluation questions or answer passages (both {ca.questions:,}, "
                   "not the same ones)")
    if ca.passages_fingerprint != cb.passages_fingerprint:
        out.append(f"different passages searched ({ca.passages:,} vs {cb.passages:,})" if ca.passages != cb.passages
                   else f"different passages searched (both {ca.passages:,}, not the same ones)")
    return out

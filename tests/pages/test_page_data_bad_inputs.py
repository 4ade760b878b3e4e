"""Every bad input of tests/ingest/test_bad_inputs.py, uploaded through the Data page.

For each case, one fresh AppTest (no embedding model is loaded: answers are linked without the
'match by meaning' option): upload the files, then check that

* the page shows a message matching the case's pattern (what, where, what to do);
* nothing was written to the store by the upload (same datasets, no half-written folder);
* a refused file offers no Save button;
* a file that loads (perhaps with warnings) saves, on the user's click, exactly one dataset that
  holds only the clean rows (the case's check runs on train + eval as read back from disk).

Set $ETL_BAD_INPUTS_LOG to a file path to append what the page showed for each case as JSON lines
(that is how the messages in docs/HARDENING.md were collected).
"""

from __future__ import annotations

import json
import os

import pytest

from core.dataset import QADataset
from core.workspace.store import Store
from tests.ingest.test_bad_inputs import CASES, LOADED, REFUSED, SPLIT_REFUSED, WARNING, Case, matches
from tests.pages.conftest import open_app, texts


def merged(train: QADataset, ev: QADataset | None) -> QADataset:
    """Train and eval of a saved dataset as one (what the case checks look at)."""
    parts = [train] + ([ev] if ev is not None else [])
    return QADataset(
        queries={q: t for p in parts for q, t in p.queries.items()},
        corpus={d: t for p in parts for d, t in p.corpus.items()},
        relevant_docs={q: ds for p in parts for q, ds in p.relevant_docs.items()},
    )


def stray_folders(store: Store) -> list[str]:
    """Anything in datasets/ that is not a saved dataset (a half-written save)."""
    known = {d["id"] for d in store.list_datasets()}
    folder = store.root / "datasets"
    return sorted(p.name for p in folder.iterdir() if p.name not in known) if folder.exists() else []


def record(case: Case, at) -> None:
    path = os.environ.get("ETL_BAD_INPUTS_LOG")
    if not path:
        return
    shown = {
        kind: [str(e.value) for e in getattr(at, kind)] for kind in ("error", "warning", "info", "caption")
    }
    shown["report"] = [str(m.value) for m in at.markdown if str(m.value).startswith("**")]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": case.id, **shown}, ensure_ascii=False) + "\n")


def params():
    for case in CASES:
        marks = [pytest.mark.xfail(reason=case.page_xfail, strict=True)] if case.page_xfail else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", params())
def test_bad_input_through_data_page(case: Case, workspace):
    store = Store(workspace)
    at = open_app()
    assert not at.exception
    before = {d["id"] for d in store.list_datasets()}

    if case.docs:
        docs = case.docs()
        at.file_uploader(key="etl_doc_files").set_value([(n, b, "application/octet-stream") for n, b in docs])
    qa = case.qa()
    at.file_uploader(key="etl_qa_files").set_value([(n, b, "application/octet-stream") for n, b in qa]).run()
    assert not at.exception, at.exception
    shown = texts(at)
    record(case, at)

    # The upload alone writes nothing.
    assert {d["id"] for d in store.list_datasets()} == before
    assert stray_folders(store) == []

    save = [b for b in at.button if b.label == "Save dataset"]
    if case.outcome in (REFUSED, SPLIT_REFUSED):
        assert not save, "a refused file must not offer Save"
        assert at.error or at.info, "a refused file must say why"
        if case.outcome == REFUSED and not case.docs:
            assert at.error  # the refusal is an error box, not a hint
    else:
        assert case.outcome in (LOADED, WARNING)
        if case.outcome == WARNING:
            assert at.warning, "a file loaded with problems must show a warning"
        at.text_input(key="etl_ds_name").set_value(f"bad input {case.id}")
        save[0].click().run()
        assert not at.exception, at.exception
        assert f"Saved dataset “bad input {case.id}”" in texts(at)
        new = [d for d in store.list_datasets() if d["id"] not in before]
        assert len(new) == 1 and stray_folders(store) == []
        if case.check is not None:
            case.check(merged(*store.load_dataset(new[0]["id"])))

    assert matches(case.message, shown), shown

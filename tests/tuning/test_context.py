"""What every method's fit receives (core.tuning.context): positives as rows, progress that honours a cancel,
the encoding backend, and the base model's vectors as the run searches them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import core.tuning.context as context
from core.dataset import QADataset
from core.retrieval.embedding import EmbeddingCache
from core.retrieval.evaluation import encode_dataset
from core.tuning.context import FitContext, on_backend, positives
from core.tuning.spec import RunSpec, Scoring
from core.workspace.jobs import Cancelled, Reporter
from tests.conftest import make_tiny_dataset


class Recorder(Reporter):
    def __init__(self, stop: bool = False):
        self.calls: list[tuple] = []
        self.stop = stop

    def phase(self, name, message=""):
        self.calls.append(("phase", name, message))

    def progress(self, done, total, unit="steps", epoch=None):
        self.calls.append(("progress", done, total, unit))

    def should_stop(self):
        return self.stop


def _ctx(spec: RunSpec, reporter: Reporter, base=None, cache=None, onnx_dir=None) -> FitContext:
    ds = make_tiny_dataset(6)
    return FitContext(spec=spec, base=base, train=ds, val=None, ev=ds, cache=cache, reporter=reporter,
                      run_dir=Path("run"), device="cpu", resume=False, onnx_dir=onnx_dir)


def test_positives_are_rows_of_the_given_ids_in_question_order():
    ds = QADataset({"a": "qa", "none": "no answer", "b": "qb", "c": "qc"}, {"d1": "x", "d2": "y", "d3": "z"},
                   {"a": ["d2"], "none": [], "b": ["d3", "d1"], "c": ["gone"]})
    # a question without a relevant passage has no row; a passage not in ids is left out
    assert positives(ds, ["d3", "d2", "d1"]) == [[1], [0, 2], []]


def test_progress_reports_and_a_cancel_stops_before_reporting():
    rec = Recorder()
    ctx = _ctx(RunSpec.for_method("adapter"), rec)
    ctx.progress(3, 10, "passages")
    assert rec.calls == [("progress", 3, 10, "passages")]
    rec.stop = True
    with pytest.raises(Cancelled):
        ctx.progress(4, 10, "passages")
    assert len(rec.calls) == 1


def test_the_torch_backend_is_the_model_itself_and_another_is_exported_with_progress(monkeypatch):
    rec = Recorder()
    model = object()
    spec = RunSpec.for_method("adapter")
    assert spec.scoring.backend == "torch"
    assert _ctx(spec, rec).encoder(model, "tuned") is model and rec.calls == []
    seen = {}

    def fake_with_backend(m, backend, onnx_dir, progress):
        seen.update(model=m, backend=backend, onnx_dir=onnx_dir)
        progress(1, 2, "files")
        return "wrapped"

    monkeypatch.setattr(context, "with_backend", fake_with_backend)
    onnx = RunSpec.for_method("adapter", scoring=Scoring(backend="onnx-int8"))
    assert on_backend(model, onnx, Path("cache/onnx"), rec, "base") == "wrapped"
    assert seen == {"model": model, "backend": "onnx-int8", "onnx_dir": Path("cache/onnx")}
    assert rec.calls[0][:2] == ("phase", "preparing") and "base model for the onnx-int8 backend" in rec.calls[0][2]
    assert rec.calls[1] == ("progress", 1, 2, "files")


@pytest.mark.slow
def test_vectors_and_search_vectors_are_the_base_models_at_the_runs_token_limit(model, tmp_path, monkeypatch):
    # the run sets the shared model's token limit: put it back afterwards (a later test read 64 from it)
    monkeypatch.setattr(model, "max_seq_length", model.max_seq_length)
    rec = Recorder()
    cache = EmbeddingCache(tmp_path / "cache.sqlite")
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=64))
    ctx = _ctx(spec, rec, base=model, cache=cache)
    q, d = ctx.vectors(ctx.ev, "the evaluation data")
    assert rec.calls[0] == ("phase", "encoding", "Encoding the evaluation data with the base model: 6 passages, "
                                                 "6 questions")
    assert model.max_seq_length == 64
    eq, ed = encode_dataset(model, ctx.ev, 64)
    np.testing.assert_allclose(q, eq, atol=1e-5)
    np.testing.assert_allclose(d, ed, atol=1e-5)
    sq, sd, windows = ctx.search_vectors(ctx.ev, "the evaluation data")
    assert windows is None  # passages whole: no windows
    np.testing.assert_allclose(sq, eq, atol=1e-5)
    windowed = _ctx(RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=16, windows=True,
                                                                  window_overlap=4)), rec, base=model, cache=cache)
    wq, wd, windows = windowed.search_vectors(windowed.ev, "the evaluation data")
    assert windows is not None and wd.shape[0] == len(windowed.ev.corpus)  # a passage's vector: its first window's

"""What the Compare page shows, as plain logic: ranks in words, direction of change, passage previews."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.insight.explore import fmt_rank, rank_change, ranks_table, search_table


def test_ranks_read_as_text_with_a_clear_direction():
    assert fmt_rank(3.0) == "3" and fmt_rank(np.nan) == ">100" and fmt_rank(None) == ">100"
    assert rank_change(5, 1) == "5 → 1 ▲4"  # moved up after tuning
    assert rank_change(1, 7) == "1 → 7 ▼6"
    assert rank_change(2, 2) == "2 → 2"
    assert rank_change(np.nan, 3) == ">100 → 3 ▲" and rank_change(4, np.nan) == "4 → >100 ▼"


def test_winners_losers_table_has_no_none_and_counts_places():
    wl = pd.DataFrame({"question": ["a", "b"], "rank before": [np.nan, 2.0], "rank after": [1.0, np.nan],
                       "change": [100.0, -99.0], "movement": ["improved", "worsened"]}, index=["q1", "q2"])
    t = ranks_table(wl)
    assert t["base → tuned"].tolist() == [">100 → 1 ▲", "2 → >100 ▼"]
    assert t["places gained"].tolist() == [100, -99] and list(t.index) == ["q1", "q2"]


def test_search_table_is_the_same_direction_on_both_sides():
    long = "word " * 100
    base = pd.DataFrame({"rank": [1, 2], "passage_id": ["p", "q"], "score": [0.9, 0.8], "passage": [long, "short"],
                         "source": ["a.pdf p.1", ""], "gold": [True, False], "other_rank": [3.0, np.nan]})
    t = search_table(base, "base")
    assert t["base → tuned"].tolist() == ["1 → 3 ▼2", "2 → >100 ▼"]  # base rank first, then tuned
    assert t["answer"].tolist() == ["✓", ""] and t["passage"][0].endswith("…") and len(t["passage"][0]) <= 161
    tuned = base.assign(other_rank=[3.0, np.nan])
    assert search_table(tuned, "tuned")["base → tuned"].tolist() == ["3 → 1 ▲2", ">100 → 2 ▲"]


def test_map_points_with_some_passages_without_a_source(tmp_path):
    """Passages with and without a source on one map (the e2e walk found a crash: None became NaN)."""
    from types import SimpleNamespace

    from core.dataset import QADataset
    from core.insight.explore import RunView

    ev = QADataset({"q1": "a question"}, {"d1": "one", "d2": "two"}, {"q1": ["d1"]}, sources={"d1": "manual.pdf p.2"})
    from core.insight.projection import ProjectionParams

    view = RunView.__new__(RunView)
    view.eval, view.query_ids, view.run_dir = ev, ["q1"], tmp_path
    view.winners_losers = lambda: pd.DataFrame({"movement": ["improved"]}, index=["q1"])
    pts = pd.DataFrame({"space": "base", "kind": ["query", "passage", "passage"], "id": ["q1", "d1", "d2"],
                        "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 2.0]})
    proj = SimpleNamespace(points=pts, params=ProjectionParams())
    (tmp_path / f"projection-{proj.params.key()}.npz").write_bytes(b"")  # the map's file: points are saved beside it
    first = RunView.map_points(view, proj)
    assert (tmp_path / f"map-points-{proj.params.key()}.parquet").exists()
    view.winners_losers = lambda: pytest.fail("the saved points are read, not rebuilt")
    again = RunView.map_points(view, proj)
    for out in (first, again):
        files, answers = out["file"].tolist(), out["answers"].tolist()
        assert files[1] == "manual.pdf" and pd.isna(files[0]) and pd.isna(files[2])
        assert answers[1] == "improved" and pd.isna(answers[0]) and pd.isna(answers[2])
        assert out["hover"].tolist()[0].startswith("<b>question</b> q1")
        assert "manual.pdf" in out["hover"].tolist()[1]


@pytest.mark.slow
def test_the_view_drawn_at_a_runs_end_is_the_view_its_files_give(tmp_path):
    """At the end of a run the maps are drawn from what the run holds in memory (``finished_view``), not from
    its files read back: that view must be the one ``open_run`` gives from the files the run has just saved."""
    import json

    import numpy as np

    from core.insight.explore import finished_view, open_run
    from core.sample import ensure_sample
    from core.tuning.runs import create_run, finish_method
    from core.tuning.spec import RunSpec
    from core.workspace.store import Store

    store = Store(tmp_path / "ws")
    run_id = create_run(store, ensure_sample(store)[0], RunSpec.for_method("adapter", epochs=2))
    done = finish_method(store, run_id, device="cpu")
    now, later = finished_view(store, run_id, done), open_run(store, run_id)
    assert (now.run_id, now.run_dir, now.onnx_dir) == (later.run_id, later.run_dir, later.onnx_dir)
    assert now.spec.to_dict() == later.spec.to_dict()
    assert now.results.to_dict() == later.results.to_dict()
    assert json.loads(json.dumps(now.rankings)) == later.rankings
    assert (now.query_ids, now.passage_ids) == (later.query_ids, later.passage_ids)
    assert now.eval.queries == later.eval.queries and now.eval.corpus == later.eval.corpus
    assert now.eval.relevant_docs == later.eval.relevant_docs
    for name in ("base_q", "base_d", "tuned_q", "tuned_d", "base_w", "tuned_w", "owner"):
        a, b = getattr(now, name), getattr(later, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
    assert now.tuned_q is not None and not np.array_equal(now.base_q, now.tuned_q)  # an adapter moved the queries

    done.systems.pop("tuned")
    with pytest.raises(FileNotFoundError, match="no vectors"):
        finished_view(store, run_id, done)

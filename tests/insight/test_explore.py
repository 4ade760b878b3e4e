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

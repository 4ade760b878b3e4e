"""Spreadsheet formulas in the CSVs the app hands out (OWASP CSV injection): guarded on the way out,
unchanged in what the lab trains on."""

from __future__ import annotations

import csv
import io

import pandas as pd

from core.csvsafe import neutralise, safe_frame, unguard, unguard_frame
from core.generate.pairs import GeneratedQuestion, pair_table
from core.ingest.qafiles import load_qa_file

HOSTILE = ["=cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0", "+1+1", "-2+3", "\t=1+1", "\r=1+1"]


def test_pair_file_cells_are_guarded_and_read_back_unchanged():
    passages = {f"p{i}": f"Passage {i} about pumps." for i in range(len(HOSTILE))}
    passages["p0"] = "=HYPERLINK(\"http://evil\", \"click\")"
    questions = [GeneratedQuestion(q, f"p{i}", "generated:llm:stub") for i, q in enumerate(HOSTILE)]
    data = pair_table(questions, passages)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[1:]
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert rows[0][0] == "'=cmd|' /C calc'!A0" and rows[0][1].startswith("'=HYPERLINK")
    loaded = load_qa_file("pairs.csv", data).dataset  # what `train --train pairs.csv` trains on
    # as written, apart from the loader's own whitespace clean-up (a leading tab or CR goes)
    assert set(loaded.queries.values()) == {" ".join(h.split()) for h in HOSTILE}
    assert passages["p0"] in loaded.corpus.values()


def test_helpers():
    assert [neutralise(v) for v in ("=1", "plain", "", 5, None)] == ["'=1", "plain", "", 5, None]
    assert unguard("'=1") == "=1" and unguard("'quoted'") == "'quoted'" and unguard("'") == "'"
    frame = pd.DataFrame({"question": HOSTILE, "n": range(len(HOSTILE))}, index=[f"-q{i}" for i in range(6)])
    shown = safe_frame(frame)
    assert all(v.startswith("'") for v in shown["question"]) and all(i.startswith("'") for i in shown.index)
    assert list(shown["n"]) == list(range(6)) and list(frame["question"]) == HOSTILE  # the original is untouched
    assert list(unguard_frame(shown)["question"]) == HOSTILE

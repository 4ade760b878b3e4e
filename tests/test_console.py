"""The console reporter (core.console): what PrintReporter prints on stderr, and a run's results as the CLI
prints them."""

from __future__ import annotations

import pandas as pd
import pytest

import core.console as console
from core.console import PrintReporter, print_run_results


@pytest.fixture
def clock(monkeypatch):
    """A monotonic clock the test moves by hand."""
    now = [1000.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: now[0])
    return now


def test_phase_note_loss_and_evaluation_lines(capsys):
    r = PrintReporter()
    r.phase("training", "Fitting the query adapter")
    r.note("a thing to know")
    r.evaluation(20, {"MRR@10": 0.51234, "Accuracy@10": 0.9, "nDCG@10": 0.6})
    out = capsys.readouterr()
    assert out.out == ""  # everything goes to stderr: stdout stays for --json
    assert out.err == ("\n[training] Fitting the query adapter\n  note: a thing to know\n"
                       "  validation at step 20: MRR@10 0.5123 Accuracy@10 0.9000\n")
    assert r.should_stop() is False


def test_loss_is_printed_every_tenth_step_only(capsys):
    r = PrintReporter()
    for step in range(1, 25):
        r.loss(step, 1.0 / step)
    assert capsys.readouterr().err == "  step 10 loss 0.1000\n  step 20 loss 0.0500\n"


def test_progress_is_throttled_to_every_two_seconds_but_the_last_step_always_shows(clock, capsys):
    r = PrintReporter()
    r.phase("encoding")
    capsys.readouterr()
    r.progress(1, 10, "passages")  # first report: shown
    clock[0] += 1.0
    r.progress(2, 10, "passages")  # within 2 s: not shown
    clock[0] += 1.5
    r.progress(3, 10, "passages")  # 2.5 s after the last shown: shown
    clock[0] += 0.1
    r.progress(10, 10, "passages")  # the end always shows
    r.progress(5, 0)  # no total: nothing to show
    assert capsys.readouterr().err.splitlines() == ["  encoding: 1/10 passages", "  encoding: 3/10 passages",
                                                   "  encoding: 10/10 passages"]


def test_progress_names_the_epoch_when_given(clock, capsys):
    r = PrintReporter()
    r.phase("training", "")
    capsys.readouterr()
    r.progress(4, 4, epoch=1.5)
    assert capsys.readouterr().err == "  training: 4/4 steps (epoch 1.50)\n"


class _Results:
    """The part of RunResults print_run_results reads."""

    def __init__(self, origin: str, headline: list[str]):
        self.question_origin = origin
        self.passage_tokens = 256
        self.verdict = "The tuned pipeline is better (interval above 0)."
        self._headline = headline

    def headline_lines(self):
        return self._headline

    def table(self):
        return pd.DataFrame({"nDCG@10": [0.512345, 0.6]}, index=["base", "tuned"])

    def comparisons_table(self):
        return pd.DataFrame({"comparison": ["tuned vs base"], "delta": [0.087655]})


def test_run_results_print_headline_tables_origin_and_verdict(capsys):
    print_run_results(_Results("human-labelled", ["hybrid (tuned): nDCG@10 0.70", "hybrid (base): 0.60"]))
    out = capsys.readouterr().out
    assert out.startswith("Best pipeline with tuning vs best without:\n  hybrid (tuned): nDCG@10 0.70\n"
                          "  hybrid (base): 0.60\n")
    assert "0.5123" in out and "0.0877" in out and "0.512345" not in out  # rounded to 4 places
    assert "tuned vs base" in out
    assert ("Evaluation questions: human-labelled; passages read at 256 tokens by base and tuned models."
            in out)
    assert "WARNING" not in out
    assert out.rstrip().endswith("The tuned pipeline is better (interval above 0).")


def test_generated_evaluation_questions_print_a_warning_and_no_headline_prints_none(capsys):
    print_run_results(_Results("generated", []))
    out = capsys.readouterr().out
    assert "Best pipeline" not in out
    warning = [line for line in out.splitlines() if line.startswith("WARNING: ")]
    assert len(warning) == 1 and "generated" in warning[0]

"""The full fine-tune's time budget (core.tuning.budget): which training pairs fit, spread over the passages."""

from __future__ import annotations

import dataclasses

import pytest

from core.dataset import QADataset
from core.tuning.budget import plan_budget, spread_subset
from core.tuning.cost import trainer_seconds
from core.tuning.methods.full import FullSettings


def _uneven() -> QADataset:
    """3 passages with 10, 1 and 1 questions, the crowded passage first."""
    queries = {f"a{i}": f"question {i} about pumps?" for i in range(10)} | {"b0": "valves?", "c0": "seals?"}
    rel = {q: ["dA"] for q in queries if q.startswith("a")} | {"b0": ["dB"], "c0": ["dC"]}
    corpus = {"dA": "pump maintenance " * 20, "dB": "valve repair " * 20, "dC": "seal wear " * 20}
    return QADataset(queries, corpus, rel)


def _many(n_passages: int = 300, per: int = 3) -> QADataset:
    queries, rel, corpus = {}, {}, {}
    for p in range(n_passages):
        corpus[f"d{p}"] = f"passage {p} " + "hydraulic pressure drops when the seal wears " * 8
        for j in range(per):
            queries[f"q{p}_{j}"] = f"why does pressure drop in unit {p} case {j}?"
            rel[f"q{p}_{j}"] = [f"d{p}"]
    return QADataset(queries, corpus, rel)


def _minutes_for(settings: FullSettings, ds: QADataset, pairs: int) -> float:
    """A budget (minutes) that fits ``pairs`` pairs at the estimate's rate."""
    return trainer_seconds(settings, ds) / len(ds.pairs()) * (pairs + 0.5) / 60


def test_a_budget_for_three_pairs_keeps_one_question_per_passage():
    ds = _uneven()
    kept = spread_subset(ds, 3, seed=0)
    assert len(kept) == 3
    assert sorted(kept.relevant_docs[q][0] for q in kept.query_ids) == ["dA", "dB", "dC"]
    assert kept.corpus == ds.corpus  # the corpus is kept whole (negatives, mining)
    settings = FullSettings(batch_size=2)
    plan = plan_budget(dataclasses.replace(settings, time_budget_minutes=_minutes_for(settings, ds, 3)), ds, seed=0)
    assert plan.cut and plan.kept_pairs == 3 and plan.kept_passages == plan.passages == 3


def test_the_subset_is_spread_over_all_passages_not_the_first_rows_and_repeats_with_the_seed():
    ds = _many()
    kept = spread_subset(ds, 450, seed=7)
    assert len(kept) == 450
    per_passage = {}
    for q in kept.query_ids:
        per_passage[kept.relevant_docs[q][0]] = per_passage.get(kept.relevant_docs[q][0], 0) + 1
    assert len(per_passage) == 300 and set(per_passage.values()) == {1, 2}  # every passage, then a second each
    assert kept.query_ids != ds.query_ids[:450]
    assert spread_subset(ds, 450, seed=7).query_ids == kept.query_ids  # the same seed: the same questions
    assert spread_subset(ds, 450, seed=8).query_ids != kept.query_ids
    fewer = spread_subset(ds, 100, seed=7)  # fewer pairs than passages: one question each, passages drawn
    assert len({fewer.relevant_docs[q][0] for q in fewer.query_ids}) == 100
    assert {fewer.relevant_docs[q][0] for q in fewer.query_ids} != {f"d{p}" for p in range(100)}


def test_nothing_is_dropped_when_the_budget_suffices_and_zero_means_no_limit():
    ds = _many()
    settings = FullSettings()
    full_min = trainer_seconds(settings, ds) / 60
    for minutes in (full_min * 1.01, 0.0):
        plan = plan_budget(dataclasses.replace(settings, time_budget_minutes=minutes), ds, seed=0)
        assert not plan.cut and plan.kept is ds and plan.kept_pairs == plan.pairs == 900
        assert plan.line() == "" and plan.line(done=False) == ""
    plan = plan_budget(dataclasses.replace(settings, time_budget_minutes=full_min * 0.99), ds, seed=0)
    assert plan.cut  # just under: a subset


def test_the_lines_say_what_was_left_out_and_what_more_time_would_buy():
    ds = _many()
    settings = FullSettings()
    minutes = _minutes_for(settings, ds, 450)
    plan = plan_budget(dataclasses.replace(settings, time_budget_minutes=minutes), ds, seed=0)
    assert plan.kept_pairs == 450 and plan.kept_seconds <= minutes * 60 < plan.full_seconds
    done = plan.line()
    assert done.startswith(f"Time budget {minutes:g} min: trained on 450 of 900 pairs (every passage kept at least "
                           "one question: 300 of 300) — all of them would take about ")
    assert done.endswith(" on this machine.")
    ahead = plan.line(done=False)
    assert "training on 450 of 900 pairs" in ahead and "450 left out" in ahead and "0 = no limit" in ahead
    small = plan_budget(dataclasses.replace(settings, time_budget_minutes=_minutes_for(settings, ds, 100)), ds, seed=0)
    assert "(spread over the passages: 100 of 300 kept a question)" in small.line()
    assert f"; {small.minutes * 2:g} min would train on {small.pairs_for(small.minutes * 2):,}" in small.line(done=False)


def test_a_tiny_budget_still_trains_one_batch():
    ds = _many()
    plan = plan_budget(FullSettings(time_budget_minutes=0.001, batch_size=32), ds, seed=0)
    assert plan.kept_pairs == 32


def test_the_estimate_trains_what_the_budget_keeps_and_says_what_it_leaves_out():
    from core.tuning.estimate import estimate_run
    from core.tuning.spec import RunSpec

    ds = _many()
    spec = RunSpec.for_method("full")
    spec.scoring.validation_share = 0.0
    spec.settings.time_budget_minutes = 0
    full = dict(estimate_run(spec, ds, ds).parts)["training"]
    spec.settings.time_budget_minutes = round(full / 60 / 3, 2)
    est = estimate_run(spec, ds, ds)
    assert dict(est.parts)["training"] <= spec.settings.time_budget_minutes * 60
    assert len(est.notes) == 1 and "left out" in est.notes[0] and "of 900 pairs" in est.notes[0]


@pytest.mark.slow
def test_train_full_trains_on_the_budgets_subset_and_says_so(tmp_path):
    """The run trains on the budget's pairs (one step here) and its training line says what it left out."""
    from core.tuning.full import train_full
    from core.tuning.spec import RunSpec

    ds = _many(40, 2)
    spec = RunSpec.for_method("full")
    spec.settings.batch_size, spec.settings.max_seq_length, spec.settings.epochs = 4, 64, 1
    spec.settings.checkpoint_every = 0
    spec.settings.time_budget_minutes = _minutes_for(spec.settings, ds, 8)
    _, info = train_full(ds, None, spec, tmp_path, device="cpu")
    assert info.pairs == 8 and info.steps == 2
    assert info.budget and info.budget.startswith(f"Time budget {spec.settings.time_budget_minutes:g} min: trained "
                                                  "on 8 of 80 pairs (spread over the passages: 8 of 40 kept a question)")


def _mixed(n_passages: int = 60, labelled: int = 10) -> QADataset:
    """``n_passages`` passages with 2 generated questions each; the first ``labelled`` passages also have one
    labelled question (no origin: as uploaded)."""
    ds = _many(n_passages, 2)
    ds.origins = {q: "generated:offline:inverse_cloze" for q in ds.query_ids}
    for p in range(labelled):
        ds.queries[f"h{p}"] = f"what happens to the seal in unit {p}?"
        ds.relevant_docs[f"h{p}"] = [f"d{p}"]
    return ds


def test_mixing_keeps_every_labelled_pair_and_caps_the_generated_ones_spread_over_the_passages():
    from core.dataset import generated_ids
    from core.tuning.budget import mix_generated

    ds = _mixed()
    kept, line = mix_generated(ds, 2.0, seed=3)
    labelled = [q for q in ds.query_ids if q.startswith("h")]
    assert set(labelled) <= set(kept.query_ids)  # every labelled question stays
    gen = generated_ids(kept)
    assert len(gen) == 20  # 2 generated per labelled pair, 10 labelled pairs
    assert len({kept.relevant_docs[q][0] for q in gen}) == 20  # one per passage, passages drawn over all 60
    assert any(int(kept.relevant_docs[q][0][1:]) >= 30 for q in gen)  # not the first rows
    assert line == ("Mix: 10 labelled pairs and 20 of 120 generated ones (2 generated per labelled pair, spread "
                    "over the passages).")
    assert mix_generated(ds, 2.0, seed=3)[0].query_ids == kept.query_ids  # the seed decides
    # nothing left out: ratio 0 (all) or the generated pairs within the ratio (said); one kind only (nothing said)
    assert mix_generated(ds, 0.0, seed=3) == (ds, "Mix: 10 labelled pairs and all 120 generated ones (every "
                                                  "generated pair).")
    assert mix_generated(ds, 12.0, seed=3) == (ds, "Mix: 10 labelled pairs and all 120 generated ones (within 12 "
                                                   "per labelled pair).")
    only_gen = ds.subset(generated_ids(ds))
    assert mix_generated(only_gen, 1.0, seed=3) == (only_gen, "")
    assert mix_generated(ds.subset([q for q in ds.query_ids if q.startswith("h")]), 1.0, seed=3)[1] == ""


def test_the_plan_mixes_first_then_the_budget_cuts_generated_pairs_before_labelled_ones():
    from core.dataset import generated_ids

    ds = _mixed()
    settings = FullSettings(batch_size=2, generated_per_labelled=1.0)
    plan = plan_budget(settings, ds, seed=0)
    assert plan.pairs == 20 and not plan.cut and plan.mix.startswith("Mix: 10 labelled pairs and 10 of 120")
    # a budget of 14 pairs on the whole mix (130 pairs): all 10 labelled kept, 4 generated
    tight = dataclasses.replace(settings, generated_per_labelled=0.0,
                                time_budget_minutes=_minutes_for(settings, ds, 14))
    plan = plan_budget(tight, ds, seed=0)
    assert plan.cut and plan.mix.endswith("(every generated pair).") and plan.kept_pairs == 14
    assert {q for q in plan.kept.query_ids if q.startswith("h")} == {f"h{p}" for p in range(10)}
    assert len(generated_ids(plan.kept)) == 4
    assert len({plan.kept.relevant_docs[q][0] for q in generated_ids(plan.kept)}) == 4  # spread over passages


def test_the_mix_setting_is_checked_and_reaches_the_estimate():
    from core.tuning.estimate import estimate_run
    from core.tuning.spec import RunSpec

    with pytest.raises(ValueError, match="generated_per_labelled"):
        FullSettings(generated_per_labelled=-1)
    ds = _mixed()
    spec = RunSpec.for_method("full", generated_per_labelled=1.0, time_budget_minutes=0)
    spec.scoring.validation_share = 0.0
    est = estimate_run(spec, ds, ds)
    assert any(n.startswith("Mix: 10 labelled pairs and 10 of 120 generated") for n in est.notes)
    assert RunSpec.from_dict(spec.to_dict()).settings.generated_per_labelled == 1.0


@pytest.mark.slow
def test_train_full_trains_on_the_mix_and_says_so(tmp_path):
    """The run trains on the mix (every labelled pair, one generated pair per labelled one) and says so."""
    from core.tuning.full import train_full
    from core.tuning.spec import RunSpec

    ds = _mixed(20, 4)
    spec = RunSpec.for_method("full", generated_per_labelled=1.0, time_budget_minutes=0, batch_size=4,
                              max_seq_length=64, epochs=1, checkpoint_every=0)
    _, info = train_full(ds, None, spec, tmp_path, device="cpu")
    assert info.pairs == 8 and info.steps == 2
    assert info.budget == ("Mix: 4 labelled pairs and 4 of 40 generated ones (1 generated per labelled pair, "
                           "spread over the passages).")

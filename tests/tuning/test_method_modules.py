"""Each method module of core.tuning.methods (base, full, adapter, nudge, shootout, models) declares a METHOD
whose parts agree: what it saves, its settings' defaults, the phases its cost adds, how its tuned side is
rebuilt from the run folder, the training lines of its fit. (tests/tuning/test_methods.py checks the registry
as a whole; tests/tuning/test_lora.py the LoRA method.)"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import core.tuning.methods.full as full_mod
from core.dataset import DataError, QADataset
from core.tuning.adapter import LinearAdapter
from core.tuning.context import FitContext
from core.tuning.cost import FAST_FIT_SECONDS, Estimate
from core.tuning.full import FULL_HOOKS, TrainInfo
from core.tuning.methods import adapter, full, models, nudge, shootout
from core.tuning.methods.base import Method
from core.tuning.spec import RunSpec, Scoring
from core.workspace.jobs import Reporter
from tests.conftest import make_tiny_dataset

TRAINED_MODULES = [full, adapter, nudge]


def _in_range(cls: type) -> None:
    """Every default of a settings dataclass lies within its form's min/max, choices and options."""
    obj = cls()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value, meta = getattr(obj, f.name), f.metadata
        assert meta.get("help"), f"{cls.__name__}.{f.name} has no help"
        if "min" in meta:
            assert meta["min"] <= value, f.name
        if "max" in meta:
            assert value <= meta["max"], f.name
        if "choices" in meta:
            assert value in meta["choices"], f.name
        if "options" in meta:
            assert set(value) <= set(meta["options"]), f.name
        if typing.get_origin(hints[f.name]) is typing.Literal:
            assert value in typing.get_args(hints[f.name]), f.name


@pytest.mark.parametrize("module", [*TRAINED_MODULES, models], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_settings_defaults_are_valid_choices_with_help(module):
    _in_range(module.METHOD.settings)


def test_list_defaults_are_not_shared_between_instances():
    a, b = full.FullSettings(), full.FullSettings()
    a.matryoshka_dims.append(1)
    assert b.matryoshka_dims == [384, 256, 128, 64]
    assert models.ModelsSettings().candidates == ["all-MiniLM-L6-v2"]


# ------------------------------------------------------------------------------------------- base


def test_bundle_sources_are_the_saved_files_unless_the_method_says_otherwise(tmp_path):
    plain = Method(name="x", label="X", caption="c", settings=models.ModelsSettings, saves=("a.npy", "b"))
    assert plain.bundle_sources(tmp_path, None) == {"a.npy": tmp_path / "a.npy", "b": tmp_path / "b"}
    own = dataclasses.replace(plain, bundle=lambda run_dir, spec: {"model": run_dir / "merged"})
    assert own.bundle_sources(tmp_path, None) == {"model": tmp_path / "merged"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        plain.name = "y"  # a declaration, not state


# ------------------------------------------------------------------------------------------- what each saves


def test_full_saves_the_model_folder_it_rebuilds_ships_and_cards():
    m = full.METHOD
    assert m.saves == ("model",) and m.bundle_model == m.card_folder == "model"
    assert m.tuned_model is full.load_saved and m.train_hooks is FULL_HOOKS
    assert m.in_shootout and m.shootout_default and m.query_transform is None
    assert "BUNDLE / \"model\"" in m.snippet_encoder


def test_adapter_saves_the_file_its_question_map_reads(tmp_path):
    m = adapter.METHOD
    assert m.saves == (adapter.FILE,) == (m.query_file,) and m.tuned_model is None and m.bundle_model is None
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    LinearAdapter(w, b).save(tmp_path / adapter.FILE)
    v = rng.normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(m.query_transform(tmp_path)(v), LinearAdapter(w, b).transform(v), atol=1e-6)
    assert m.bundle_sources(tmp_path, None) == {adapter.FILE: tmp_path / adapter.FILE}
    assert "adapter.npz" in m.snippet_encoder


def test_nudge_saves_vectors_and_ids_and_needs_the_training_passages_searched():
    m = nudge.METHOD
    assert m.saves == ("nudged.npy", "nudged_ids.json") and m.searches_training_passages
    assert m.tuned_model is None and m.query_transform is None


def test_dispatch_methods_fit_nothing_and_say_what_they_save():
    assert models.METHOD.kind == "dispatch" and models.METHOD.saves == ("models.json",)
    assert not models.METHOD.launchable and models.METHOD.fit is None and models.METHOD.cost is None
    s = shootout.shootout_method([full.METHOD, adapter.METHOD, nudge.METHOD, models.METHOD])
    assert s.kind == "dispatch" and s.saves == ("shootout.json",) and s.fit is None and s.cost is None


# ------------------------------------------------------------------------------------------- unchanged


def test_the_adapter_says_unchanged_only_for_the_identity(tmp_path):
    assert adapter.unchanged(tmp_path, [], lambda: None) is None  # nothing saved: nothing to say
    LinearAdapter(np.eye(3), np.zeros(3)).save(tmp_path / adapter.FILE)
    assert "kept the identity" in adapter.unchanged(tmp_path, [], lambda: None)
    LinearAdapter(np.eye(3), np.array([0, 0, 0.1])).save(tmp_path / adapter.FILE)
    assert adapter.unchanged(tmp_path, [], lambda: None) is None


def test_nudge_says_unchanged_when_step_size_0_left_the_vectors_as_they_were():
    same = {"base_d": np.ones((2, 3)), "tuned_d": np.ones((2, 3))}
    moved = {"base_d": np.ones((2, 3)), "tuned_d": np.zeros((2, 3))}
    zero = ["N: step size 0 chosen on 10 held-back training questions; 0 passages moved."]
    assert "moved no passage vector" in nudge.unchanged(Path("r"), zero, lambda: same)
    assert nudge.unchanged(Path("r"), zero, lambda: moved) is None
    assert nudge.unchanged(Path("r"), zero, lambda: None) is None
    assert nudge.unchanged(Path("r"), ["N: step size 0.1 chosen on 10; 12 passages moved."], lambda: same) is None


# ------------------------------------------------------------------------------------------- cost models


def _cost(method: Method, spec: RunSpec, train: QADataset, ev_tokens: int = 1000) -> list[tuple[str, float]]:
    est = Estimate()
    method.cost(est, spec, spec.settings, train, train, ev_tokens)
    return est.parts


def test_vector_fits_cost_one_encoding_then_seconds():
    ds = make_tiny_dataset(12)
    for m, label in ((adapter.METHOD, "adapter"), (nudge.METHOD, "NUDGE")):
        parts = _cost(m, RunSpec.for_method(m.name), ds)
        assert [w for w, _ in parts] == [f"encoding 12 passages for the {label} (first run only)",
                                         f"fitting the {label}"]
        assert parts[0][1] > 0 and parts[1][1] == FAST_FIT_SECONDS


def test_the_full_fine_tunes_cost_adds_its_phases_as_the_settings_ask():
    ds = make_tiny_dataset(12)
    with_val = dict(_cost(full.METHOD, RunSpec.for_method("full"), ds, ev_tokens=1000))
    assert list(with_val) == ["training", "validation passes",
                              "the base model on the validation questions (for the base hybrid's fusion; first run "
                              "only)", "encoding the passages with the tuned model"]
    assert all(s > 0 for s in with_val.values())
    no_val = dict(_cost(full.METHOD, RunSpec.for_method("full", scoring=Scoring(validation_share=0.0)), ds))
    assert list(no_val) == ["training", "encoding the passages with the tuned model"]
    one_pass = dict(_cost(full.METHOD, RunSpec.for_method("full", max_steps=2, epochs=4), ds))
    four = dict(_cost(full.METHOD, RunSpec.for_method("full", epochs=4), ds))
    assert four["validation passes"] == pytest.approx(4 * one_pass["validation passes"])  # a smoke run: one pass
    assert four["training"] > 2 * dict(_cost(full.METHOD, RunSpec.for_method("full", epochs=1), ds))["training"]


def test_long_passages_add_the_window_choice_only_when_a_window_is_chosen():
    long = QADataset({"q": "pump"}, {"d": " ".join(["word"] * 400), "e": "short"}, {"q": ["d"]})
    chosen = [w for w, _ in _cost(full.METHOD, RunSpec.for_method("full", max_seq_length=64), long)]
    assert chosen[0] == "choosing the training window of 1 long passage (first run only)"
    first = [w for w, _ in _cost(full.METHOD, RunSpec.for_method("full", max_seq_length=64, train_passage="first"),
                                 long)]
    assert not any("training window" in w for w in first)


# ------------------------------------------------------------------------------------------- fits (training faked)


class Phases(Reporter):
    def __init__(self):
        self.phases: list[str] = []

    def phase(self, name, message=""):
        self.phases.append(f"{name}: {message}")


def _ctx(spec: RunSpec, tmp_path, reuse: bool = False, ev: QADataset | None = None) -> FitContext:
    ds = make_tiny_dataset(20)
    return FitContext(spec=spec, base=None, train=ds, val=None, ev=ev or ds,
                      cache=SimpleNamespace(path=tmp_path / "cache.sqlite"), reporter=Phases(), run_dir=tmp_path,
                      device="cpu", resume=False, reuse=reuse)


@pytest.fixture
def scored(monkeypatch):
    """The full fine-tune's training and scoring replaced: records which path ran."""
    ran: dict[str, object] = {}
    info = TrainInfo(steps=12, epochs_run=2.0, pairs=96, validation_questions=4, best_metric="MRR@10",
                     best_value=0.812, best_step=6, seconds=90.0, resumed_from_step=4)

    def train_full(train, val, spec, run_dir, reporter, device, resume, cache=None, hooks=None):
        ran["train_full"] = hooks
        return "trained model", info

    def launch(run_dir, nproc, cache_path, reporter, resume):
        ran["launch"] = (nproc, cache_path)
        return dataclasses.asdict(dataclasses.replace(info, best_metric=None, best_value=None, best_step=None,
                                                      resumed_from_step=None))

    monkeypatch.setattr(full_mod, "train_full", train_full)
    monkeypatch.setattr(full_mod, "launch", launch)
    monkeypatch.setattr(full_mod, "evaluate_dense", lambda model, ev, **kw: ran.setdefault("scored", (model, kw)))
    return ran


def test_one_process_trains_with_the_hooks_and_says_what_it_kept(scored, tmp_path):
    res, lines, _, seconds = full.METHOD.fit(_ctx(RunSpec.for_method("full"), tmp_path))
    assert scored["train_full"] is FULL_HOOKS and "launch" not in scored
    assert res[0] == "trained model" and res[1]["name"] == "tuned (full)"
    assert lines == ["Trained 12 steps (2.0 epochs) on 96 pairs in 1.5 min.",
                     "Resumed after an interruption from the checkpoint at step 4.",
                     "The MRR@10 was best (0.812) at step 6: that checkpoint is the tuned model (4 held-out "
                     "questions)."]
    assert seconds == 90.0


def test_several_processes_launch_torchrun_then_rebuild_the_saved_model(scored, tmp_path, monkeypatch):
    rebuilt = []
    monkeypatch.setattr(full_mod, "load_saved", lambda run_dir, spec, device=None: rebuilt.append(run_dir) or "saved")
    ctx = _ctx(RunSpec.for_method("full", processes=2), tmp_path)
    res, lines, _, _ = full.fit_trained(ctx, FULL_HOOKS, full_mod.load_saved, "full")
    assert scored["launch"] == (2, tmp_path / "cache.sqlite") and "train_full" not in scored
    assert rebuilt == [tmp_path] and res[0] == "saved"
    assert lines == ["Trained 12 steps (2.0 epochs) on 96 pairs in 1.5 min, 2 processes (torchrun).",
                     "No validation questions were held out: the model after the last step is kept."]


def test_re_scoring_rebuilds_the_tuned_model_and_trains_nothing(scored, tmp_path):
    rebuilt = []
    ctx = _ctx(RunSpec.for_method("full"), tmp_path, reuse=True)
    res, lines, _, seconds = full.fit_trained(ctx, FULL_HOOKS, lambda d, s, dev: rebuilt.append(d) or "saved",
                                              "full")
    assert rebuilt == [tmp_path] and "train_full" not in scored and "launch" not in scored
    assert res[0] == "saved" and lines == [] and seconds == 0.0
    assert ctx.reporter.phases[0] == "preparing: Loading the tuned model the run saved"


def test_nudge_refuses_windows_and_an_evaluation_without_training_passages(tmp_path):
    windowed = RunSpec.for_method("nudge", scoring=Scoring(windows=True))
    with pytest.raises(DataError, match="Turn 'Windowed passages' off for NUDGE"):
        nudge.METHOD.fit(_ctx(windowed, tmp_path))
    other = make_tiny_dataset(5, tag="x")  # passages d0x.. the training corpus does not hold
    with pytest.raises(DataError, match="none are in the training corpus"):
        nudge.METHOD.fit(_ctx(RunSpec.for_method("nudge"), tmp_path, ev=other))


# ------------------------------------------------------------------------------------------- shoot-out settings


def test_shootout_settings_hold_a_field_per_member_and_run_the_defaults():
    cls = shootout.shootout_settings([full.METHOD, adapter.METHOD, nudge.METHOD])
    assert cls.__module__ == "core.tuning.spec" and cls.__name__ == "ShootoutSettings"
    s = cls()
    assert s.methods == ["full", "adapter", "nudge"]
    assert isinstance(s.full, full.FullSettings) and isinstance(s.nudge, nudge.NudgeSettings)
    assert s.full is not cls().full  # each instance its own settings
    methods_field = next(f for f in dataclasses.fields(cls) if f.name == "methods")
    assert methods_field.metadata["options"] == ["full", "adapter", "nudge"]
    off = dataclasses.replace(adapter.METHOD, shootout_default=False)
    assert shootout.shootout_settings([full.METHOD, off])().methods == ["full"]


def test_the_shootout_method_includes_only_members_that_can_take_part():
    s = shootout.shootout_method([full.METHOD, models.METHOD])
    names = [f.name for f in dataclasses.fields(s.settings)]
    assert names == ["methods", "full"]  # models cannot take part: no field


# ------------------------------------------------------------------------------------------- a smoke fit


@pytest.mark.slow
def test_an_adapter_fit_saves_what_rebuilds_its_tuned_side_and_re_scores_the_same(model, tmp_path):
    spec = RunSpec.for_method("adapter", scoring=Scoring(passage_tokens=64), epochs=3, val_fraction=0.0)
    ds = make_tiny_dataset(30)
    ctx = FitContext(spec=spec, base=model, train=ds.subset(ds.query_ids[:24]), val=None, ev=ds, cache=None,
                     reporter=Reporter(), run_dir=tmp_path, device="cpu", resume=False)
    res, lines, val_ranking, _ = adapter.METHOD.fit(ctx)
    assert all((tmp_path / name).exists() for name in adapter.METHOD.saves)
    assert lines and lines[0].startswith("Query adapter fitted on 24 questions")
    assert 0 <= res.metrics["nDCG@10"] <= 1
    q, d = ctx.vectors(ds, "check")
    moved = adapter.METHOD.query_transform(tmp_path)(q)  # the tuned side rebuilt from the run folder
    again = adapter.METHOD.fit(dataclasses.replace(ctx, reuse=True))[0]
    assert again.metrics == pytest.approx(res.metrics)
    ranked = val_ranking(ds)[0]
    top = [[list(ds.corpus)[i] for i in np.argsort(-(moved[r] @ d.T))[:3]] for r in range(len(ds))]
    assert [row[:3] for row in ranked] == top

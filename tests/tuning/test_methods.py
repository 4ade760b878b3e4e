"""The method registry (core/tuning/methods/): every registered method has every part, and the spec, the
estimate, the snippets, the export and the views read the registry (a method registered here, in a test,
shows up in each of them without an edit anywhere else)."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass

import numpy as np
import pytest

import core.tuning.methods as registry
from core.insight.export import check_exportable
from core.insight.snippets import snippets
from core.tuning.estimate import estimate_run
from core.tuning.methods import REGISTERED, Method, method_of, names
from core.tuning.settings import setting
from core.tuning.spec import LAUNCHABLE, METHOD_LABELS, SETTINGS_OF, RunSpec, ShootoutSettings
from tests.conftest import make_tiny_dataset


def _settings_have_help(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            _settings_have_help(hints[f.name])
        else:
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


@pytest.mark.parametrize("method", REGISTERED, ids=lambda m: m.name)
def test_every_registered_method_has_every_part(method: Method):
    assert method.name and method.label and method.caption
    assert dataclasses.is_dataclass(method.settings)
    _settings_have_help(method.settings)
    method.settings()  # every field has a default
    assert method.kind in ("fit", "dispatch")
    if method.kind == "dispatch":
        assert method.fit is None and method.cost is None
        return
    assert callable(method.fit) and callable(method.cost)
    assert method.saves, "a fit must say what it saves in the run folder"
    assert "def embed_query" in method.snippet_encoder and "def embed_passages" in method.snippet_encoder
    assert method.card_what and method.card_usage and method.card_reindex
    if method.bundle_model:  # a plain model folder ships: something rebuilds the tuned side from the run folder
        assert method.tuned_model is not None
    if method.query_transform is not None:
        assert method.query_file in method.saves
    assert method.in_shootout or not method.shootout_default


def test_the_spec_names_come_from_the_registry():
    assert [m.name for m in REGISTERED] == list(SETTINGS_OF) == list(METHOD_LABELS)
    assert len({m.name for m in REGISTERED}) == len(REGISTERED)
    assert LAUNCHABLE == names(launchable=True)
    shootout = ShootoutSettings()
    assert shootout.methods == [m.name for m in REGISTERED if m.shootout_default]
    for m in REGISTERED:  # a field per method a shoot-out can include, holding its settings
        assert isinstance(getattr(shootout, m.name), m.settings) if m.in_shootout else not hasattr(shootout, m.name)
    assert RunSpec.for_method("shootout").settings.full.epochs == 2  # spec.settings.full as before
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        RunSpec.for_method("nope")


@dataclass
class EchoSettings:
    """A test method's settings."""

    strength: float = setting(0.5, "How hard it echoes.", label="Echo strength")


def _echo_cost(est, spec, sub, train, ev, ev_tokens):
    est.add(f"echoing {len(train.corpus)} passages at {sub.strength:g}", 42.0)


ECHO = Method(name="echo", label="Echo (test method)", caption="Says what it heard.", settings=EchoSettings,
              fit=lambda ctx: None, saves=("echo.npy",), cost=_echo_cost,
              snippet_encoder="\ndef embed_query(text):\n    return ECHO\n\n\ndef embed_passages(texts):\n    return []\n",
              card_what="an echo", card_usage="echo", card_reindex="{rows} echoes")


@pytest.fixture
def echo_registered(monkeypatch):
    monkeypatch.setattr(registry, "REGISTERED", (*registry.REGISTERED, ECHO))
    return ECHO


def test_a_method_registered_shows_up_in_spec_estimate_snippets_and_export(echo_registered, tmp_path):
    spec = RunSpec.for_method("echo", strength=0.8)
    assert isinstance(spec.settings, EchoSettings) and spec.settings.strength == 0.8
    assert RunSpec.from_dict(spec.to_dict()) == spec
    rows = dict(spec.describe())
    assert rows["method"] == "Echo (test method)" and rows["Echo strength"] == "0.8"
    with pytest.raises(ValueError, match="unknown setting"):
        RunSpec.for_method("echo", epochs=3)
    ds = make_tiny_dataset(12)
    est = estimate_run(spec, ds, ds)
    assert ("echoing 12 passages at 0.8", 42.0) in est.parts
    files = snippets("echo", with_onnx=False)
    assert files and all("return ECHO" in text for text in files.values())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(spec.to_dict()))
    with pytest.raises(FileNotFoundError, match="echo.npy"):
        check_exportable(run_dir)
    np.save(run_dir / "echo.npy", np.zeros(2))
    assert check_exportable(run_dir).method == "echo"
    assert method_of("echo") is ECHO


def test_the_views_rebuild_the_tuned_side_from_the_registry(echo_registered, monkeypatch):
    """RunView's free-text encoder asks the method how its tuned side is rebuilt (model, then question map)."""
    from core.insight.explore import RunView
    from core.retrieval.embedding import load_model

    calls = []

    def tuned_model(run_dir, spec, device):
        calls.append(run_dir)
        return load_model(device="cpu")  # its own copy: the view sets its token limit

    echo = dataclasses.replace(ECHO, tuned_model=tuned_model, query_transform=lambda run_dir: lambda v: -v)
    monkeypatch.setattr(registry, "REGISTERED", (*registry.REGISTERED[:-1], echo))
    spec = RunSpec.for_method("echo")
    view = RunView.__new__(RunView)
    view.spec, view.run_dir, view.onnx_dir, view._encoders = spec, "RUN", None, {}
    base = view._encoder("base")("a pump leaks oil")
    tuned = view._encoder("tuned")("a pump leaks oil")
    assert calls == ["RUN"]
    np.testing.assert_allclose(tuned, -base, atol=1e-6)

"""The run spec: one typed description of a run, built once and read back by the same type.

A run is ``RunSpec(method, base_model, seed, scoring, settings)``:

* ``scoring`` (:class:`Scoring`) holds the conditions every system of the run is measured
  under: the passage token limit base and tuned models both encode passages with, and the
  share of training questions held out from every method's fit (it picks the best epoch and
  the hybrid's fusion). These are what make a comparison fair, so they live in one place.
* ``settings`` is the dataclass of the method, declared with the method in ``core.tuning.methods``
  (:class:`FullSettings`, :class:`AdapterSettings`, :class:`NudgeSettings`, ...; :class:`ShootoutSettings`
  holds one per method a shoot-out can include). Which methods exist, their labels and settings come
  from that registry; this module re-exports the names pages and tests import.

The Train page, the CLI and the shoot-out build a ``RunSpec``; the store saves
``spec.to_dict()`` as the run's ``config.json``; the job reads it back with
``RunSpec.from_dict``. Nothing picks settings out of dicts by name lists.

Every field carries its help text (why the default) in ``metadata["help"]``, next to the
field, as sentence-transformers' training arguments do; forms read it from there
(:func:`field_help`). ``metadata`` may also carry ``label``, ``min``/``max``/``step``
(number inputs), ``choices`` and ``advanced`` (shown in a collapsed section).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.retrieval.backends import BACKENDS, Backend
from core.retrieval.evaluation import PASSAGE_TOKENS
from core.retrieval.rerank import RerankSettings
from core.tuning import methods as registry
from core.tuning.losses import LOSS_NAMES, LossName, check_loss
from core.tuning.methods.adapter import AdapterSettings
from core.tuning.methods.full import FullSettings, Scheduler, TrainPassage
from core.tuning.methods.models import ModelsSettings
from core.tuning.methods.nudge import NudgeSettings
from core.tuning.methods.shootout import LEGACY_METHODS
from core.tuning.settings import field_help, fmt, label_of, setting
from core.workspace.run_folder import read_config

# Names importable from here as before the registry (pages, tests, the CLI): each reads the registry.
METHODS: tuple[str, ...] = tuple(m.name for m in registry.REGISTERED)
TUNING_METHODS: tuple[str, ...] = registry.names(in_shootout=True)  # what a shoot-out can include
LAUNCHABLE: tuple[str, ...] = registry.names(launchable=True)  # what the Train page offers as a training method
METHOD_LABELS: dict[str, str] = {m.name: m.label for m in registry.REGISTERED}
SETTINGS_OF: dict[str, type] = {m.name: m.settings for m in registry.REGISTERED}
ShootoutSettings = registry.method_of("shootout").settings
Loss = LossName
LOSSES = LOSS_NAMES
Settings = Any  # one registered method's settings dataclass

__all__ = ["AdapterSettings", "FullSettings", "ModelsSettings", "NudgeSettings", "Scheduler", "TrainPassage",
           "field_help", "setting"]


@dataclass
class Scoring:
    """Conditions shared by every system a run scores (base, tuned, BM25, hybrid)."""

    passage_tokens: int = setting(
        PASSAGE_TOKENS,
        "Tokens per passage when encoding for search, for the base and the tuned model alike (a fair "
        "comparison needs the same limit on both sides). Longer passages are cut here; 512 reads ~2,000 "
        "characters of English.",
        label="Passage tokens (search)", choices=[128, 256, 384, 512], advanced=True,
    )
    windows: bool = setting(
        False,
        "Split passages longer than the passage token limit into overlapping windows and score a passage by "
        "its best window (max-pooling), for the base and the tuned model alike. Off: a long passage is cut at "
        "the limit and its tail is never searched. Measured (bench/RESULTS.md): on sec-10k, with the default "
        "training, it lifted the tuned model alone from nDCG@10 0.694 to 0.735 (Accuracy@10 0.863 to 0.920; "
        "the hybrid 0.826 to 0.828) for ~70 s more training (validation searches windows); no change on the "
        "sample; on a collection of overlapping long passages it lost (0.625 to 0.479), so it stays off by "
        "default: try it when answers sit deep in long passages that do not overlap.",
        label="Windowed passages (best window)", advanced=True,
    )
    window_overlap: int = setting(
        64, "Tokens shared by consecutive windows, so a sentence cut at one window's edge is whole in the next.",
        label="Window overlap (tokens)", min=0, max=256, advanced=True,
    )
    backend: Backend = setting(
        "torch",
        "What runs the model when encoding for search, for the base and the tuned model alike (training is always "
        "PyTorch): torch (PyTorch, fp32); onnx (ONNX Runtime, fp32: the same vectors, cosine >= 0.999 to torch's); "
        "onnx-int8 (ONNX Runtime with int8 weights: a quarter of the size, vectors move slightly, cosine ~0.99). "
        "An ONNX file is exported once per model and kept in the workspace cache. Measured here (bench/RESULTS.md; "
        "the rule: the fastest backend whose nDCG@10 moves by 0.002 at most): at 512 passage tokens torch is "
        "fastest (onnx 0.68x, onnx-int8 0.93x and -0.006 nDCG@10), so it is the default; at 128 tokens onnx-int8 "
        "encodes 1.33x faster than torch (20,000 passages) and moved sec-10k's nDCG@10 by -0.0019: worth choosing "
        "with short passages.",
        label="Encoding backend", advanced=True,
    )
    validation_share: float = setting(
        0.1,
        "Share of training questions held out from every method's fit (grouped by passage): they pick the "
        "best epoch and the hybrid's fusion, so the evaluation split is never used for either. 0 keeps all "
        "for training; the hybrid then uses plain reciprocal rank fusion and the verdict says so.",
        label="Validation share", min=0.0, max=0.5, step=0.05, advanced=True,
    )


# Settings whose default changed: the value a stored spec without the key was run with (a run saved before
# the change must read as what it did, not as today's default). Both changed on 2026-11-29 (bench/RESULTS.md).
DEFAULTS_BEFORE = {"FullSettings": {"train_passage": "first", "mini_batch_size": 16}}


def _settings_of(method: str) -> type:
    """The settings dataclass of a registered method (``core.tuning.methods``; unknown: ValueError)."""
    return registry.method_of(method).settings


def _as_stored(cls: type, data: dict[str, Any] | None) -> dict[str, Any]:
    """A stored settings dict with the old default of every key it lacks whose default changed since
    (``DEFAULTS_BEFORE``), nested settings of a shoot-out included."""
    data = {**DEFAULTS_BEFORE.get(cls.__name__, {}), **(data or {})}
    if cls is ShootoutSettings:
        data.update({m: _as_stored(_settings_of(m), v) for m, v in data.items() if isinstance(v, dict)})
    return data


def _build(cls: type, data: dict[str, Any] | None, where: str) -> Any:
    """``cls(**data)`` with nested settings dataclasses built too; unknown keys are an error."""
    data = dict(data or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)} for {cls.__name__}")
    kw = {}
    for name, value in data.items():
        sub = _settings_of(name) if cls is ShootoutSettings and name != "methods" else None
        kw[name] = _build(sub, value, f"{where}.{name}") if sub is not None and isinstance(value, dict) else value
    return cls(**kw)


def parts(settings: Any) -> list[tuple[str, Any]]:
    """(method, its settings) of each method a shoot-out's settings run, in order; [] for any other settings."""
    if not isinstance(settings, ShootoutSettings):
        return []
    return [(m, getattr(settings, m)) for m in settings.methods]


@dataclass
class RunSpec:
    """What a run does (see the module docstring).

    Attributes:
        method: a registered method's name (``core.tuning.methods``): "full", "adapter", "nudge", "shootout"...
        base_model: a local sentence-transformers folder or hub id; None = the bundled all-MiniLM-L6-v2.
        seed: draws the validation hold-out and every random choice of the fit, so runs repeat.
        scoring: conditions shared by every scored system.
        settings: the method's settings dataclass (must match ``method``).
        rerank: a cross-encoder rerank stage after the best first stage (None: no rerank stage).
    """

    method: str = "full"
    base_model: str | None = setting(None, "Empty: the bundled all-MiniLM-L6-v2 (384 dimensions, quick on "
                                     "a CPU). Or the path of a local sentence-transformers folder, or a "
                                     "Hugging Face id when this machine is online.", label="Base model")
    seed: int = setting(42, "Fixed so runs repeat: draws the validation hold-out and the fit's random "
                        "choices.", label="Seed", min=0, max=100_000, advanced=True)
    scoring: Scoring = field(default_factory=Scoring)
    settings: Settings = field(default_factory=FullSettings)
    rerank: RerankSettings | None = None

    def __post_init__(self) -> None:
        cls = _settings_of(self.method)
        if type(self.settings) is not cls:
            raise ValueError(f"method {self.method!r} needs {cls.__name__}, got {type(self.settings).__name__}")
        if self.scoring.passage_tokens < 8:
            raise ValueError(f"passage_tokens must be at least 8, got {self.scoring.passage_tokens}")
        if self.scoring.backend not in BACKENDS:
            raise ValueError(f"unknown encoding backend {self.scoring.backend!r}: use one of {', '.join(BACKENDS)}")
        if not 0 <= self.scoring.validation_share < 1:
            raise ValueError(f"validation_share must be in [0, 1), got {self.scoring.validation_share}")
        for _, sub in parts(self.settings) or [(self.method, self.settings)]:
            if hasattr(sub, "loss"):  # a method trained with a loss (core.tuning.losses)
                check_loss(sub.loss, getattr(sub, "hard_negatives", 0))
        if self.rerank is not None:
            if self.method == "shootout":
                raise ValueError("A rerank stage belongs to one method's run, not to a shoot-out.")
            self.rerank.validate()

    @classmethod
    def for_method(cls, method: str, base_model: str | None = None, seed: int = 42,
                   scoring: Scoring | None = None, **settings: Any) -> RunSpec:
        """A spec with the method's defaults, overridden by ``settings`` (unknown names are an error)."""
        return cls(method, base_model, seed, scoring or Scoring(), _build(_settings_of(method), settings, method))

    def child(self, method: str) -> RunSpec:
        """The spec of one method of a shoot-out (same base model, seed and scoring)."""
        if not isinstance(self.settings, ShootoutSettings):
            raise ValueError("only a shoot-out has child runs")
        return RunSpec(method, self.base_model, self.seed, self.scoring, getattr(self.settings, method))

    @property
    def overlap(self) -> int | None:
        """The window overlap when passages are windowed, else None (the argument the scorers take)."""
        return self.scoring.window_overlap if self.scoring.windows else None

    @property
    def model_label(self) -> str:
        """The base model in words, for tables and reports (never 'None')."""
        return self.base_model or "all-MiniLM-L6-v2 (bundled)"

    def describe(self) -> list[tuple[str, str]]:
        """The spec as (setting, value) rows in words, for reports and exports (never 'None')."""
        rows = [("method", registry.method_of(self.method).label), ("base model", self.model_label),
                ("seed", str(self.seed))]
        rows += [(label_of(Scoring, f.name), fmt(getattr(self.scoring, f.name))) for f in dataclasses.fields(Scoring)]
        for prefix, obj in parts(self.settings) or [("", self.settings)]:
            for f in dataclasses.fields(obj):
                if not f.metadata.get("hidden"):
                    label = label_of(type(obj), f.name)
                    rows.append((f"{prefix}: {label}" if prefix else label, fmt(getattr(obj, f.name))))
        if self.rerank is not None:
            rows += [(f"rerank: {f.name.replace('_', ' ')}", fmt(getattr(self.rerank, f.name)) or "(train one)")
                     for f in dataclasses.fields(self.rerank) if not f.metadata.get("hidden")]
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "base_model": self.base_model, "seed": self.seed,
                "scoring": asdict(self.scoring), "settings": asdict(self.settings),
                "rerank": asdict(self.rerank) if self.rerank is not None else None}

    @classmethod
    def load(cls, run_dir: str | Path) -> RunSpec:
        """The spec saved in a run folder's config.json."""
        return cls.from_dict(read_config(run_dir))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSpec:
        """Read a spec written by ``to_dict`` (or a run config saved before specs existed).

        Raises:
            ValueError: unknown method or setting names.
        """
        if "settings" not in d or "scoring" not in d:
            return _from_legacy(d)
        method = d.get("method", "full")
        return cls(method, d.get("base_model"), int(d.get("seed", 42)), _build(Scoring, d["scoring"], "scoring"),
                   _build(_settings_of(method), _as_stored(_settings_of(method), d["settings"]), method),
                   _build(RerankSettings, d["rerank"], "rerank") if d.get("rerank") else None)


_LEGACY_SCORING = {"index_max_seq_length": "passage_tokens", "val_fraction": "validation_share"}
_LEGACY_DROP = {"dataset_id", "method", "base_model", "seed"}


def _from_legacy(d: dict[str, Any]) -> RunSpec:
    """A flat config.json of runs made before the spec existed (method + TrainConfig keys)."""
    method = d.get("method", "full")
    scoring = Scoring(**{new: d[old] for old, new in _LEGACY_SCORING.items() if d.get(old) is not None})
    if method == "shootout":
        settings = ShootoutSettings(methods=list(d.get("methods", LEGACY_METHODS)))
        for m in LEGACY_METHODS:
            cls = _settings_of(m)
            sub = {k: v for k, v in (d.get(m) or {}).items() if k in {f.name for f in dataclasses.fields(cls)}}
            setattr(settings, m, cls(**_as_stored(cls, sub)))
    else:
        cls = _settings_of(method)
        known = {f.name for f in dataclasses.fields(cls)}
        settings = cls(**_as_stored(cls, {k: v for k, v in d.items() if k in known and k not in _LEGACY_DROP}))
    return RunSpec(method, d.get("base_model"), int(d.get("seed", 42)), scoring, settings)

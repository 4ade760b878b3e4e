"""The run spec: one typed description of a run, built once and read back by the same type.

A run is ``RunSpec(method, base_model, seed, scoring, settings)``:

* ``scoring`` (:class:`Scoring`) holds the conditions every system of the run is measured
  under: the passage token limit base and tuned models both encode passages with, and the
  share of training questions held out from every method's fit (it picks the best epoch and
  the hybrid's fusion). These are what make a comparison fair, so they live in one place.
* ``settings`` is the dataclass of the method: :class:`FullSettings`, :class:`AdapterSettings`,
  :class:`NudgeSettings` or :class:`ShootoutSettings` (which holds the three others).

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
from typing import Any, Literal, get_args

from core.retrieval.backends import BACKENDS, Backend
from core.retrieval.evaluation import PASSAGE_TOKENS
from core.retrieval.rerank import RerankSettings
from core.workspace.run_folder import read_config

Method = Literal["full", "adapter", "nudge", "shootout", "models"]
METHODS: tuple[str, ...] = get_args(Method)
TUNING_METHODS = ("full", "adapter", "nudge")  # what a shoot-out can include
Loss = Literal["mnrl", "cached_mnrl", "matryoshka", "gist", "cached_gist"]
TrainPassage = Literal["first", "best", "answer", "all"]
Scheduler = Literal["linear", "cosine", "constant_with_warmup"]


METHOD_LABELS = {"full": "Full fine-tune", "adapter": "Query adapter", "nudge": "NUDGE (passage vectors)",
                 "shootout": "All methods (shoot-out)", "models": "Which base model? (comparison)"}
LAUNCHABLE = ("full", "adapter", "nudge", "shootout")  # what the Train page offers as a training method


def _label(cls: type, name: str) -> str:
    f = next(f for f in dataclasses.fields(cls) if f.name == name)
    return f.metadata.get("label") or name.replace("_", " ")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return ", ".join(str(x) for x in v)
    return str(v)


def setting(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its help text (and optional form hints) in ``metadata``."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


def field_help(cls: type, name: str) -> str:
    """The help text of field ``name`` of a settings dataclass ('' when it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("help", "")
    raise KeyError(f"{cls.__name__} has no setting {name!r}")


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


@dataclass
class FullSettings:
    """A full fine-tune with sentence-transformers' Trainer (every weight of the model moves)."""

    epochs: int = setting(2, "Small domain sets overfit after a few passes; the best epoch on the "
                          "validation questions is kept anyway. Measured on sec-10k (bench/RESULTS.md): 1 epoch "
                          "reached nDCG@10 0.690 in half the time of 2 (0.694; Accuracy@10 0.851 vs 0.863).",
                          label="Epochs", min=1, max=50)
    batch_size: int = setting(32, "Bigger batch = more in-batch negatives for the loss to learn from.",
                              label="Batch size", min=2, max=512)
    learning_rate: float = setting(5e-5, "Higher than the usual 2e-5: one or two epochs must move a small "
                                   "model. Measured on sec-10k (bench/RESULTS.md): 1e-4 gave nDCG@10 0.666 "
                                   "against 0.659, within noise.", label="Learning rate", min=1e-7, max=1e-2, step=1e-5,
                                   format="%.0e")
    max_seq_length: int = setting(256, "Tokens per text while training: cost grows fast with length on a "
                                  "CPU. Search uses the passage tokens of the scoring settings. Measured on "
                                  "sec-10k: 128 halves the training time but the tuned model fell below the base "
                                  "(nDCG@10 0.585 against 0.608): it learns on cut passages and searches whole ones.",
                                  label="Max tokens per text (training)", choices=[64, 128, 256, 384, 512])
    hard_negatives: int = setting(0, "Mined wrong-but-close passages per pair (0 = in-batch negatives only). "
                                  "Each one adds a passage per pair to encode: one negative took 1.6x the "
                                  "training time on sec-10k for nDCG@10 0.671 against 0.659.",
                                  label="Hard negatives",
                                  min=0, max=5)
    loss: Loss = setting("cached_mnrl", "CachedMNRL gives the same gradients as plain MNRL computed in chunks: "
                         "~2 GB of RAM instead of ~6 at batch 32 (measured on sec-10k), for ~1/3 more compute. GIST "
                         "variants use the base model as a guide and drop in-batch negatives it finds too close "
                         "to the positive (likely false negatives).", label="Loss", advanced=True)
    train_passage: TrainPassage = setting("answer", "Which part of a long positive passage the model trains on: "
                                          "its first window (what the Trainer's cut leaves), the window the base "
                                          "model finds best for the question, the window holding the question's "
                                          "answer when the data gives one (else the best: the default), or every "
                                          "window. Measured (bench/RESULTS.md): the best window lifted sec-10k's "
                                          "tuned nDCG@10 from 0.659 to 0.695 in the same training time, and on "
                                          "passages twice as long from 0.625 to 0.648 (the sample: no change); "
                                          "passages that fit one window train as they are.",
                                          label="Train on (long passages)", advanced=True,
                                          option_labels={"first": "first window", "best": "best window",
                                                         "answer": "answer's window, else best",
                                                         "all": "every window"})
    mini_batch_size: int = setting(8, "Cached losses: texts per forward chunk. Memory, not the effective "
                                   "batch: the gradients are the same. Measured on sec-10k (bench/RESULTS.md): 8 "
                                   "instead of 16 cut the run's peak RAM from 3.65 to 2.50 GB, same quality, "
                                   "~6% longer training.",
                                   label="Mini-batch (CachedMNRL)", min=1, max=256, advanced=True)
    matryoshka_dims: list[int] = setting([384, 256, 128, 64], "Matryoshka loss: the dimensions trained to "
                                         "work on their own.", advanced=True, hidden=True)
    warmup_ratio: float = setting(0.1, "A short warm-up keeps the first steps from wrecking the pretrained "
                                  "space.", label="Warm-up share", min=0.0, max=0.5, step=0.05, advanced=True)
    scheduler: Scheduler = setting("linear", "Learning-rate decay to 0 by the last step.", label="Schedule",
                                   advanced=True)
    hn_relative_margin: float = setting(0.05, "A mined negative must score below 95% of the positive "
                                        "(keeps likely false negatives out).", advanced=True, hidden=True)
    hn_range_max: int = setting(30, "Mine among the base model's top 30 passages.", advanced=True, hidden=True)
    early_stopping_patience: int = setting(2, "Epochs without validation gain before stopping.",
                                           label="Early-stopping patience", min=0, max=20, advanced=True)
    max_steps: int = setting(-1, "-1 runs every epoch; a small number (e.g. 2) is a quick smoke test.",
                             label="Max steps", min=-1, max=100_000, advanced=True)
    checkpoint_every: int = setting(10, "Steps between resumable checkpoints (model + optimizer), so an "
                                    "interrupted run resumes instead of restarting. 0: only at epoch ends.",
                                    label="Checkpoint every (steps)", min=0, max=10_000, advanced=True)
    processes: int = setting(1, "Training processes (torchrun, distributed data parallel): one per GPU on a "
                             "multi-GPU machine. Each process trains on its own batch of 'batch size' pairs, so the "
                             "effective batch is batch size x processes (in-batch negatives stay per process).",
                             label="Processes (torchrun)", min=1, max=64, advanced=True)


@dataclass
class AdapterSettings:
    """A linear map on QUESTION vectors, fitted on cached base embeddings (passages stay as they are)."""

    epochs: int = setting(30, "With ~700 questions and batch 64 that is ~300 steps: enough to converge, "
                          "seconds on a CPU.", label="Epochs", min=1, max=500)
    lr: float = setting(1e-3, "AdamW's usual rate; the map moves gradually away from the identity (a safe "
                        "start).", label="Learning rate", min=1e-6, max=1e-1, step=1e-4, format="%.0e")
    temperature: float = setting(0.05, "The usual InfoNCE scale for cosine scores (sentence-transformers "
                                 "uses 1/20).", label="Temperature", min=0.005, max=1.0, step=0.005,
                                 advanced=True)
    weight_decay: float = setting(0.0, "Off: the base vectors are already good; >0 pulls the map towards the "
                                  "identity.", label="Weight decay", min=0.0, max=1.0, step=0.01, advanced=True)
    batch_size: int = setting(64, "Small data: more update steps per epoch; the softmax is over the whole "
                              "corpus anyway.", label="Batch size", min=1, max=4096, advanced=True)
    patience: int = setting(5, "Epochs without a better validation MRR@10 before stopping early.",
                            label="Patience", min=1, max=100, advanced=True)
    val_fraction: float = setting(0.15, "Share of its training questions the fit holds back to choose the "
                                  "epoch to keep (never the run's validation or evaluation questions).",
                                  label="Fit validation share", min=0.0, max=0.5, step=0.05, advanced=True)


@dataclass
class NudgeSettings:
    """NUDGE: the stored PASSAGE vectors move towards their training questions (no model change)."""

    variant: Literal["N", "M"] = setting("N", "N keeps vectors unit length (mixes with untouched vectors "
                                         "under cosine search); M moves them without renormalising.",
                                         label="Variant", advanced=True)
    val_fraction: float = setting(0.15, "Share of its training questions the fit holds back to choose the "
                                  "step size.", label="Fit validation share", min=0.05, max=0.5, step=0.05,
                                  advanced=True)


@dataclass
class ShootoutSettings:
    """Every method on one split, quality against time (each method is a run of its own)."""

    methods: list[str] = setting(list(TUNING_METHODS), "The methods to run, in this order (NUDGE is left "
                                 "out, with the reason, when the evaluation does not search the training "
                                 "passages).", label="Methods", options=list(TUNING_METHODS))
    full: FullSettings = field(default_factory=FullSettings, metadata={"help": "The full fine-tune's settings."})
    adapter: AdapterSettings = field(default_factory=AdapterSettings,
                                     metadata={"help": "The query adapter's settings."})
    nudge: NudgeSettings = field(default_factory=NudgeSettings, metadata={"help": "NUDGE's settings."})


@dataclass
class ModelsSettings:
    """Candidate base models scored on the evaluation questions before any training."""

    candidates: list[str] = setting(["all-MiniLM-L6-v2"], "Models to compare, one per line: the bundled "
                                    "all-MiniLM-L6-v2, any local sentence-transformers folder, or a Hugging Face "
                                    "id when this machine is online. The first is the reference for the intervals.",
                                    label="Candidate models")


Settings = FullSettings | AdapterSettings | NudgeSettings | ShootoutSettings | ModelsSettings
SETTINGS_OF: dict[str, type] = {"full": FullSettings, "adapter": AdapterSettings, "nudge": NudgeSettings,
                                "shootout": ShootoutSettings, "models": ModelsSettings}


# Settings whose default changed: the value a stored spec without the key was run with (a run saved before
# the change must read as what it did, not as today's default). Both changed on 2026-11-29 (bench/RESULTS.md).
DEFAULTS_BEFORE = {"FullSettings": {"train_passage": "first", "mini_batch_size": 16}}


def _as_stored(cls: type, data: dict[str, Any] | None) -> dict[str, Any]:
    """A stored settings dict with the old default of every key it lacks whose default changed since
    (``DEFAULTS_BEFORE``), nested settings of a shoot-out included."""
    data = {**DEFAULTS_BEFORE.get(cls.__name__, {}), **(data or {})}
    if cls is ShootoutSettings:
        data.update({m: _as_stored(SETTINGS_OF[m], v) for m, v in data.items() if isinstance(v, dict)})
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
        sub = SETTINGS_OF.get(name) if cls is ShootoutSettings else None
        kw[name] = _build(sub, value, f"{where}.{name}") if sub is not None and isinstance(value, dict) else value
    return cls(**kw)


@dataclass
class RunSpec:
    """What a run does (see the module docstring).

    Attributes:
        method: "full" | "adapter" | "nudge" | "shootout".
        base_model: a local sentence-transformers folder or hub id; None = the bundled all-MiniLM-L6-v2.
        seed: draws the validation hold-out and every random choice of the fit, so runs repeat.
        scoring: conditions shared by every scored system.
        settings: the method's settings dataclass (must match ``method``).
        rerank: a cross-encoder rerank stage after the best first stage (None: no rerank stage).
    """

    method: Method = "full"
    base_model: str | None = setting(None, "Empty: the bundled all-MiniLM-L6-v2 (384 dimensions, quick on "
                                     "a CPU). Or the path of a local sentence-transformers folder, or a "
                                     "Hugging Face id when this machine is online.", label="Base model")
    seed: int = setting(42, "Fixed so runs repeat: draws the validation hold-out and the fit's random "
                        "choices.", label="Seed", min=0, max=100_000, advanced=True)
    scoring: Scoring = field(default_factory=Scoring)
    settings: Settings = field(default_factory=FullSettings)
    rerank: RerankSettings | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: use one of {', '.join(METHODS)}")
        if not isinstance(self.settings, SETTINGS_OF[self.method]):
            raise ValueError(f"method {self.method!r} needs {SETTINGS_OF[self.method].__name__}, "
                             f"got {type(self.settings).__name__}")
        if self.scoring.passage_tokens < 8:
            raise ValueError(f"passage_tokens must be at least 8, got {self.scoring.passage_tokens}")
        if self.scoring.backend not in BACKENDS:
            raise ValueError(f"unknown encoding backend {self.scoring.backend!r}: use one of {', '.join(BACKENDS)}")
        if not 0 <= self.scoring.validation_share < 1:
            raise ValueError(f"validation_share must be in [0, 1), got {self.scoring.validation_share}")
        full = self.settings.full if isinstance(self.settings, ShootoutSettings) else self.settings
        if isinstance(full, FullSettings) and full.loss in ("gist", "cached_gist") and full.hard_negatives > 1:
            raise ValueError("The GIST losses take at most one hard negative per pair: set hard negatives to 0 or 1, "
                             "or use (cached) MNRL for more.")
        if self.rerank is not None:
            if self.method == "shootout":
                raise ValueError("A rerank stage belongs to one method's run, not to a shoot-out.")
            self.rerank.validate()

    @classmethod
    def for_method(cls, method: str, base_model: str | None = None, seed: int = 42,
                   scoring: Scoring | None = None, **settings: Any) -> RunSpec:
        """A spec with the method's defaults, overridden by ``settings`` (unknown names are an error)."""
        if method not in SETTINGS_OF:
            raise ValueError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
        return cls(method, base_model, seed, scoring or Scoring(), _build(SETTINGS_OF[method], settings, method))

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
        rows = [("method", METHOD_LABELS[self.method]), ("base model", self.model_label), ("seed", str(self.seed))]
        rows += [(_label(Scoring, f.name), _fmt(getattr(self.scoring, f.name))) for f in dataclasses.fields(Scoring)]
        subs = [(m, getattr(self.settings, m)) for m in self.settings.methods] if isinstance(
            self.settings, ShootoutSettings) else [("", self.settings)]
        for prefix, obj in subs:
            for f in dataclasses.fields(obj):
                if not f.metadata.get("hidden"):
                    label = _label(type(obj), f.name)
                    rows.append((f"{prefix}: {label}" if prefix else label, _fmt(getattr(obj, f.name))))
        if self.rerank is not None:
            rows += [(f"rerank: {f.name.replace('_', ' ')}", _fmt(getattr(self.rerank, f.name)) or "(train one)")
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
                   _build(SETTINGS_OF[method], _as_stored(SETTINGS_OF[method], d["settings"]), method),
                   _build(RerankSettings, d["rerank"], "rerank") if d.get("rerank") else None)


_LEGACY_SCORING = {"index_max_seq_length": "passage_tokens", "val_fraction": "validation_share"}
_LEGACY_DROP = {"dataset_id", "method", "base_model", "seed"}


def _from_legacy(d: dict[str, Any]) -> RunSpec:
    """A flat config.json of runs made before the spec existed (method + TrainConfig keys)."""
    method = d.get("method", "full")
    scoring = Scoring(**{new: d[old] for old, new in _LEGACY_SCORING.items() if d.get(old) is not None})
    if method == "shootout":
        settings = ShootoutSettings(methods=list(d.get("methods", TUNING_METHODS)))
        for m in TUNING_METHODS:
            sub = {k: v for k, v in (d.get(m) or {}).items() if k in {f.name for f in dataclasses.fields(SETTINGS_OF[m])}}
            setattr(settings, m, SETTINGS_OF[m](**_as_stored(SETTINGS_OF[m], sub)))
    else:
        known = {f.name for f in dataclasses.fields(SETTINGS_OF[method])}
        settings = SETTINGS_OF[method](**_as_stored(SETTINGS_OF[method], {k: v for k, v in d.items()
                                                                          if k in known and k not in _LEGACY_DROP}))
    return RunSpec(method, d.get("base_model"), int(d.get("seed", 42)), scoring, settings)

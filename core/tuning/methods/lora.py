"""LoRA: low-rank adapters on the model's attention weights, trained on the full fine-tune's path (the same
Trainer, loss, pairs, validation and checkpoints: ``core.tuning.full`` with :data:`LORA_HOOKS`), through
PEFT (``peft.get_peft_model`` on the sentence-transformers model's transformer; this environment's
transformers asks for a newer PEFT than the one installed for ``model.add_adapter``, so the model is
wrapped with PEFT's own API).

Saves only the adapter weights in the run folder (``lora/``: ``adapter_config.json`` +
``adapter_model.safetensors``, plus PEFT's README.md: 593,072 bytes of weights for MiniLM at the default rank
16 on query and value, measured here, against 91.6 MB for a full fine-tune's ``model/``). The tuned side is rebuilt as the base model + that adapter, merged into its
weights; the export writes that merged model as a plain sentence-transformers folder (``model/`` in the
bundle, made once per run in ``lora_merged/``), so the bundle, its snippets and search.py work as for a
full fine-tune.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from core.retrieval.embedding import forget_fingerprint, load_model
from core.tuning.full import TrainHooks
from core.tuning.methods import full
from core.tuning.methods.base import Method
from core.tuning.settings import setting

FOLDER = "lora"  # the adapter, in the run folder
MERGED = "lora_merged"  # the merged model the bundle ships as model/ (written by the first export)


@dataclass
class LoraSettings(full.FullSettings):
    """LoRA: small low-rank matrices added to some weight matrices train; the model's own weights stay frozen."""

    learning_rate: float = setting(1e-3, "LoRA needs a much higher rate than a full fine-tune (only the small "
                                   "matrices move, starting from zero). Measured on the sample (bench/RESULTS.md, one run "
                                   "each): 2e-4 barely moved the model in 14 steps (nDCG@10 0.476 -> 0.491, p = 0.13); 1e-3 "
                                   "reached 0.575 (full fine-tune: 0.589), with every attention and dense layer adapted "
                                   "0.599 (a 2.7 MB adapter instead of 0.6 MB).",
                                   label="Learning rate", min=1e-7, max=1e-2, step=1e-5, format="%.0e")
    rank: int = setting(16, "Rank r of each adapter (A: d x r, B: r x d). Higher: more capacity and a bigger "
                        "adapter file; 8 to 32 is usual.", label="LoRA rank", min=1, max=256)
    alpha: int = setting(32, "Scale of the adapter's update (alpha / rank multiplies it); twice the rank is the "
                         "usual choice.", label="LoRA alpha", min=1, max=1024, advanced=True)
    dropout: float = setting(0.1, "Dropout on the adapter's input while training (regularises small data).",
                             label="LoRA dropout", min=0.0, max=0.5, step=0.05, advanced=True)
    target_modules: list[str] = setting(["query", "value"], "The weight matrices that get an adapter, by the end "
                                        "of their module name: query and value (the LoRA paper's choice) for "
                                        "BERT-like models such as MiniLM; add key and dense for more capacity. Other "
                                        "architectures name them differently (e.g. q_proj, v_proj).",
                                        label="Adapted layers", options=["query", "key", "value", "dense"],
                                        advanced=True)


def _config(settings: LoraSettings):
    from peft import LoraConfig, TaskType  # peft loads torch: only when a LoRA model is built

    return LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                      target_modules=list(settings.target_modules), task_type=TaskType.FEATURE_EXTRACTION)


def _transformer(model):
    """The sentence-transformers module holding the transformers model (its ``model`` attribute)."""
    return next(m for m in model.modules() if hasattr(m, "auto_model") and hasattr(m, "model"))


def add_adapters(model, settings: LoraSettings) -> None:
    """Wrap the model's transformer with fresh LoRA adapters (its own weights frozen)."""
    from peft import get_peft_model  # heavy (torch)

    module = _transformer(model)
    module.model = get_peft_model(module.model, _config(settings))


def save_adapter(model, folder: Path) -> None:
    """Only the adapter: ``adapter_config.json`` + ``adapter_model.safetensors``."""
    _transformer(model).model.save_pretrained(str(folder))


def load_checkpoint(model, checkpoint: Path) -> None:
    """A Trainer checkpoint's adapter weights into the model being trained (the best epoch; resuming)."""
    from peft import set_peft_model_state_dict  # heavy (torch)
    from safetensors.torch import load_file

    found = next(iter(sorted(Path(checkpoint).rglob("adapter_model.safetensors"))), None)
    if found is None:
        raise FileNotFoundError(f"{checkpoint} holds no adapter_model.safetensors")
    set_peft_model_state_dict(_transformer(model).model, load_file(str(found)))


def merge(model):
    """The adapters merged into the model's weights and removed: a plain sentence-transformers model."""
    module = _transformer(model)
    if hasattr(module.model, "merge_and_unload"):
        module.model = module.model.merge_and_unload()
    forget_fingerprint(model)
    return model


def tuned_model(run_dir: Path, spec, device: str | None = None):
    """The base model + the run's adapter, merged, at the run's passage token limit."""
    from peft import PeftModel  # heavy (torch)

    model = load_model(spec.base_model, device=device)
    module = _transformer(model)
    module.model = PeftModel.from_pretrained(module.model, str(Path(run_dir) / FOLDER))
    model = merge(model)
    model.max_seq_length = spec.scoring.passage_tokens
    return model


def merged_folder(run_dir: Path, spec) -> Path:
    """The merged model as a plain sentence-transformers folder in the run folder (written once)."""
    out = Path(run_dir) / MERGED
    if not (out / "modules.json").exists():
        staged = Path(run_dir) / f".{MERGED}.tmp"
        shutil.rmtree(staged, ignore_errors=True)
        tuned_model(run_dir, spec, device="cpu").save(str(staged))
        shutil.rmtree(out, ignore_errors=True)
        staged.replace(out)
    return out


# One measurement (python -m core train on sample_data, defaults, --device cpu, the shared 2-core machine): the
# same 14 steps took 147 s of training for LoRA against 84 s for the full fine-tune (PEFT's extra matmuls and
# dropout on a small model; the backward pass still runs through every layer): 1.75x, a single noisy figure.
LORA_SPEED = 1.75  # the cost model's factor, and the time budget's (core.tuning.budget)

LORA_HOOKS = TrainHooks(folder=FOLDER, prepare=add_adapters, save=save_adapter, finish=merge,
                        load_checkpoint=load_checkpoint, speed=LORA_SPEED)

METHOD = Method(
    name="lora",
    label="LoRA fine-tune",
    caption="Trains small low-rank adapters on the model's attention weights (the model's own weights stay "
    "frozen): the full fine-tune's training path, a file of a few hundred KB instead of a whole model.",
    settings=LoraSettings,
    fit=lambda ctx: full.fit_trained(ctx, LORA_HOOKS, tuned_model, "LoRA"),
    saves=(FOLDER,),
    in_shootout=True,
    cost=full.trained_cost(LORA_SPEED),
    tuned_model=tuned_model,
    bundle=lambda run_dir, spec: {"model": merged_folder(run_dir, spec)},
    bundle_model="model",
    snippet_encoder=full.SNIPPET_ENCODER,
    card_what="a LoRA fine-tune merged into the base model's weights (a plain sentence-transformers model)",
    card_usage=full.CARD_USAGE,
    card_reindex=full.CARD_REINDEX,
    train_hooks=LORA_HOOKS,
)

"""The Trainer arguments every training in the lab shares (the full fine-tune and the methods on its path,
the reranker, TSDAE): seeds, logging each step to the lab's own callbacks (no tqdm, no reporting service),
no data-loader workers, the device, and mixed precision.

Mixed precision: on a GPU bf16 where the card supports it, else fp16 (``gpu_mixed``); on a CPU bf16 when
``core.retrieval.embedding.cpu_bf16("train")`` says so and the caller measured it (``cpu_bf16_ok``).
"""

from __future__ import annotations

from typing import Any

from core.retrieval.embedding import cpu_bf16


def shared_args(device: str | None, seed: int, *, gpu_mixed: bool = True, cpu_bf16_ok: bool = False) -> dict[str, Any]:
    """Keyword arguments for a sentence-transformers ``*TrainingArguments`` (the rest is each trainer's own)."""
    import torch

    gpu = torch.cuda.is_available() and device != "cpu"
    mps = not gpu and device in (None, "mps") and torch.backends.mps.is_available()
    on_cpu = not gpu and not mps
    bf16 = (gpu_mixed and torch.cuda.is_bf16_supported()) if gpu else (on_cpu and cpu_bf16_ok and cpu_bf16("train"))
    return {
        "seed": seed,
        "data_seed": seed,
        "logging_steps": 1,
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        # transformers takes bf16 on a CPU only with use_cpu (else it looks for a GPU and refuses)
        "use_cpu": device == "cpu" or bool(on_cpu and bf16),
        "bf16": bool(bf16),
        "fp16": bool(gpu and gpu_mixed and not bf16),
    }

"""The Trainer arguments the lab's trainers share (core.retrieval.trainer_args)."""

from __future__ import annotations

import pytest
import torch

from core.retrieval import embedding
from core.retrieval.trainer_args import shared_args


def test_on_a_cpu_float32_unless_bf16_is_asked_for_measured_and_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "1")
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: True)
    args = shared_args("cpu", 7)  # a trainer whose bf16 was not measured (the reranker, TSDAE): float32
    assert args == {"seed": 7, "data_seed": 7, "logging_steps": 1, "report_to": "none", "disable_tqdm": True,
                    "dataloader_num_workers": 0, "use_cpu": True, "bf16": False, "fp16": False}
    assert shared_args("cpu", 7, cpu_bf16_ok=True)["bf16"] is True
    # no device named (the app's runs): on a CPU-only machine bf16 needs use_cpu, or transformers refuses it
    none = shared_args(None, 7, cpu_bf16_ok=True)
    assert (none["bf16"], none["use_cpu"]) == (True, True)
    assert (shared_args(None, 7)["bf16"], shared_args(None, 7)["use_cpu"]) == (False, False)
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: False)  # asked for, but the CPU lacks it
    assert shared_args("cpu", 7, cpu_bf16_ok=True)["bf16"] is False
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "0")
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: True)
    assert shared_args("cpu", 7, cpu_bf16_ok=True)["bf16"] is False


@pytest.mark.parametrize("bf16_card", [True, False])
def test_on_a_gpu_bf16_where_the_card_has_it_else_fp16_unless_the_trainer_keeps_float32(monkeypatch, bf16_card):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_card)
    args = shared_args(None, 0)
    assert (args["bf16"], args["fp16"], args["use_cpu"]) == (bf16_card, not bf16_card, False)
    kept = shared_args(None, 0, gpu_mixed=False)
    assert (kept["bf16"], kept["fp16"]) == (False, False)
    assert shared_args("cpu", 0)["use_cpu"] is True  # a CPU asked for on a GPU machine: no mixed precision
    assert (shared_args("cpu", 0)["bf16"], shared_args("cpu", 0)["fp16"]) == (False, False)


def test_transformers_accepts_the_arguments_with_no_device_named(tmp_path, monkeypatch):
    """What the app's runs pass (device None) on a CPU-only machine with bf16: the Trainer's own checks pass."""
    from core.tuning.full import _training_args
    from core.tuning.methods.full import FullSettings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: True)
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "1")
    args = _training_args(FullSettings(), 0, tmp_path, False, None)  # would raise "doesn't support bf16/gpu"
    assert args.bf16 and args.use_cpu


def test_the_three_trainers_take_the_shared_arguments(tmp_path, monkeypatch):
    from core.retrieval.rerank import RerankSettings
    from core.retrieval.rerank_train import _training_args as rerank_args
    from core.tuning.full import _training_args as full_args
    from core.tuning.methods.full import FullSettings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for args in (full_args(FullSettings(), 5, tmp_path, False, "cpu"),
                 rerank_args(RerankSettings(), tmp_path, 5, "cpu", True)):
        assert (args.seed, args.data_seed, args.logging_steps, args.report_to, args.disable_tqdm,
                args.dataloader_num_workers, args.use_cpu) == (5, 5, 1, [], True, 0, True)

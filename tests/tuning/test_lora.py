"""LoRA (core/tuning/methods/lora.py), registered with one line: a 2-step fit on a tiny dataset through the run
machinery, the encoder rebuilt from the run folder (base + adapter), and the export's merged folder loaded with
plain sentence-transformers giving the rebuilt encoder's vectors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.execute import execute
from core.insight.explore import open_run
from core.insight.export import write_bundle
from core.retrieval.embedding import CPU_BF16_ENV, encode, load_model
from core.tuning.methods import method_of
from core.tuning.methods.lora import FOLDER, LoraSettings
from core.tuning.runs import create_run
from core.tuning.spec import RunSpec, Scoring
from core.workspace.jobs import Job

pytestmark = pytest.mark.slow
TEXTS = ["why the pump leaks oil case 3", "When the valve sticks, inspect item 7: check mounting."]


def test_lora_is_registered_with_its_settings():
    m = method_of("lora")
    assert m.settings is LoraSettings and m.kind == "fit" and m.saves == (FOLDER,)
    spec = RunSpec.for_method("lora", rank=4, target_modules=["query", "key", "value"])
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert dict(spec.describe())["LoRA rank"] == "4"
    assert RunSpec.for_method("shootout").settings.lora.rank == 16  # a shoot-out can include it
    assert "lora" not in RunSpec.for_method("shootout").settings.methods  # not by default


def test_lora_fit_rebuild_and_export(tiny_store, tmp_path, monkeypatch):
    store, ds_id = tiny_store
    spec = RunSpec.for_method("lora", scoring=Scoring(passage_tokens=64), max_steps=2, batch_size=8,
                              max_seq_length=32, rank=4, learning_rate=5e-3)
    run_id = create_run(store, ds_id, spec)
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error
    run_dir = store.run_dir(run_id)
    saved = {p.name: p.stat().st_size for p in (run_dir / FOLDER).iterdir()}
    assert set(saved) >= {"adapter_config.json", "adapter_model.safetensors"}
    assert saved["adapter_model.safetensors"] < 1_000_000  # only the adapter: no model weights (~90 MB)
    assert not (run_dir / "model").exists()

    tuned = method_of("lora").tuned_model(run_dir, RunSpec.load(run_dir), "cpu")
    base = load_model(device="cpu")
    base.max_seq_length = tuned.max_seq_length
    v_tuned, v_base = encode(tuned, TEXTS, kind="query"), encode(base, TEXTS, kind="query")
    assert np.abs(v_tuned - v_base).max() > 1e-4  # the adapter moved the vectors

    view = open_run(store, run_id)  # the map's free-text search rebuilds the same encoder
    np.testing.assert_allclose(view._encoder("tuned")(TEXTS[0]), v_tuned[0], atol=1e-5)

    out = write_bundle(store, run_id, tmp_path / "bundle", with_onnx=False)
    info = json.loads((out / "export.json").read_text())
    assert info["model"] == "model" and (out / "model" / "modules.json").exists()
    assert not list((out / "model").rglob("adapter_config.json"))  # merged: a plain model folder
    from sentence_transformers import SentenceTransformer  # plain sentence-transformers, as a user loads it

    plain = SentenceTransformer(str(out / "model"), device="cpu")
    plain.max_seq_length = tuned.max_seq_length
    v_plain = plain.encode_query(TEXTS, normalize_embeddings=True)  # float32, as a user's sentence-transformers
    monkeypatch.setenv(CPU_BF16_ENV, "0")  # the lab in float32 too (it encodes in bf16 on a CPU that has it)
    np.testing.assert_allclose(v_plain, encode(tuned, TEXTS, kind="query"), atol=1e-5)

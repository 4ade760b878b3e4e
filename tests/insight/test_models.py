"""Which base model? Two local models (the bundled one and a 2-layer cut of it) compared offline."""

from __future__ import annotations

import json

import pytest

from core.insight.models import compare_models, comparison_table, model_token_limit
from tests.conftest import make_tiny_dataset


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, model):
    """The bundled model cut to its first two transformer layers and saved: a second, weaker local model."""
    from core.retrieval.embedding import load_model

    m = load_model(device="cpu")
    enc = m[0].auto_model.encoder
    enc.layer = enc.layer[:2]
    m[0].auto_model.config.num_hidden_layers = 2
    path = tmp_path_factory.mktemp("models") / "minilm-2-layers"
    m.save(str(path))
    return str(path)


@pytest.mark.slow
def test_two_local_models_compared_on_the_same_questions(tiny_model_dir):
    ds = make_tiny_dataset(40)
    ev = ds.subset(ds.query_ids[:20])
    cands, bm25 = compare_models(ev, [None, tiny_model_dir], passage_tokens=128)
    assert [c.model for c in cands] == ["all-MiniLM-L6-v2 (bundled)", tiny_model_dir]
    full, small = cands
    assert full.delta_ndcg is None and small.delta_ndcg is not None
    assert small.delta_low <= small.delta_ndcg <= small.delta_high
    assert small.dense["nDCG@10"] - full.dense["nDCG@10"] == pytest.approx(small.delta_ndcg)
    assert small.parameters_m < full.parameters_m and full.dimensions == small.dimensions == 384
    assert full.passage_tokens == 128 and full.token_limit == 512
    table = comparison_table(cands, bm25.metrics)
    assert table["model"].tolist()[-1] == "BM25 (keywords)" and table.loc[0, "vs first (nDCG@10, 95% CI)"] == "(reference)"
    assert table.iloc[-1]["hybrid nDCG@10"] == "-" and "None" not in table.astype(str).to_numpy()


def test_model_token_limit_reads_the_position_embeddings(model):
    assert model_token_limit(model) == 512  # whatever max_seq_length other tests left on the shared model


@pytest.mark.slow
def test_cli_evaluate_with_two_models(tiny_model_dir, tmp_path):
    from tests.test_cli import _pairs_file, _run

    path = _pairs_file(tmp_path / "pairs.jsonl", make_tiny_dataset(20))
    proc = _run(["evaluate", "--data", str(path), "--model", "all-MiniLM-L6-v2", "--model", tiny_model_dir, "--json"],
                tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["candidates"]) == 2 and out["candidates"][1]["delta_ndcg"] is not None

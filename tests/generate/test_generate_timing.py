"""The time a generation will take, said before it starts (issue 26): the round trip's encoding cost from what
the embedding cache lacks, divided by a rate measured on this machine (the last generation's, or a sample's)."""

from __future__ import annotations

import pytest

from core.generate import timing
from core.generate.filters import FilterSettings
from core.generate.job import (
    TEXT_OVERHEAD_CHARS,
    GenerationSpec,
    create_generation_run,
    encode_cost,
    load_summary,
)
from core.generate.offline import generate_offline
from core.generate.pairs import collection_passages
from core.generate.timing import EncodeRate, estimate_generation, measure_rate, question_cost, stored_rate
from core.retrieval.embedding import EmbeddingCache, model_fingerprint
from tests.generate.test_generate_job import collection, passages, run_sync  # noqa: F401 - the fixture


def test_cost_counts_characters_to_the_token_limit_plus_a_cost_per_text():
    assert encode_cost(["abcd", "abcd", "xy"], "passage") == 4 + 2 + 2 * TEXT_OVERHEAD_CHARS  # repeats once
    assert encode_cost(["a" * 10_000], "passage", tokens=100) == 500 + TEXT_OVERHEAD_CHARS  # the rest is never read


def test_estimate_from_a_rate_and_the_text_it_gives():
    ps = passages()
    spec = GenerationSpec.for_backend("", "offline", "inverse_cloze")
    q = question_cost(ps, spec)
    qs = {x.question for x in generate_offline(ps, spec.offline).questions}
    assert q == sum(len(t) for t in qs) + len(qs) * TEXT_OVERHEAD_CHARS
    rate = EncodeRate(1000.0, source="a rate measured somewhere")
    est = estimate_generation(ps, spec, rate)
    assert est.cost == encode_cost(list(ps.values()), "passage") + q
    assert est.seconds == pytest.approx(est.cost / 1000.0 + 12 * timing.OFFLINE_SECONDS_PER_PASSAGE)
    took = timing.fmt_duration(est.seconds)
    assert est.text().startswith(f"{took if took.startswith('about') else 'about ' + took} for 12 passages on this "
                                 "machine (") and "about about" not in est.text()
    assert "a rate measured somewhere" in est.text() and "seconds" not in est.text().split("(")[0]
    assert estimate_generation(ps, spec, None).text().startswith("unknown for 12 passages")
    off = GenerationSpec.for_backend("", "offline", "crop", filters=FilterSettings(round_trip=False))
    assert estimate_generation(ps, off, rate).text() == "seconds for 12 passages (round-trip check off)"


def test_a_finished_generation_stores_the_rate_the_next_estimate_uses(collection, model, monkeypatch):  # noqa: F811
    store, ds_id = collection
    cache = EmbeddingCache(store.cache_path)
    train, ev = store.load_dataset(ds_id)
    ps, _ = collection_passages(train, ev)
    spec = GenerationSpec.for_backend(ds_id, "offline", "inverse_cloze")
    assert stored_rate(store) is None  # nothing measured in this workspace yet
    sampled = measure_rate(model, ps, spec)
    assert sampled.per_second > 0 and sampled.fingerprint == model_fingerprint(model)
    assert sampled.source.startswith("measured just now on 12 of this collection's passages")
    before = estimate_generation(ps, spec, sampled, cache)
    assert before.to_encode == 12 and "encodes 12 passages not encoded yet" in before.text()

    assert run_sync(store, create_generation_run(store, spec)).snapshot().status == "done"
    run = store.list_runs()[0]
    s = load_summary(store.run_dir(run["id"]))
    assert s.encode_cost == before.cost  # what the estimate said it would encode, it encoded
    assert s.encode_seconds > 0 and s.encode_fingerprint == sampled.fingerprint and s.encode_model == ""
    assert stored_rate(store) is None  # 12 short passages: too little to trust
    monkeypatch.setattr(timing, "MIN_RATE_COST", 1)
    rate = stored_rate(store)
    assert rate is not None and rate.per_second == pytest.approx(s.encode_cost / s.encode_seconds)
    assert stored_rate(store, "some/other-model") is None  # a rate is the model's
    after = estimate_generation(ps, spec, rate, cache)  # the passages are cached now: only questions left
    assert after.to_encode == 0 and after.cost == question_cost(ps, spec)
    assert "the rate the last generation in this workspace measured" in after.text()

"""Offline pseudo-queries (inverse cloze, crop, keywords) and TSDAE domain adaptation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from core.generate.offline import OfflineSettings, generate_offline, split_sentences
from core.generate.tsdae import TSDAESettings, delete_words, train_tsdae, windows

S = [
    "The hydraulic pump leaks oil when the shaft seal is worn out.",
    "Replace the shaft seal every 500 operating hours.",
    "Check the pressure gauge after replacing the seal.",
    "Accumulator precharge pressure is checked monthly with nitrogen.",
    "See Note 4.",
]
PASSAGES = {
    "d1": " ".join(S),
    "d2": "Cooling fans run when the oil temperature exceeds 60 degrees. The thermostat opens at 55 degrees. "
    "A clogged cooler raises the oil temperature within minutes.",
    "d3": "A single sentence about filters that is long enough to crop.",
    "d4": "",
}


def test_sentences():
    assert split_sentences(PASSAGES["d1"]) == S
    assert split_sentences('He said "stop." Then Dr. Smith left.\n\nNew paragraph') == [
        'He said "stop."',
        "Then Dr. Smith left.",
        "New paragraph",
    ]
    assert split_sentences("第一句。第二句！") == ["第一句。", "第二句！"]


def test_sentences_glued_by_pdf_extraction_are_cut():
    # Text out of a PDF often loses the space after a full stop: half of sec-10k's passages read as one
    # "sentence" (so inverse cloze skipped them) before these were cut.
    assert split_sentences("We launched a marketplace.In 2012, we grew.Today, Lyft is large.“Quoted” too.") == [
        "We launched a marketplace.", "In 2012, we grew.", "Today, Lyft is large.", "“Quoted” too.",
    ]
    assert split_sentences("Our offering is the Marketplace.•Selection matters.") == [
        "Our offering is the Marketplace.", "•Selection matters.",
    ]
    # what stays whole: initials, decimals, numbered headings, file names, abbreviations
    for whole in ("The U.S.Army base.", "It grew 3.5 times.", "See Item 1.Business here.", "Use e.g.The tool.",
                  "Visit lyft.com today."):
        assert split_sentences(whole) == [whole], whole


@pytest.mark.parametrize("method", ["inverse_cloze", "crop", "keywords"])
def test_deterministic_given_seed_and_independent_of_other_passages(method):
    s = OfflineSettings(method=method, per_passage=2, seed=7)
    a = generate_offline(PASSAGES, s)
    b = generate_offline(PASSAGES, s)
    assert a.questions == b.questions and a.questions
    assert all(q.origin == f"generated:offline:{method}" for q in a.questions)
    if method != "keywords":  # keyword IDF depends on the collection by design
        alone = generate_offline({"d1": PASSAGES["d1"]}, s)
        assert alone.questions == [q for q in a.questions if q.passage_id == "d1"]
    other = generate_offline(PASSAGES, OfflineSettings(method=method, per_passage=2, seed=8))
    if method == "crop":
        assert other.questions != a.questions


def test_inverse_cloze_removes_the_sentence_as_orqa():
    r = generate_offline(
        PASSAGES, OfflineSettings(method="inverse_cloze", per_passage=3, ict_keep_sentence=0.0)
    )
    d1 = [q for q in r.questions if q.passage_id == "d1"]
    assert len(d1) == 3
    for q in d1:
        assert q.question in S[:4]  # a real sentence of 5+ words ("See Note 4." is never one)
        i = S.index(q.question)
        assert q.positive == " ".join(S[:i] + S[i + 1 :])
        assert q.positive_id() == f"d1#ict{i + 1}"
    assert r.skipped["d3"] == "a single sentence (inverse cloze needs two)"
    assert r.skipped["d4"] == "empty passage"
    assert len(r.questions) == 6  # 3 from d1, 3 from d2 (all its sentences)
    assert r.summary().startswith("6 inverse_cloze queries from 2 passages; 2 passages gave none")

    kept = generate_offline(
        PASSAGES, OfflineSettings(method="inverse_cloze", per_passage=3, ict_keep_sentence=1.0)
    )
    assert kept.questions and all(q.positive is None for q in kept.questions)


def test_inverse_cloze_at_orqas_share_keeps_the_sentence_about_one_time_in_ten():
    rng = random.Random(0)
    words = "pump valve seal hose gauge motor filter cooler tank line".split()
    many = {
        f"p{i}": " ".join(" ".join(rng.choices(words, k=8)).capitalize() + "." for _ in range(4))
        for i in range(300)
    }
    r = generate_offline(many, OfflineSettings(method="inverse_cloze", per_passage=1, ict_keep_sentence=0.1))
    share = sum(q.positive is None for q in r.questions) / len(r.questions)
    assert 0.05 <= share <= 0.15
    default = generate_offline(many, OfflineSettings(method="inverse_cloze", per_passage=1))
    assert default.questions and all(q.positive is None for q in default.questions)  # the default: passage as is
    assert [q.question for q in default.questions] == [q.question for q in r.questions]  # the same sentences


def test_crop_is_a_contiguous_span_within_bounds():
    s = OfflineSettings(method="crop", per_passage=3, crop_min_words=4, crop_max_words=8)
    r = generate_offline(PASSAGES, s)
    for q in r.questions:
        words = PASSAGES[q.passage_id].split()
        span = q.question.split()
        assert 4 <= len(span) <= 8 and q.positive is None
        assert any(words[i : i + len(span)] == span for i in range(len(words)))
    assert {q.passage_id for q in r.questions} == {"d1", "d2", "d3"}
    assert r.skipped == {"d4": "empty passage"}


def test_keywords_prefer_rare_terms_and_skip_stopwords():
    docs = {f"d{i}": f"The pump on line {i} is running and the pump is clean." for i in range(6)}
    docs["rare"] = "The pump is running and the precharge of the accumulator is clean."
    r = generate_offline(docs, OfflineSettings(method="keywords", per_passage=2, keywords_per_query=2))
    rare = [q.question for q in r.questions if q.passage_id == "rare"]
    assert rare[0] == "precharge accumulator"  # the top terms, in passage order; "pump" is in every passage
    assert len(rare) == 2 and rare[0] != rare[1]
    for q in r.questions:
        terms = q.question.split()
        assert len(terms) == 2 and not {"the", "and", "is", "on", "of"} & set(terms)
        assert all(t in docs[q.passage_id].lower() for t in terms)


def test_bad_offline_settings():
    with pytest.raises(ValueError, match="Unknown offline method"):
        generate_offline(PASSAGES, OfflineSettings(method="magic"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Crop shares"):
        generate_offline(PASSAGES, OfflineSettings(method="crop", crop_min_ratio=0.6, crop_max_ratio=0.5))


def test_offline_settings_have_help():
    import dataclasses

    for cls in (OfflineSettings, TSDAESettings):
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name}"


# --------------------------------------------------------------------------- TSDAE


def test_windows_and_noise():
    text = " ".join(f"w{i}" for i in range(50))
    parts = windows([text, "", "short one"], max_tokens=26)  # 26 / 1.3 = 20 words per window
    assert [len(p.split()) for p in parts] == [20, 20, 10, 2]
    assert " ".join(parts[:3]) == text
    tail = windows([" ".join(f"w{i}" for i in range(41))], max_tokens=26)
    assert [len(p.split()) for p in tail] == [20, 21]  # a 1-word tail joins the window before it

    noisy = [delete_words(text, 0.6, random.Random(s)) for s in range(50)]
    kept = np.mean([len(n.split()) for n in noisy]) / 50
    assert 0.3 < kept < 0.5  # 60% of words deleted on average
    assert delete_words("one", 0.99, random.Random(1)) == "one"  # at least one word stays
    assert noisy[0] == delete_words(text, 0.6, random.Random(0))


SMOKE_TEXTS = [
    f"The {t} on line {i} needs inspection when it {s}."
    for i, (t, s) in enumerate(
        (t, s)
        for t in ["pump", "valve", "hose", "filter"]
        for s in ["leaks oil", "runs hot", "vibrates", "sticks"]
    )
]


@pytest.mark.slow
def test_tsdae_smoke_saves_a_model_that_loads_and_encodes(tmp_path, model):
    from core.retrieval.embedding import encode, load_model

    steps: list[tuple[int, int]] = []
    settings = TSDAESettings(max_steps=2, max_tokens=32, batch_size=8)
    r = train_tsdae(
        SMOKE_TEXTS, settings, tmp_path / "tsdae", device="cpu", progress=lambda d, t: steps.append((d, t))
    )
    assert r.steps == 2 and steps[-1] == (2, 2) and r.texts == 16
    assert r.final_loss is not None and np.isfinite(r.final_loss)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tsdae"]  # no staging folder left behind
    info = json.loads(Path(r.model_dir, "tsdae.json").read_text())
    assert info["method"] == "tsdae" and info["settings"]["max_tokens"] == 32

    adapted = load_model(r.model_dir, device="cpu")
    assert adapted.max_seq_length == model.max_seq_length  # the search length, not the training one
    vecs = encode(adapted, SMOKE_TEXTS[:4], kind="passage")
    assert vecs.shape == (4, 384) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    base = encode(model, SMOKE_TEXTS[:4], kind="passage")
    assert np.abs(vecs - base).max() > 1e-4  # the weights moved


@pytest.mark.slow
def test_tsdae_cancel_saves_nothing(tmp_path):
    from core.workspace.jobs import Cancelled

    with pytest.raises(Cancelled):
        train_tsdae(
            SMOKE_TEXTS,
            TSDAESettings(max_steps=3, max_tokens=32),
            tmp_path / "tsdae",
            device="cpu",
            should_stop=lambda: True,
        )
    assert list(tmp_path.iterdir()) == []


def test_tsdae_refuses_empty_passages(tmp_path):
    with pytest.raises(ValueError, match="every passage given is empty"):
        train_tsdae({"a": " ", "b": ""}, TSDAESettings(), tmp_path / "m")


def test_the_measurement_the_page_states_is_the_benchmarks():
    """The Questions page's sentence about offline methods quotes bench/results/generate-sec10k.jsonl and, for the
    default, bench/results/readme-docs-only.jsonl."""
    import json
    from pathlib import Path

    from core.generate.offline import MEASURED

    lines = Path(__file__).resolve().parents[2] / "bench" / "results" / "generate-sec10k.jsonl"
    rows = {r["config"]: r for r in map(json.loads, lines.read_text().splitlines())}
    for config in ("inverse_cloze/adapter", "crop/adapter", "keywords/adapter", "crop/full", "keywords/full"):
        scores = rows[config]["scores"]
        assert f"{scores['tuned']['nDCG@10'][0]:.3f}" in MEASURED
        assert f"{scores['base']['nDCG@10'][0]:.3f}" in MEASURED and f"{scores['bm25']['nDCG@10'][0]:.3f}" in MEASURED
        assert rows[config]["change_tuned_vs_base"]["nDCG@10"][3] > 0.05  # "no change significant"
    # "lifted ... significant": the README's generate -> train path, after the sentence splitter's fix
    readme = Path(__file__).resolve().parents[2] / "bench" / "results" / "readme-docs-only.jsonl"
    lifted = json.loads(readme.read_text().splitlines()[-1])
    assert f"{lifted['ndcg@10']['tuned']:.3f}" in MEASURED
    change = next(c for c in lifted["comparisons"] if (c["a"], c["b"], c["metric"]) == ("base", "tuned", "nDCG@10"))
    assert f"+{change['delta']:.3f}" in MEASURED and change["low"] > 0 and change["p_value"] < 0.05
    tsdae = rows["tsdae"]  # "fell to": measured significantly lower
    assert f"{tsdae['scores']['tuned']['nDCG@10'][0]:.3f}" in MEASURED
    change, low, high, p = tsdae["change_tuned_vs_base"]["nDCG@10"]
    assert high < 0 and p < 0.05

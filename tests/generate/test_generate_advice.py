"""What the Train page preselects for generated training questions, and the figures it gives (issue 26)."""

from __future__ import annotations

from core.dataset import QADataset
from core.generate.advice import FULL_NDCG, GENERATED_BEST, method_advice
from core.generate.pairs import llm_origin, offline_origin


def _train(origins: list[str]) -> QADataset:
    n = len(origins)
    return QADataset({f"q{i}": f"question {i}" for i in range(n)}, {f"d{i}": f"passage {i}" for i in range(n)},
                     {f"q{i}": [f"d{i}"] for i in range(n)}, origins={f"q{i}": o for i, o in enumerate(origins)
                                                                      if o})


def test_generated_questions_get_the_full_fine_tune_with_the_figure():
    advice = method_advice(_train([offline_origin("inverse_cloze")] * 9 + ["human"]))
    assert advice is not None and advice.method == GENERATED_BEST == "full"
    assert (advice.generated, advice.total) == (9, 10)
    assert "9 of 10, mostly sentence as question" in advice.why
    assert f"from 0.657 to {FULL_NDCG:.3f}" in advice.why and "stayed at 0.657" in advice.why
    assert "did not move" in advice.against["adapter"] and f"{FULL_NDCG:.3f}" in advice.against["adapter"]
    assert "nudge" in advice.against and "full" not in advice.against


def test_other_generated_kinds_say_what_they_measured():
    crop = method_advice(_train([offline_origin("crop")] * 4))
    assert crop is not None and "(all, mostly random excerpt)" in crop.why
    assert "full fine-tune 0.661, adapter 0.660" in crop.why
    llm = method_advice(_train([llm_origin("qwen2.5:7b")] * 3))
    assert llm is not None and "mostly LLM-written" in llm.why and "neither moved" not in llm.why


def test_human_or_unknown_questions_get_no_advice():
    assert method_advice(_train(["human"] * 5)) is None
    assert method_advice(_train([""] * 5)) is None  # as uploaded: nothing says they are generated
    assert method_advice(_train([offline_origin("crop")] * 2 + ["human"] * 3)) is None  # a minority
    assert method_advice(QADataset({}, {}, {})) is None


def test_the_figure_is_the_readme_paths_last_measurement():
    """FULL_NDCG is the tuned dense nDCG@10 of the README's generate -> train path with today's defaults
    (bench/bench_readme_docs_only.py's last line in bench/results/readme-docs-only.jsonl, no variant flags)."""
    import json
    from pathlib import Path

    lines = (Path(__file__).resolve().parents[2] / "bench" / "results" / "readme-docs-only.jsonl").read_text()
    last = json.loads(lines.splitlines()[-1])
    assert not last.get("generate_args") and last.get("collection", "sec10k") == "sec10k"
    assert f"{last['ndcg@10']['tuned']:.3f}" == f"{FULL_NDCG:.3f}"

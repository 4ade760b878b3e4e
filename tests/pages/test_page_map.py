"""Embedding map page: questions vs passages before/after with the number that agrees with retrieval (the\ndefault view), links for a handful or one chosen question, and a run that kept the base model saying so."""

from __future__ import annotations

import json

import pytest

from core.insight.clouds import answer_in_top_k
from core.insight.map_figure import handful
from tests.pages.conftest import open_app, save_cheap_projection, texts
from ui import resources as res
from ui import state


def test_empty_state_without_a_finished_run(workspace):
    at = open_app("4_Embedding_map.py")
    assert not at.exception
    assert "No finished run yet" in texts(at)


@pytest.fixture(scope="module")
def moved_run(workspace):
    """(store, run id) of a finished adapter run on the sample dataset whose adapter moved (no hold-out), with its
    cheap maps: questions' answers move up and down, so the handfuls and the number are real."""
    from core.execute import execute
    from core.sample import ensure_sample
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec
    from core.workspace.jobs import Job
    from core.workspace.store import Store

    store = Store(workspace)
    run_id = create_run(store, ensure_sample(store)[0], RunSpec.for_method("adapter", epochs=3, val_fraction=0.0),
                        name="moved adapter")
    job = Job(store, run_id)
    job.run(lambda j: execute(store, run_id, j, device="cpu"))
    assert job.snapshot().status == "done", job.snapshot().error
    save_cheap_projection(store, run_id)  # both default maps, without UMAP's JIT warm-up
    return store, run_id


def _open_map(run_id: str):
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/4_Embedding_map.py").run()
    assert not at.exception
    return at


def _specs(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_questions_vs_passages_is_the_default_view_with_the_number_that_agrees_with_retrieval(moved_run):
    store, run_id = moved_run
    at = _open_map(run_id)
    view = res.get_run_view(run_id)
    base, tuned = (view.results.systems[r].metrics["Accuracy@10"] for r in ("base", "tuned"))
    specs = _specs(at)
    assert len(specs) == 2
    for spec, space, value in zip(specs, ("Before: base model", "After: tuned (adapter)"), (base, tuned)):
        assert {t["meta"] for t in spec["data"]} == {"cloud-passage", "cloud-query"}  # two clouds, no links
        assert spec["layout"]["title"]["text"].startswith(space)
        assert f"{value:.0%} find their answer in the top 10" in spec["layout"]["title"]["text"]
    assert specs[0]["layout"]["xaxis"]["range"] == specs[1]["layout"]["xaxis"]["range"]  # the same axes
    assert specs[0]["layout"]["yaxis"]["range"] == specs[1]["layout"]["yaxis"]["range"]
    questions = next(t for t in specs[0]["data"] if t["meta"] == "cloud-query")["customdata"]
    assert sorted(questions) == sorted(view.query_ids)
    # the one number: the run's Accuracy@10, equal to an independent exact search over the stored vectors
    row = {p: i for i, p in enumerate(view.passage_ids)}
    gold = [[row[d] for d in view.eval.relevant_docs[q]] for q in view.query_ids]
    assert tuned == pytest.approx(answer_in_top_k(view.tuned_q, view.tuned_d, gold))
    assert base == pytest.approx(answer_in_top_k(view.base_q, view.base_d, gold)) and base != tuned
    number = at.metric[0]
    assert number.label == "Answer in the top 10" and number.value == f"{tuned:.0%}"
    points = round(tuned * 100) - round(base * 100)
    assert f"{base:.0%} → {tuned:.0%} of the {len(view.query_ids)} questions ({points:+d} points)" in texts(at)
    assert "the run's Accuracy@10" in texts(at)  # its one line of meaning
    assert "base model unchanged" not in texts(at)
    # the other measures stay, folded away, with no arrow on a zero change
    assert [m.label for m in at.metric[1:]] == ["Nearest passage is the answer", "Median rank of the answer",
                                                "Answer vs best wrong passage"]
    first = view.alignment("tuned")["answer_first"]
    assert at.metric[1].value == f"{first:.0%}"


def test_link_view_draws_a_handful_or_one_chosen_question(moved_run):
    store, run_id = moved_run
    at = _open_map(run_id)
    at.radio(key="etl_map_view").set_value("links").run()
    assert not at.exception
    view = res.get_run_view(run_id)
    wl = res.winners_losers(run_id)
    for pick in ("improved", "worsened"):
        at.radio(key="etl_map_links").set_value(pick).run()
        assert not at.exception
        chosen = handful(wl, pick)
        assert len(chosen) == 5 and set(wl.loc[chosen, "movement"]) == {pick}
        for spec in _specs(at):
            drawn = next(t for t in spec["data"] if t.get("meta") == "queries")["customdata"]
            assert sorted(drawn) == sorted(chosen)  # those questions only, not all of them
            links = [t for t in spec["data"] if t.get("meta") == "links"]
            assert [t["name"] for t in links] == [f"gold link: {pick} (5)"]
        assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 5  # their ranks before -> after
    at.radio(key="etl_map_links").set_value("one").run()
    qid = view.query_ids[3]
    at.selectbox(key="etl_map_query").set_value(qid).run()
    at.slider(key="etl_map_k").set_value(5).run()
    assert not at.exception
    spec = _specs(at)[0]
    assert next(t for t in spec["data"] if t.get("meta") == "queries")["customdata"] == [qid]
    assert any(t.get("name") == "selected question" for t in spec["data"])
    rings = next(t for t in spec["data"] if t.get("meta") == "highlight-passages")
    assert rings["text"] == ["1", "2", "3", "4", "5"]  # k rings, not 1 or 2
    assert "Answer passage rank:" in texts(at)
    at.radio(key="etl_map_color").set_value("file").run()
    assert not at.exception


def test_a_run_that_kept_the_base_model_says_so_above_the_pictures(finished_run):
    store, run_id = finished_run  # the tiny adapter kept the identity: no epoch beat the base model
    save_cheap_projection(store, run_id)
    at = _open_map(run_id)
    note = " ".join(str(i.value) for i in at.info)
    assert "the tuned model is the base model unchanged" in note and "one map drawn twice, not a change" in note
    assert at.metric[0].label == "Answer in the top 10" and not at.metric[0].delta  # no arrow, no colour
    assert "before and after (the tuned model is the base model)" in texts(at)
    specs = _specs(at)
    assert len(specs) == 2 and "After: tuned (adapter)" in specs[1]["layout"]["title"]["text"]
    at.radio(key="etl_map_view").set_value("links").run()
    assert not at.exception
    assert "No question's answer moved up the ranking" in texts(at)  # nothing to link
    assert " ".join(str(i.value) for i in at.info).count("base model unchanged") == 1  # still said, once


@pytest.mark.slow
def test_new_settings_fit_umap_and_save_with_the_run(finished_run):
    store, run_id = finished_run
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/4_Embedding_map.py").run()
    assert "Neighbours" not in [s.label for s in at.slider]  # "Map settings" is closed: its form is not drawn
    at.session_state["etl_map_settings_open"] = True
    at.run()
    at.slider[0].set_value(5)  # neighbours
    at.number_input[0].set_value(300)  # points on the map
    at.button[0].click().run(timeout=300)  # "Redraw maps": UMAP fits (tens of seconds on 2 cores)
    assert not at.exception
    assert (store.run_dir(run_id) / "clouds-n5-d0.1-s300-r42.npz").exists()  # the default view's pictures
    assert len(at.get("plotly_chart")) == 2
    at.radio(key="etl_map_view").set_value("links").run(timeout=300)  # the link view fits its own map
    assert not at.exception
    assert (store.run_dir(run_id) / "projection-n5-d0.1-s300-r42.npz").exists()

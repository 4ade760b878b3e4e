"""Train page: launch a smoke-size full fine-tune, watch it, see the results table; cancel a run."""

from __future__ import annotations

import pytest

from core.generate.advice import FULL_NDCG
from tests.pages.conftest import open_app, texts, wait_for_run
from ui import state


def _train_page(ds_id: str):
    at = open_app()
    at.session_state[state.DATASET_KEY] = ds_id
    at.switch_page("pages/3_Train.py").run()
    assert not at.exception
    return at


def _smoke_settings(at, max_steps: int = 2, method: str = "full") -> None:
    at.radio(key="etl_cfg_method").set_value(method)
    at.session_state["etl_cfg_advanced"] = True  # open "Advanced settings" (its widgets are drawn only when open)
    at.run()
    key = "etl_cfg_full" if method == "full" else "etl_cfg_shootout_full"
    at.number_input(key=f"{key}_epochs").set_value(1)
    at.number_input(key=f"{key}_batch_size").set_value(8)
    at.selectbox(key=f"{key}_max_seq_length").set_value(64)
    at.number_input(key=f"etl_cfg_{method}_adv_max_steps").set_value(max_steps).run()
    # closed again: its widgets are gone from the page, the values chosen in them are kept (checked by the callers)
    at.session_state["etl_cfg_advanced"] = False


def test_training_window_choice_reads_in_words(tiny_dataset):
    _, ds_id = tiny_dataset
    at = _train_page(ds_id)
    at.session_state["etl_cfg_advanced"] = True
    at.run()
    box = at.selectbox(key="etl_cfg_full_adv_train_passage")
    assert box.options == ["first window", "best window", "answer's window, else best", "every window"]
    assert box.value == "answer"  # the default
    box.set_value("first").run()
    at.session_state["etl_cfg_advanced"] = False
    at.run()
    assert not at.exception
    assert "Train on (long passages) first window" in texts(at)  # closed, said in words



def test_an_invalid_combination_is_said_on_the_page_and_cannot_be_launched(tiny_dataset):
    """The spec is built once from the chosen settings, so RunSpec's own check speaks: GIST with 2 hard negatives."""
    store, ds_id = tiny_dataset
    runs_before = len(store.list_runs())
    at = _train_page(ds_id)
    at.session_state["etl_cfg_advanced"] = True
    at.run()
    at.selectbox(key="etl_cfg_full_adv_loss").set_value("gist").run()
    at.number_input(key="etl_cfg_full_hard_negatives").set_value(2).run()
    assert not at.exception
    assert len(at.error) == 1 and ("The GIST losses take at most one hard negative per pair: set hard negatives to "
                                   "0 or 1, or use (cached) MNRL for more.") in texts(at)
    assert "Estimated duration" not in texts(at)
    assert not [b for b in at.button if b.key == "etl_launch"]  # nothing to launch
    assert len(store.list_runs()) == runs_before
    at.number_input(key="etl_cfg_full_hard_negatives").set_value(1).run()  # a valid combination: launchable again
    assert not at.exception and not at.error
    assert "Estimated duration" in texts(at) and at.button(key="etl_launch")

@pytest.mark.slow
def test_launch_smoke_full_run_then_results(tiny_dataset):
    store, ds_id = tiny_dataset
    at = _train_page(ds_id)
    assert "Estimated duration" in texts(at)
    _smoke_settings(at)
    at.run()
    assert "Advanced settings changed: Max steps 2." in texts(at)  # closed, and still said
    at.button(key="etl_launch").click().run()
    assert not at.exception
    run_id = at.session_state[state.TRAIN_RUN_KEY]
    assert store.get_run(run_id)["config"]["settings"]["max_steps"] == 2
    page = texts(at)
    assert "tiny · Full fine-tune" in page
    assert wait_for_run(store, run_id) == "done"
    at.run()
    assert not at.exception
    page = texts(at)
    assert "· done" in page
    table = next(df.value for df in at.dataframe if "MRR@10" in df.value.columns)
    assert list(table.index)[:2] == ["base", "tuned (full)"] and len(table) == 5  # + BM25 and both hybrids
    assert at.session_state[state.RUN_KEY] == run_id  # the finished run is now the one to explore
    assert at.get("plotly_chart")  # the loss curve


@pytest.mark.slow
def test_cancel_a_run(tiny_dataset):
    store, ds_id = tiny_dataset
    at = _train_page(ds_id)
    _smoke_settings(at, max_steps=-1)
    at.run()
    at.button(key="etl_launch").click().run()
    run_id = at.session_state[state.TRAIN_RUN_KEY]
    at.button(key=f"etl_cancel_{run_id}").click().run()
    assert not at.exception
    assert wait_for_run(store, run_id) == "cancelled"
    at.run()
    assert "was cancelled" in texts(at)
    assert not at.button(key="etl_launch").disabled  # free to launch again


@pytest.mark.slow
def test_shootout_from_the_train_page(tiny_dataset):
    store, ds_id = tiny_dataset
    at = _train_page(ds_id)
    at.radio(key="etl_cfg_method").set_value("shootout").run()
    assert "Settings of the full fine-tune" in texts(at)
    _smoke_settings(at, method="shootout")
    at.run()
    at.button(key="etl_launch").click().run()
    assert not at.exception
    run_id = at.session_state[state.TRAIN_RUN_KEY]
    config = store.get_run(run_id)["config"]["settings"]
    assert config["methods"] == ["full", "adapter", "nudge"] and config["full"]["max_steps"] == 2
    assert wait_for_run(store, run_id, timeout=600) == "done"
    at.run()
    assert not at.exception
    page = texts(at)
    assert "Best on nDCG@10" in page
    table = next(df.value for df in at.dataframe if "seconds" in df.value.columns)
    assert {"base", "BM25", "tuned (full)", "tuned (adapter)", "tuned (NUDGE)"} <= set(table.index)
    assert state.RUN_KEY not in at.session_state or at.session_state[state.RUN_KEY] != run_id  # not a run to explore


def test_injected_exception_shows_failed_with_message(tiny_dataset, monkeypatch):
    store, ds_id = tiny_dataset

    def boom(store_, run_id, job, device=None, resume=False, prepare_views=False):
        job.phase("training", "Training")
        raise RuntimeError("injected failure inside training")

    monkeypatch.setattr("ui.train.execute", boom)  # what the Launch button runs in the job thread
    at = _train_page(ds_id)
    _smoke_settings(at)
    at.run()
    at.button(key="etl_launch").click().run()
    run_id = at.session_state[state.TRAIN_RUN_KEY]
    assert wait_for_run(store, run_id) == "failed"
    at.run()
    assert not at.exception
    page = texts(at)
    assert "· failed" in page and "The run failed: RuntimeError: injected failure inside training" in page
    assert any("Technical details" in e.label for e in at.expander)
    assert not at.button(key="etl_launch").disabled


def test_which_base_model_comparison_from_the_train_page(tiny_dataset):
    store, ds_id = tiny_dataset
    at = _train_page(ds_id)
    assert "etl_models_candidates" not in [t.key for t in at.text_area]  # drawn only when its expander is open
    at.session_state["etl_models_open"] = True
    at.run()
    at.text_area(key="etl_models_candidates").set_value("all-MiniLM-L6-v2\n./no/such/model").run()
    at.button(key="etl_models_go").click().run()
    assert "does not exist" in " ".join(e.value for e in at.error)  # refused before anything runs
    at.text_area(key="etl_models_candidates").set_value("all-MiniLM-L6-v2").run()
    at.button(key="etl_models_go").click().run()
    run_id = at.session_state[state.TRAIN_RUN_KEY]
    assert wait_for_run(store, run_id) == "done"
    at.run()
    assert not at.exception
    assert "Best dense model here" in texts(at)
    table = next(df.value for df in at.dataframe if "hybrid nDCG@10" in df.value.columns)
    assert table["model"].tolist() == ["all-MiniLM-L6-v2 (bundled)", "BM25 (keywords)"]
    assert state.RUN_KEY not in at.session_state or at.session_state[state.RUN_KEY] != run_id  # nothing to explore


def test_an_interrupted_full_run_offers_resume_only_from_a_checkpoint(tiny_dataset):
    from core.tuning.full import CHECKPOINTS
    from core.tuning.runs import create_run
    from core.tuning.spec import RunSpec

    store, ds_id = tiny_dataset
    run_id = create_run(store, ds_id, RunSpec.for_method("full"), name="cut short")
    store.update_run(run_id, status="interrupted", error="The app stopped while this run was active.")
    at = _train_page(ds_id)
    at.session_state[state.TRAIN_RUN_KEY] = run_id
    at.run()
    assert "stopped before its first checkpoint was saved (one every 10 steps)" in texts(at)
    assert not [b for b in at.button if b.label.startswith("Resume")]
    ckpt = store.run_dir(run_id) / CHECKPOINTS / "checkpoint-10"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    (ckpt / "optimizer.pt").write_bytes(b"")
    at.run()
    assert not at.exception
    assert [b.label for b in at.button if b.label.startswith("Resume")] == ["Resume from step 10"]
    assert "cannot resume" not in texts(at)


def test_generated_training_questions_preselect_the_full_fine_tune_and_say_why(tiny_dataset):
    """Issue 26: with generated training questions the page preselects what measured best for them (the full
    fine-tune), gives the figure, and warns when the query adapter is chosen instead."""
    from core.dataset import QADataset
    from core.generate.pairs import offline_origin

    store, human_id = tiny_dataset
    train, ev = store.load_dataset(human_id)
    gen = QADataset(train.queries, train.corpus, train.relevant_docs,
                    origins=dict.fromkeys(train.queries, offline_origin("inverse_cloze")))
    gen_id = store.save_dataset("generated", gen, ev)
    at = _train_page(human_id)
    at.radio(key="etl_cfg_method").set_value("adapter").run()  # chosen on human questions: no advice there
    assert "measured best on generated questions" not in texts(at) and "did not move" not in texts(at)
    at.session_state[state.DATASET_KEY] = gen_id
    at.run()
    assert not at.exception
    assert at.radio(key="etl_cfg_method").value == "full"  # preselected on entering the generated dataset
    info = " ".join(i.value for i in at.info)
    assert "so the full fine-tune is preselected" in info and f"from 0.657 to {FULL_NDCG:.3f}" in info
    at.radio(key="etl_cfg_method").set_value("adapter").run()  # the user may still choose otherwise
    assert at.radio(key="etl_cfg_method").value == "adapter"
    warning = " ".join(w.value for w in at.warning)
    assert "the query adapter did not move the base model" in warning and "stayed at 0.657" in warning
    at.run()
    assert at.radio(key="etl_cfg_method").value == "adapter"  # preselected once, not forced on every rerun


def test_the_rerank_stage_is_off_until_turned_on_and_then_estimated_and_saved(tiny_dataset):
    store, ds_id = tiny_dataset
    at = _train_page(ds_id)
    at.radio(key="etl_cfg_method").set_value("adapter").run()
    assert "reranker" not in texts(at)
    at.session_state["etl_cfg_rerank_open"] = True
    at.run()
    at.toggle(key="etl_cfg_rerank_toggle").set_value(True).run()
    assert not at.exception
    at.number_input(key="etl_cfg_rerank_top_k").set_value(12).run()
    at.session_state["etl_cfg_rerank_open"] = False  # closed: the choices are kept and said in its label
    at.run()
    assert "training the reranker" in texts(at) and "reranking the top 12" in texts(at)
    assert "Rerank stage on: the top 12 reranked by a cross-encoder trained on your training questions." in texts(at)
    at.button(key="etl_launch").click().run()
    assert not at.exception
    run = store.list_runs()[0]
    from core.tuning.spec import RunSpec

    spec = RunSpec.load(store.run_dir(run["id"]))
    assert spec.rerank is not None and spec.rerank.top_k == 12 and spec.rerank.model == ""


def test_a_large_training_split_shows_the_time_budget_in_the_estimate(tiny_dataset):
    """5,000 pairs take far more than the default 15 min: the estimate says what the budget keeps, what it leaves
    out and what more time would buy; 0 (no limit) trains on everything and says nothing."""
    from core.dataset import QADataset

    store, ds_id = tiny_dataset
    _, ev = store.load_dataset(ds_id)
    corpus = {f"d{p}": f"unit {p}: " + "the hydraulic pressure drops when the piston seal wears out " * 10
              for p in range(2500)}
    queries = {f"q{p}_{j}": f"why does the pressure of unit {p} drop ({j})?" for p in range(2500) for j in range(2)}
    big = QADataset(queries, corpus, {q: [f"d{q[1:].split('_')[0]}"] for q in queries})
    big_id = store.save_dataset("big", big, ev)
    at = _train_page(big_id)
    at.radio(key="etl_cfg_method").set_value("full").run()
    assert not at.exception
    page = texts(at)
    assert at.number_input(key="etl_cfg_full_time_budget_minutes").value == 15
    assert "Time budget 15 min: training on " in page and "left out — all of them would take about " in page
    assert "30 min would train on " in page
    at.number_input(key="etl_cfg_full_time_budget_minutes").set_value(0).run()
    assert not at.exception and "Time budget" not in texts(at)

"""Issue 27, second walk of a domain expert (items 1, 2, 4, 5 and 6): one passage count per collection on every
page, "no change" drawn as no change and a run that kept the base model saying so beside its scores and curve,
a generation run named by the passages it used, Runs comparing like with like, and a second save of a
collection read as the success it is."""

from __future__ import annotations

import pytest

from core.dataset import QADataset
from core.workspace.store import Store
from tests.conftest import make_tiny_dataset
from tests.generate.test_generate_job import passages
from tests.pages.conftest import make_finished_run, open_app, texts, wait_for_run
from ui import questions, state

SHARED = b"The pump leaks oil when the shaft seal is worn, so replace the seal kit. " * 12  # a passage alone
DOCS = {  # both documents end with the same paragraph: its passage is kept once
    "a.txt": b"Check the accumulator precharge every month with a gauge. " * 16 + b"\n\n" + SHARED,
    "b.txt": b"Replace the hoses every five years or when they crack. " * 16 + b"\n\n" + SHARED,
}


def upload(at, key: str, files: dict[str, bytes]):
    return at.file_uploader(key=key).set_value([(n, b, "application/octet-stream") for n, b in files.items()])


@pytest.fixture(scope="module")
def generated(workspace):
    """A collection of 12 passages whose training split holds "sentence as question" pairs: each positive is a
    cut copy of its passage (``<passage id>#ic``), trained on and never searched; 4 labelled evaluation
    questions over the 12 passages."""
    store = Store(workspace)
    ps = passages()
    cut = {f"{p}#ic": t.split(". ", 1)[1] for p, t in ps.items()}  # the question's sentence cut out
    queries = {f"gen-{i:05d}": t.split(". ", 1)[0] for i, t in enumerate(ps.values(), start=1)}
    train = QADataset(queries, {**ps, **cut}, {q: [f"{p}#ic"] for q, p in zip(queries, ps)},
                      origins={q: "generated:inverse_cloze" for q in queries})
    ev_q = {f"h{i}": f"How often is line {i} inspected?" for i in range(4)}
    ev = QADataset(ev_q, dict(ps), {f"h{i}": [f"p{i}"] for i in range(4)}, origins={q: "human" for q in ev_q})
    return store, store.save_dataset("generated", train, ev, meta={"kind": "collection"})


# --------------------------------------------------------------------------- item 1: one passage count


def test_a_collection_has_one_passage_count_on_every_page(generated):
    """Issue 27 item 1: the Train page said "9,104 passages" for a 3,866-passage collection (the cut copies of
    generated pairs counted as passages); Data's table, Questions and Train now say 12, and Train says what the
    12 cut copies are."""
    store, ds_id = generated
    assert store.get_dataset(ds_id)["n_passages"] == 12  # the catalog: cut copies are not passages
    at = open_app()
    at.session_state[state.DATASET_KEY] = ds_id
    saved = next(df.value for df in at.dataframe if "passages" in df.value.columns)
    assert saved.loc[saved["name"] == "generated", "passages"].tolist() == [12]
    at.switch_page("pages/2_Questions.py").run()
    assert not at.exception, at.exception
    assert "**generated**: 12 passages · 12 training questions" in "\n".join(m.value for m in at.markdown)
    at.switch_page("pages/3_Train.py").run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "12 training questions, 4 evaluation questions, 12 passages." in page
    assert "Training also reads 12 cut copies of passages (a generated question's sentence cut out)" in page
    assert "(12 training pairs, 12 passages to search)" in page
    # the estimate's phases (those under a second are not shown on the page) count the same way
    from core.tuning.estimate import estimate_run
    from core.tuning.spec import RunSpec

    train, ev = store.load_dataset(ds_id)
    parts = [what for what, _ in estimate_run(RunSpec.for_method("adapter"), train, ev).parts]
    assert "encoding 12 passages with the base model (first run only; then cached)" in parts


def test_documents_say_how_many_passages_were_cut_and_how_many_kept(workspace):
    """Issue 27 item 1: Data said "3873 passages", then "3,866": the first count is what the documents were
    cut into, and the repeat kept once is said with the count that stays."""
    at = open_app()
    upload(at, "etl_doc_files", DOCS).run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "2 document(s) read, cut into 6 passages." in page
    assert "2 passages with the same text as another (in the same file or another) kept once: 4 passages in the " \
           "collection." in page
    assert "4 passages from 2 file(s), no questions yet" in page


# --------------------------------------------------------------------------- item 2: zero is no change


def _zero_is_neutral(metric) -> bool:
    """A metric card whose delta is drawn with no arrow and no colour."""
    from streamlit.proto.Metric_pb2 import Metric

    return metric.proto.direction == Metric.MetricDirection.NONE and metric.proto.color == Metric.MetricColor.GRAY


def test_no_change_is_drawn_as_no_change_and_a_kept_base_model_says_so(generated, tiny_dataset):
    """Issue 27 item 2: the cards read "↑ +0.000 vs base" for a run that kept the base model; now zero has no
    arrow and no colour, and Compare and Train say beside the scores and the loss curve that nothing changed."""
    store, ds_id = tiny_dataset
    run_id = make_finished_run(store, ds_id, name="kept the base")  # the tiny set: the adapter keeps the identity
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/5_Compare.py").run()
    assert not at.exception, at.exception
    tiles = {m.label: m for m in at.metric}
    tuned = [tiles[f"{m} (tuned)"] for m in ("Accuracy@10", "MRR@10", "nDCG@10")]
    assert [t.proto.delta for t in tuned] == ["0.000 vs base"] * 3
    assert all(_zero_is_neutral(t) for t in tuned)
    assert "These scores: No epoch of the query adapter beat the base model" in texts(at)

    at.session_state[state.TRAIN_RUN_KEY] = run_id
    at.switch_page("pages/3_Train.py").run()
    assert not at.exception, at.exception
    assert at.get("plotly_chart"), "the adapter's loss curve"
    assert "Training ran (the curve above), but it changed nothing: No epoch of the query adapter" in texts(at)


def test_metric_delta_rule():
    """The one rule of every metric card (``ui.widgets.metric_delta``): what rounds to zero is neutral."""
    from ui.widgets import metric_delta

    assert metric_delta(0.0) == {"delta": "0.000 vs base", "delta_color": "off", "delta_arrow": "off"}
    assert metric_delta(-0.0002)["delta"] == "0.000 vs base"  # never "-0.000", never red
    assert metric_delta(0.0, "+g", inverse=True) == {"delta": "0 vs base", "delta_color": "off", "delta_arrow": "off"}
    assert metric_delta(0.2, "+.0f", " points vs base")["delta_arrow"] == "off"
    assert metric_delta(0.012) == {"delta": "+0.012 vs base", "delta_color": "normal", "delta_arrow": "auto"}
    assert metric_delta(-3, "+g", inverse=True) == {"delta": "-3 vs base", "delta_color": "inverse",
                                                    "delta_arrow": "auto"}
    assert metric_delta(0.05, suffix="", coloured=False)["delta_color"] == "off"


def test_time_left_says_what_is_measured():
    """Issue 27 item 7: "measuring…" for 45 s said nothing; the doubled "about about" stays gone."""
    from types import SimpleNamespace

    from ui.widgets import time_left

    assert time_left(SimpleNamespace(eta_seconds=None, total=3866, unit="passages")) == \
        "timing the first passages to estimate the time left"
    assert time_left(SimpleNamespace(eta_seconds=780.0, total=3866, unit="passages")) == "about 13 min left"
    assert time_left(SimpleNamespace(eta_seconds=None, total=0, unit="")) == ""


# --------------------------------------------------------------------------- item 4: the run's name


def test_a_generation_run_is_named_by_the_passages_it_used(workspace):
    """Issue 27 item 4: a run generated from 40 passages (max passages) was named "... · 3866 passages": the
    name field kept the count it first showed."""
    store = Store(workspace)
    ds_id = store.save_dataset("twelve", QADataset({}, passages(), {}), meta={"kind": "collection"})
    at = open_app()
    at.session_state[state.DATASET_KEY] = ds_id
    at.switch_page("pages/2_Questions.py").run()
    assert not at.exception, at.exception
    at.number_input(key="etl_q_max_passages").set_value(2).run()
    at.button(key="etl_q_generate").click().run()
    assert not at.exception, at.exception
    run_id = at.session_state[questions.GEN_RUN_KEY]
    assert store.get_run(run_id)["name"] == "questions · Offline (no LLM) · 2 passages"
    assert wait_for_run(store, run_id) in ("done", "failed")  # leave no active job behind
    assert questions.run_name("LLM endpoint", 3866) == "questions · LLM endpoint · 3,866 passages"


# --------------------------------------------------------------------------- item 5: like with like


def test_runs_compare_offers_like_with_like_and_says_loudly_when_not(tiny_dataset):
    """Issue 27 item 5: runs of 271 and 19 evaluation questions were put side by side with no warning, and the
    nDCG@10 column was cut off in both narrow tables."""
    store, ds_id = tiny_dataset
    ds = make_tiny_dataset(30)
    q = ds.query_ids
    ev = QADataset({k: ds.queries[k] for k in q[26:]}, ds.corpus, {k: ds.relevant_docs[k] for k in q[26:]})
    other_ds = store.save_dataset("tiny, 4 evaluation questions", ds.subset(q[:26], [f"d{i}" for i in range(26)]), ev)
    other = make_finished_run(store, other_ds, name="other data")
    a = make_finished_run(store, ds_id, name="run A")
    b = make_finished_run(store, ds_id, name="run B")
    at = open_app("6_Runs.py")
    assert not at.exception, at.exception
    at.selectbox(key="etl_runs_cmp_0").set_value(a).run()
    offered = at.selectbox(key="etl_runs_cmp_1").options
    assert any("run B" in o for o in offered) and not any("other data" in o for o in offered)
    assert not at.error
    tables = [df.value for df in at.dataframe if "MRR@10" in df.value.columns and "name" not in df.value.columns]
    assert len(tables) == 2 and all(list(t.columns)[0] == "nDCG@10" for t in tables)  # the history has "name"

    at.checkbox(key="etl_runs_cmp_any").check().run()
    at.selectbox(key="etl_runs_cmp_1").set_value(other).run()
    assert not at.exception, at.exception
    error = " ".join(e.value for e in at.error)
    assert "These two runs are not comparable: different evaluation questions (6 vs 4)" in error
    assert store.get_run(b)["status"] == "done"


# --------------------------------------------------------------------------- item 6: Enter, then Save


def test_saving_a_collection_twice_says_saved_not_already_exists(workspace):
    """Issue 27 item 6: Enter in the name saved the collection silently, then the button said "A dataset named
    ... already exists" in red. Enter no longer submits the form; a second save of the same says the same
    success, next to the form, and saves nothing more."""
    store = Store(workspace)
    before = len(store.list_datasets())
    at = open_app()
    upload(at, "etl_doc_files", DOCS).run()
    at.text_input(key="etl_coll_name").set_value("twice")
    save = "Saved collection “twice”: 4 passages. Go to Questions"
    next(b for b in at.button if b.label == "Save collection").click().run()
    assert not at.exception and not at.error
    assert save in " ".join(s.value for s in at.success).replace("\\", "")
    next(b for b in at.button if b.label == "Save collection").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert save in " ".join(s.value for s in at.success).replace("\\", "")
    assert len(store.list_datasets()) == before + 1
    assert at.session_state[state.DATASET_KEY] == store.find_dataset("twice")["id"]
    form = next(b for b in at.get("form") if b.proto.form.form_id == "etl_save_collection")
    assert form.proto.form.enter_to_submit is False  # Enter in the name does nothing: the button saves

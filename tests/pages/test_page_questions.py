"""Questions page (AppTest): generate offline on a tiny collection, see the funnel, edit and accept in the
review table, make the kept questions the training split, label 3 questions, read the counter."""

from __future__ import annotations

import hashlib

import pytest

from core.dataset import QADataset, question_origin
from core.generate.job import load_summary
from core.generate.judgments import load_judgments
from core.generate.review import review_table
from core.workspace.store import Store
from tests.generate.test_generate_job import passages
from tests.pages.conftest import open_app, texts, wait_for_run
from ui import questions, state

EDITED = "How often must the pump on line 0 be inspected?"
LABELS = ("How often is the valve inspected?", "Which seal kit fits the hose?", "Where are filter checks recorded?")


@pytest.fixture(scope="module")
def collection(workspace):
    store = Store(workspace)
    ps = passages()
    ds_id = store.save_dataset("manuals", QADataset({}, ps, {}, sources={p: f"manual.pdf p.{i + 1}" for i, p in
                                                                         enumerate(ps)}), meta={"kind": "collection"})
    return store, ds_id


def _page(ds_id: str):
    at = open_app()
    at.session_state[state.DATASET_KEY] = ds_id
    at.switch_page("pages/2_Questions.py").run()
    assert not at.exception, at.exception
    return at


def _tab(at, label: str):
    """Open a tab of the page (only the open tab's content runs)."""
    at.session_state["etl_q_tabs"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def test_generate_review_label(collection):
    store, ds_id = collection
    at = _page(ds_id)
    page = texts(at)
    assert "12 passages · 0 training questions · 0 evaluation questions (0 labelled by you)" in page
    # only the open tab (Generate) is drawn: the review and labelling tabs cost nothing until opened
    assert "etl_q_generate" in [b.key for b in at.button] and "No finished generation run" not in page
    assert "too few to compare models" not in page
    page = texts(_tab(at, "2 · Review"))
    assert "No finished generation run for this dataset yet" in page
    assert "etl_q_generate" not in [b.key for b in at.button]
    assert "0 labelled questions: too few to compare models" in texts(_tab(at, "3 · Label"))
    _tab(at, "1 · Generate")

    # 1. Generate: offline is the default backend; the run is a background job with a live panel.
    assert at.radio(key="etl_q_backend").value == "offline"
    at.button(key="etl_q_generate").click().run()
    run_id = at.session_state[questions.GEN_RUN_KEY]
    assert store.get_run(run_id)["method"] == "generate"
    assert wait_for_run(store, run_id) == "done"
    at.run()
    assert not at.exception, at.exception
    s = load_summary(store.run_dir(run_id))
    page = texts(at)
    assert s.line in page and s.line.startswith("24 generated") and s.line.endswith(f"{s.kept} kept")
    assert {m.label: m.value for m in at.metric}["Kept"] == str(s.kept)
    assert s.kept >= 3

    # 2. Review: edit one question, reject one kept question, then use the kept ones for training.
    _tab(at, "2 · Review")
    editor = at.data_editor[0]
    table = editor.value
    assert list(table.columns)[:4] == ["keep", "question", "passage", "verdict"] and len(table) == 24
    kept_rows = [i for i, k in enumerate(table["keep"]) if k]
    first, second = kept_rows[:2]
    at.session_state[editor.key] = {"edited_rows": {first: {"question": EDITED}, second: {"keep": False}},
                                    "added_rows": [], "deleted_rows": []}
    at.run()
    assert not at.exception, at.exception
    n = len(kept_rows) - 1
    use = at.button(key=f"etl_q_use_{run_id}")
    assert use.label == f"Use the {n:,} kept questions as the training split"
    use.click().run()
    train, ev = store.load_dataset(ds_id)
    assert len(train) == n and EDITED in train.queries.values()
    assert question_origin(train) == "generated" and ev is None  # nothing generated entered evaluation
    assert f"The training split now holds {n} generated questions (1 edited by you)" in texts(at)
    assert review_table(store.run_dir(run_id)).loc[first, "question"] == EDITED  # choices saved with the run

    # bulk: keep everything, a fresh table shows it
    at.button(key=f"etl_q_bulk_all_{run_id}").click().run()
    assert at.data_editor[0].value["keep"].all()
    assert at.button(key=f"etl_q_use_{run_id}").label == "Use the 24 kept questions as the training split"

    # 3. Label three questions: type, tick the first candidate, save; each is in the eval split at once.
    _tab(at, "3 · Label")
    for i, q in enumerate(LABELS, start=1):
        at.text_input(key=questions.LABEL_TEXT_KEY).set_value(q).run()
        boxes = [c for c in at.checkbox if c.key and c.key.startswith("etl_q_rel_")]
        assert len(boxes) == 12  # the top 20 of base model and BM25, pooled: here the whole collection
        boxes[0].check().run()
        at.button(key="etl_q_save_label").click().run()
        assert not at.exception, at.exception
        _, ev = store.load_dataset(ds_id)
        assert len(ev) == i and q in ev.queries.values()
        assert at.text_input(key=questions.LABEL_TEXT_KEY).value == ""  # ready for the next one
    assert set(ev.origins.values()) == {"human"} and question_origin(ev) == "human-labelled"
    assert set(ev.corpus) == set(passages())
    assert len(load_judgments(store, ds_id)) == 3  # and what was shown, judged
    page = texts(at)
    assert {m.label: m.value for m in at.metric}["Labelled by you"] == "3"
    assert "With 3 labelled questions, a difference smaller than ~0.24 in nDCG@10 is not detectable" in page
    assert "(3 labelled by you)" in page


def _boxes(at) -> list[str]:
    """Passage ids of the bench's tick boxes, in page order."""
    return [c.key.rsplit("_", 1)[1] for c in at.checkbox if c.key and c.key.startswith("etl_q_rel_")]


def test_label_bench_is_blind_shows_more_and_searches_every_passage(workspace):
    store = Store(workspace)
    topics = ["pump", "valve", "hose", "filter", "cylinder", "accumulator", "seal", "cooler", "motor", "reservoir"]
    ps = {f"m{i:02d}": f"The {topics[i % 10]} of press {i} is checked every {10 + i} days; note wear {i // 10}."
          for i in range(59)}
    ps["m59"] = "Quarterly audit of the zeppelin hangar roof and its lightning conductors."  # no system finds it
    ds_id = store.save_dataset("presses", QADataset({}, ps, {}), meta={"kind": "collection"})
    at = _page(ds_id)
    _tab(at, "3 · Label")
    question = "How often is the pump of press 20 checked?"
    qtag = hashlib.sha1(question.encode()).hexdigest()[:8]
    at.text_input(key=questions.LABEL_TEXT_KEY).set_value(question).run()
    assert not at.exception, at.exception
    first = _boxes(at)
    assert 20 <= len(first) <= 40 and len(set(first)) == len(first)  # top 20 of each system, each passage once
    assert "m59" not in first
    page = texts(at)
    assert questions.NOT_TICKED_NOTE in page
    cards = [m.value for m in at.markdown if " characters" in m.value]
    assert len(cards) == len(first)
    assert not any(w in c for c in cards for w in ("#", "base", "BM25", "keyword", "rank"))  # blind: no system named

    # show more: the next 20 of each system, after the ones shown (which keep their place)
    at.button(key="etl_q_more").click().run()
    assert not at.exception, at.exception
    second = _boxes(at)
    assert second[:len(first)] == first and len(second) > len(first)

    # tick a candidate, then find the needle with the keyword search and tick it too
    at.checkbox(key=f"etl_q_rel_{qtag}_{first[0]}").check().run()
    at.text_input(key=f"etl_q_kw_{qtag}").set_value("zeppelin hangar").run()
    assert not at.exception, at.exception
    assert _boxes(at)[-1] == "m59"
    at.checkbox(key=f"etl_q_rel_{qtag}_m59").check().run()
    at.text_input(key=f"etl_q_kw_{qtag}").set_value("lightning").run()  # other words: the ticked find stays
    shown = _boxes(at)
    assert shown.count("m59") == 1 and at.checkbox(key=f"etl_q_rel_{qtag}_m59").value
    save = at.button(key="etl_q_save_label")
    assert save.label == "Save label (2 passages)"
    save.click().run()
    assert not at.exception, at.exception
    _, ev = store.load_dataset(ds_id)
    (qid,) = ev.query_ids
    assert ev.relevant_docs[qid] == [first[0], "m59"]
    judged = load_judgments(store, ds_id)[qid]
    assert set(judged) == set(shown)  # every passage shown is judged
    assert {p for p, v in judged.items() if v["relevant"]} == {first[0], "m59"}
    assert judged["m59"]["found_by"] == ["search"] and {"base", "bm25"} & set(judged[first[0]]["found_by"])
    page = texts(at)
    assert f"Saved question {qid} with 2 relevant passages" in page
    assert f"{len(shown) - 2} passages shown and not ticked recorded as not relevant" in page

    # the same question again: its label comes back ticked (the find outside the pool listed first)
    at.text_input(key=questions.LABEL_TEXT_KEY).set_value(question).run()
    assert not at.exception, at.exception
    again = _boxes(at)
    assert again[0] == "m59" and at.checkbox(key=f"etl_q_rel_{qtag}_m59").value
    assert at.checkbox(key=f"etl_q_rel_{qtag}_{first[0]}").value
    assert at.button(key="etl_q_save_label").label == "Save label (2 passages)"


def test_llm_backend_key_typed_in_the_page_is_never_saved(collection, monkeypatch):
    from tests.llm_server import FakeLLMServer

    for var in ("ETL_LLM_API_KEY", "OPENAI_API_KEY", "ETL_LLM_BASE_URL", "OPENAI_BASE_URL", "ETL_LLM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    secret = "sk-page-SECRET-5566778899"
    store, ds_id = collection
    at = _page(ds_id)
    at.radio(key="etl_q_backend").set_value("llm").run()
    key_box = at.text_input(key=questions.KEY_WIDGET)
    assert key_box.proto.type == key_box.proto.PASSWORD
    with FakeLLMServer(api_key=secret) as server:
        at.text_input(key="etl_q_llm_url").set_value(server.base_url)
        at.text_input(key="etl_q_llm_model").set_value(server.model)
        at.text_input(key=questions.KEY_WIDGET).set_value(secret)
        at.checkbox(key="etl_q_flt_llm_llm_round_trip").uncheck()
        at.button(key="etl_q_llm_test").click().run()
        assert not at.exception, at.exception
        assert f"{server.model} at {server.base_url} answered: “What does record" in texts(at), texts(at)
        at.button(key="etl_q_generate").click().run()
        run_id = at.session_state[questions.GEN_RUN_KEY]
        assert wait_for_run(store, run_id) == "done"
        at.run()
        assert not at.exception, at.exception
        assert server.requests == 1 + 12 and all(h == f"Bearer {secret}" for h in server.auth_headers)
    s = load_summary(store.run_dir(run_id))
    assert s.backend == "llm" and s.generated == 36 and s.line in texts(at)
    config = store.get_run(run_id)["config"]
    assert config["llm"]["base_url"] == server.base_url and not any("api" in k for k in config["llm"])
    disk = b"".join(p.read_bytes() for p in store.root.rglob("*") if p.is_file())
    assert secret.encode() not in disk


def test_compare_and_report_warn_when_the_evaluation_questions_are_generated(workspace):
    from core.insight.report import build_report
    from tests.conftest import make_tiny_dataset
    from tests.pages.conftest import make_finished_run

    store = Store(workspace)
    ds = make_tiny_dataset(30, tag="g")
    q = ds.query_ids
    train = ds.subset(q[:24])
    ev = QADataset({k: ds.queries[k] for k in q[24:]}, ds.corpus, {k: ds.relevant_docs[k] for k in q[24:]},
                   origins={k: "generated:offline:crop" for k in q[24:]})
    run_id = make_finished_run(store, store.save_dataset("generated eval", train, ev), name="gen eval")
    at = open_app()
    at.session_state[state.RUN_KEY] = run_id
    at.switch_page("pages/5_Compare.py").run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "(generated); base and tuned models" in page
    assert "The evaluation questions are generated: these scores are optimistic" in page
    html = build_report(store, run_id, with_maps=False)
    assert '<p class="warn"><b>Warning:</b> The evaluation questions are generated' in html


def test_time_text_comes_from_the_rate_measured_on_this_machine(collection, monkeypatch):
    """Issue 26: the Generate tab says how long the run will take before it starts, from a rate measured here (a
    sample of the collection just now, or the last generation of this workspace), never 'seconds' while the
    round-trip check is on."""
    from core.generate import timing

    store, ds_id = collection
    monkeypatch.setattr(timing, "MIN_RATE_COST", 10**12)  # no stored rate counts: measured on a sample
    at = _page(ds_id)
    info = " ".join(i.value for i in at.info)
    assert "Estimated time: **about " in info and "for 12 passages on this machine" in info
    assert "measured just now on 12 of this collection's passages" in info
    assert "seconds" not in texts(at).split("Estimated time")[0].split("Cuts pseudo-questions")[-1]
    if not any(r["method"] == "generate" and r["status"] == "done" for r in store.list_runs()):  # run alone
        from core.generate.job import GenerationSpec, create_generation_run
        from tests.generate.test_generate_job import run_sync

        spec = GenerationSpec.for_backend(ds_id, "offline", "inverse_cloze")
        assert run_sync(store, create_generation_run(store, spec)).snapshot().status == "done"
    monkeypatch.setattr(timing, "MIN_RATE_COST", 1)  # the earlier generation's rate, its passages cached
    at.run()
    info = " ".join(i.value for i in at.info)
    assert "the rate the last generation in this workspace measured" in info
    assert "encodes 0 passages not encoded yet" in info
    at.checkbox(key="etl_q_flt_offline_inverse_cloze_round_trip").uncheck().run()
    assert "Estimated time: **seconds for 12 passages (round-trip check off)**" in " ".join(i.value for i in at.info)

"""Data page: upload, validation report, split, save; answer-only files with documents; bad files."""

from __future__ import annotations

from core.sample import SAMPLE_DIR, SAMPLE_NAME
from tests.pages.conftest import open_app, texts
from ui import state

PAIRS = (
    "question,passage\n"
    + "\n".join(
        f'how do I fix problem {i} on the pump,"Problem {i}: check the seal {i}, then the fitting {i}."'
        for i in range(12)
    )
    + "\n"
).encode()


def test_sample_dataset_listed_on_first_start(workspace):
    at = open_app()
    assert not at.exception
    assert at.title[0].value.endswith("Data")
    saved = at.main.dataframe[-1].value
    assert SAMPLE_NAME in saved["name"].tolist()


def test_upload_csv_report_split_and_save(workspace):
    at = open_app()
    at.file_uploader(key="etl_qa_files").set_value([("pump pairs.csv", PAIRS, "text/csv")]).run()
    assert not at.exception
    page = texts(at)
    assert "12 rows -> 12 questions, 12 passages; no warnings" in page
    assert "train / " in page and "eval questions" in page  # the split report
    at.text_input(key="etl_ds_name").set_value("Pump pairs")  # inside the form: sent with the submit
    at.button[-1].click().run()  # the form's "Save dataset" (last button on the page)
    assert not at.exception
    assert "Saved dataset “Pump pairs”" in texts(at)
    assert "Pump pairs" in at.main.dataframe[-1].value["name"].tolist()
    # the new dataset is now the selected one (the sidebar's dataset, used by Train)
    from core.workspace.store import Store

    assert at.session_state[state.DATASET_KEY] == Store(workspace).find_dataset("Pump pairs")["id"]


def test_answer_only_file_linked_to_documents(workspace):
    at = open_app()
    answers = (SAMPLE_DIR / "qa_answers.csv").read_bytes()
    at.file_uploader(key="etl_qa_files").set_value([("answers.csv", answers, "text/csv")]).run()
    assert "upload the documents" in texts(at)
    docs = sorted((SAMPLE_DIR / "documents").iterdir())
    at.file_uploader(key="etl_doc_files").set_value(
        [(p.name, p.read_bytes(), "text/plain") for p in docs]
    ).run()
    assert not at.exception
    page = texts(at)
    assert "answers linked to a passage" in page
    links = next(df.value for df in at.dataframe if "confidence" in df.value.columns)
    assert len(links) >= 1 and links["confidence"].max() > 0.5


def test_bad_file_shows_error_and_saves_nothing(workspace):
    at = open_app()
    before = at.main.dataframe[-1].value["name"].tolist()
    at.file_uploader(key="etl_qa_files").set_value(
        [("broken.csv", b"\x00\x01\x02binary junk", "text/csv")]
    ).run()
    assert not at.exception
    assert at.error and "binary" in at.error[0].value
    assert not [b for b in at.button if "Save" in b.label]
    assert at.main.dataframe[-1].value["name"].tolist() == before


def test_unknown_columns_offer_a_mapping_form(workspace):
    at = open_app()
    data = b"Frage,Absatz\nwie hoch ist der Druck,Der Druck ist 200 bar.\nwo ist der Filter,Der Filter ist unten.\n"
    at.file_uploader(key="etl_qa_files").set_value([("de.csv", data, "text/csv")]).run()
    assert at.error  # columns not recognised
    at.selectbox(key="etl_map_query_de.csv").set_value("Frage")
    at.selectbox(key="etl_map_passage_de.csv").set_value("Absatz")
    at.button[-1].click().run()  # "Apply columns"
    assert not at.exception
    assert "2 rows -> 2 questions, 2 passages" in texts(at)


def test_train_and_eval_files_kept_as_given_with_leakage_check(workspace):
    at = open_app()
    evals = PAIRS.replace(b"pump", b"valve").replace(b"problem 11 on the valve", b"problem 11 on the pump")
    at.file_uploader(key="etl_qa_files").set_value(
        [("pump train.csv", PAIRS, "text/csv"), ("pump eval.csv", evals, "text/csv")]
    ).run()
    assert not at.exception
    assert at.selectbox(key="etl_role_pump train.csv").value == "train"
    assert at.selectbox(key="etl_role_pump eval.csv").value == "eval"
    page = texts(at)
    assert "Separate evaluation file(s)" in page and "12 train / 12 eval questions (by given)" in page
    assert "1 identical and" in page and "sit on both sides" in page  # the repeated question
    assert not [s for s in at.slider if s.key == "etl_eval_frac"]  # no split controls for given files
    at.selectbox(key="etl_role_pump train.csv").set_value("eval").run()
    assert "Every file is marked 'Evaluation only': mark at least one for training." in texts(at)
    assert not [b for b in at.button if b.label == "Save dataset"]

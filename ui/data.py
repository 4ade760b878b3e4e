"""The Data page's panels: one per uploaded file (report, column chooser, answers linked to passages,
matching by meaning in the background), the questions-on-both-sides flags, the split and save forms,
and the collection form. Logic is ``core.ingest.intake``; this draws."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from core.csvsafe import safe_frame
from core.dataset import DataError
from core.ingest import intake
from core.ingest.splits import SPLIT_MODES
from ui import resources as res
from ui import state, widgets

PREVIEW_ROWS = 5
MAX_PROBLEMS_SHOWN = 5
MAX_FLAGS_SHOWN = 30  # questions on both sides listed one per row (each with its dismiss button)
DOCUMENT_TYPES = ["txt", "md", "pdf", "docx", "html", "htm"]
PASSAGE_TYPES = ["csv", "tsv", "jsonl", "json", "parquet"]
MAPPING_LABELS = {"query": "Question column", "passage": "Passage column",
                  "negative": "Wrong passage (optional)", "answer": "Answer column (no passages)"}
PASSAGE_MAPPING_LABELS = {"text": "Passage text column", "id": "Id column (optional)",
                          "source": "Source column (optional)", "metadata": "Metadata column (optional)"}
SAVED_KEY = "etl_saved_forms"  # per save form, its last save this session: {form: {key: (name, content), id, message}}
DISMISSED_KEY = "etl_dismissed_flags"  # near duplicates dismissed in this session: {(train q, eval q) normalised}
CONFIDENCE_HELP = ("How sure the link is: 1.00 = the answer appears word for word in the passage; for keyword "
                   "matches, the share of the answer's words found in it (rare words weigh more); by meaning, the "
                   "similarity. Below 0.50 no link is made.")


def confidence_column():
    """Confidence as a bar in one neutral colour: Streamlit draws a bar in the theme's primary colour (red
    here) unless told otherwise, so 1.00 looked like an alarm. Without the colour option, a plain number."""
    try:
        return st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0, format="%.2f",
                                               width="small", color="blue", help=CONFIDENCE_HELP)
    except TypeError:  # Streamlit without ProgressColumn(color=)
        return st.column_config.NumberColumn("confidence", format="%.2f", width="small", help=CONFIDENCE_HELP)


_text = st.column_config.TextColumn
LINK_COLUMNS = dict(zip(intake.LINK_COLUMNS, (  # status, confidence, question, answer, passage from, how
    _text(width=250), confidence_column(), _text(width="medium"), _text(width="medium"), _text(width="medium"),
    _text(width="small")), strict=True))  # fmt: skip
FLAG_COLUMNS = [1.3, 3.6, 3.6, 2.5]  # similarity, training question, evaluation question, the dismiss button


@st.fragment(run_every=1.0)
def meaning_progress(key: str) -> None:
    """Poll the background matching by meaning; when it ends, rerun the page, which then shows its links."""
    task = res.meaning_tasks().get(key)
    snap = task.snapshot() if task is not None else None
    if snap is None or snap.state != "running":
        st.rerun()
    st.progress(snap.fraction, text=snap.text())


def mappings() -> dict:
    """Column choices made by hand this session: {file name: mapping}."""
    return st.session_state.setdefault(state.MAPPINGS_KEY, {})


def dismissed_flags() -> set:
    """Near duplicates dismissed this session: {(training question, evaluation question) normalised}."""
    return st.session_state.setdefault(DISMISSED_KEY, set())


def mapping_form(name: str, columns: list[str], current, labels: dict[str, str]) -> None:
    """Let the user say which column is which; the file is re-read with that mapping."""
    st.info("Which column holds what? Choose below and apply: the file is read again with your choice.")
    options = ["(none)", *columns]
    with st.form(f"etl_mapform_{name}"):
        chosen = {}
        for col, (role, label) in zip(st.columns(len(labels)), labels.items(), strict=True):
            cur = getattr(current, role, None) if current else None
            idx = options.index(cur) if cur in options else 0
            val = col.selectbox(label, options, index=idx, key=f"etl_map_{role}_{name}")
            chosen[role] = None if val == options[0] else val
        if st.form_submit_button("Apply columns"):
            mappings()[name] = chosen
            st.rerun()


def show_report(name: str, rep, columns: list[str], labels: dict[str, str]) -> None:
    """The report line, the first problems (the rest in an expander) and, when unsure, the column chooser."""
    st.markdown(f"**{widgets.plain(rep.summary())}** · format {rep.format}"
                + (f" · {rep.encoding}" if rep.encoding else ""))
    for p in rep.problems[:MAX_PROBLEMS_SHOWN]:
        (st.error if p.level == "error" else st.warning)(widgets.plain(intake.problem_text(p)))
    if len(rep.problems) > MAX_PROBLEMS_SHOWN:
        with st.expander(f"{len(rep.problems) - MAX_PROBLEMS_SHOWN} more warnings"):
            for p in rep.problems[MAX_PROBLEMS_SHOWN:]:
                st.markdown(f"- {widgets.plain(p.message)}")
    if rep.mapping is not None and (not rep.mapping.confident or name in mappings()):
        with st.expander("Columns", expanded=not rep.mapping.confident):
            mapping_form(name, columns, rep.mapping, labels)


def passages_panel(name: str, data: bytes) -> intake.PassageFile | None:
    """Report of one passages file (a table on the documents side); its passages when it can be used."""
    try:
        pf = res.load_passages(name, data, mappings().get(name))
    except DataError as exc:
        widgets.show_data_error(exc)
        if columns := res.read_passage_columns(name, data):
            mapping_form(name, columns, None, PASSAGE_MAPPING_LABELS)
        return None
    show_report(name, pf.report, res.read_passage_columns(name, data), PASSAGE_MAPPING_LABELS)
    return pf


def answers_panel(name: str, data: bytes, loaded, chunks) -> intake.Linked:
    """Link a file's answers to the passages: exact and keyword matching at once (cached), matching by meaning
    on request, in the background. Unlinked answers come first, with why."""
    linked = res.link_answers(name, data, mappings().get(name), intake.chunks_key(chunks), chunks)
    use_model = st.checkbox(
        "Also match answers by meaning (runs in the background; the page stays usable)", key=f"etl_emb_{name}",
        help="For answers worded differently from the documents. Encodes every passage once (saved in the "
        "embedding cache, so a second time is quick). Off: exact and keyword matching only.",
    )
    if use_model and linked.n_unsure:
        tasks, key = res.meaning_tasks(), intake.meaning_key(loaded, chunks, res.base_model_name())
        task = tasks.get(key)
        if task is None:
            model = res.base_model()
            task = tasks.start(key, intake.meaning_work(loaded, chunks, lambda: model, res.embedding_cache()),
                               answers=linked.n_unsure)
        snap = task.snapshot()
        if snap.state == "running":
            meaning_progress(key)
            st.caption("Until it is done, the links below come from exact and keyword matching.")
        elif snap.state == "done":
            linked = task.result()
            st.caption(snap.text())
        else:
            st.error(widgets.plain(snap.text()))
            if st.button("Try matching by meaning again", key=f"etl_emb_retry_{name}"):
                model = res.base_model()
                tasks.start(key, intake.meaning_work(loaded, chunks, lambda: model, res.embedding_cache()),
                            answers=linked.n_unsure)
                st.rerun()
    n, ok = len(linked.links), linked.n_linked
    st.markdown(f"**{ok:,} of {n:,} answers linked to a passage**"
                + (f"; {n - ok:,} not linked (listed first)." if n > ok else "."))
    for note in linked.notes(matched_by_meaning=use_model):
        st.warning(widgets.plain(note))
    st.dataframe(safe_frame(pd.DataFrame(linked.rows, columns=list(LINK_COLUMNS))), hide_index=True, width="stretch",
                 column_config=LINK_COLUMNS)
    return linked


def file_panel(name: str, data: bytes, chunks) -> intake.Part | None:
    """Report of one QA file; returns it as a part of the dataset when it can be used."""
    try:
        loaded = res.load_qa(name, data, mappings().get(name))
    except DataError as exc:
        widgets.show_data_error(exc)
        if columns := res.read_columns(name, data):
            if intake.looks_like_passages(columns):
                st.info("This file looks like passages without questions: upload it under 'Documents or "
                        "passages' (right) to save a collection, or choose its columns below if it does hold "
                        "questions.")
            mapping_form(name, columns, None, MAPPING_LABELS)
        return None
    show_report(name, loaded.report, res.read_columns(name, data), MAPPING_LABELS)
    ds = loaded.dataset
    if intake.needs_documents(loaded):
        if not chunks:
            rows = intake.answers_preview(loaded, PREVIEW_ROWS)
            st.dataframe(safe_frame(pd.DataFrame(rows, columns=["question", "answer"])), hide_index=True, width="stretch")
            st.info("This file gives answers, not passages: upload the documents that contain them "
                    "(top right), and each answer will be linked to the passage that holds it.")
            return None
        linked = answers_panel(name, data, loaded, chunks)
        if linked.n_linked == 0:
            return None
        ds = linked.dataset
    else:
        rows = intake.pairs_preview(ds, PREVIEW_ROWS)
        st.dataframe(safe_frame(pd.DataFrame(rows, columns=["question", "passage"])), hide_index=True, width="stretch")
    roles = list(intake.ROLES)
    role = st.columns([1, 2])[0].selectbox("Use this file for", roles, format_func=intake.ROLES.get,
                                           index=roles.index(intake.guess_role(name)), key=f"etl_role_{name}")
    return intake.Part(name, ds, loaded.report.summary(), role)


def flags_panel(split: intake.Split) -> None:
    """Questions on both sides, one per row (similarity first, text wrapped: no sideways scrolling); a near
    duplicate the user judges different can be dismissed (remembered, and saved with the dataset)."""
    rep, flags = split.report, split.flags()
    if flags:
        st.warning(f"{len(rep.exact_duplicates)} identical and {len(rep.near_duplicates)} near-identical questions "
                   "sit on both sides: the evaluation may look better than it is.")
    if rep.similar_but_different:
        st.caption(f"{rep.similar_but_different} more pair(s) are worded alike but ask about a different number or "
                   "subject (e.g. 2020 / 2021, MERS / SARS): not counted.")
    if rep.dismissed:
        st.caption(f"{len(rep.dismissed)} near duplicate(s) dismissed as different questions: not counted; saved "
                   "with the dataset.")
        if dismissed_flags() and st.button("Show the ones dismissed here again", key="etl_undismiss"):
            dismissed_flags().clear()
            st.rerun()
    if not flags:
        return
    with st.expander("Questions on both sides", expanded=True):
        st.caption("Dismiss a near duplicate that is in fact a different question: it is left out of the counts "
                   "and remembered with the dataset.")
        head = st.columns(FLAG_COLUMNS)
        for col, label in zip(head, ("similarity", "training question", "evaluation question", ""), strict=True):
            col.caption(label)
        for flag in flags[:MAX_FLAGS_SHOWN]:
            sim, a, b, act = st.columns(FLAG_COLUMNS)
            sim.markdown("**identical**" if flag.identical else f"**{flag.similarity:.2f}**")
            a.markdown(widgets.plain(flag.train_question))
            b.markdown(widgets.plain(flag.eval_question))
            if flag.differs:
                b.caption("differs: " + widgets.plain(flag.differs))
            tag = hashlib.sha1("\x1f".join(flag.key).encode("utf-8", "surrogatepass")).hexdigest()[:12]
            if not flag.identical and act.button("Not a duplicate", key=f"etl_dismiss_{tag}"):
                dismissed_flags().add(flag.key)
                st.rerun()
        if len(flags) > MAX_FLAGS_SHOWN:
            st.caption(f"… and {len(flags) - MAX_FLAGS_SHOWN} more (the least similar).")


def split_and_save(parts: list[intake.Part], qa_names: list[str], doc_names: list[str]) -> None:
    """Split (or join given files), the leakage check with its flags, and the save form."""
    store, dismissed = res.get_store(), dismissed_flags()
    st.subheader("Split into training and evaluation")
    mode, split = intake.split_mode(parts), None
    skip = dismissed | res.dismissed_flags()
    if mode == "no-train":
        st.warning(intake.NO_TRAINING_FILE)
    elif mode == "given":
        st.caption("Separate evaluation file(s): passages present in several files count once, and "
                   "evaluation searches the passages of all files.")
        split = intake.split_parts(parts, dismissed=skip)
    else:
        c1, c2, c3 = st.columns([2, 1, 3])
        frac = c1.slider("Share of questions kept for evaluation", 0.05, 0.5, 0.2, 0.05,
                         key="etl_eval_frac", help="Held out from training and used only to score base vs "
                         "tuned. 20% is a common balance between training data and a stable score.")
        seed = c2.number_input("Seed", 0, 10_000, 42, key="etl_seed", help="Same seed, same split.")
        by = c3.radio("Keep together", SPLIT_MODES, index=1, key="etl_split_by",
                      format_func=lambda m: f"by {m}", captions=[intake.SPLIT_HELP[m] for m in SPLIT_MODES],
                      horizontal=False)
        try:
            split = intake.split_parts(parts, frac, int(seed), by, dismissed=skip)
        except DataError as exc:
            widgets.show_data_error(exc)
    if split is not None:
        st.info(widgets.plain(split.report.summary()))
        for note in split.report.notes:
            st.caption(widgets.plain(note))
        flags_panel(split)

        st.subheader("Save")
        content = f"{split.train.fingerprint()}/{split.eval.fingerprint()}"
        sizes = f"{len(split.train):,} training and {len(split.eval):,} evaluation questions"
        with st.form("etl_save_dataset", enter_to_submit=False):  # Enter in the name saves nothing: the button does
            name = st.text_input("Dataset name", intake.default_name(qa_names), key="etl_ds_name", max_chars=80)
            if st.form_submit_button("Save dataset", type="primary"):
                save_once("etl_save_dataset", name, content,
                          lambda: intake.save_split(store, name, split, parts, qa_names, doc_names),
                          f"Saved dataset “{name.strip()}”: {sizes}. It is selected in the sidebar: go to Train next.")
        saved_message("etl_save_dataset", name, content)


def save_once(form: str, name: str, content: str, save, message: str) -> None:
    """A save form's button: ``save()`` (returns the new dataset's id), selected in the sidebar, and its
    ``message`` shown next to the form. The same name and content saved again from this session (a second
    click, or a click after the first save) is not a failure: it says the same message, not "already exists"."""
    key = (name.strip(), content)
    done = st.session_state.setdefault(SAVED_KEY, {})
    ds_id = done.get(form, {}).get("key") == key and done[form]["id"]
    if ds_id and any(d["id"] == ds_id for d in res.get_store().list_datasets()):
        state.select_dataset(ds_id)
        return
    try:
        ds_id = save()
    except DataError as exc:  # a bad or taken name, or the disk refused the write (nothing left behind)
        widgets.show_data_error(exc)
        return
    state.select_dataset(ds_id)
    done[form] = {"key": key, "id": ds_id, "message": message}
    st.rerun()  # the sidebar shows the new dataset; the message stays next to the form (``saved_message``)


def saved_message(form: str, name: str, content: str) -> None:
    """Under a save form: the success message of its last save from this session while the name and content
    are still those saved, where the user pressed the button (a message at the top of a long page went unseen)."""
    done = st.session_state.get(SAVED_KEY, {}).get(form)
    if done and done["key"] == (name.strip(), content):
        st.success(widgets.plain(done["message"]), icon=":material/check_circle:")


def collection_form(chunks, docs, passage_files, doc_names: list[str]) -> None:
    """Passages and no questions: save them as a collection for the Questions page."""
    store = res.get_store()
    st.subheader("Save as a collection")
    n_files = len(docs.files if docs else []) + len(passage_files)
    st.info(f"{len(chunks):,} passages from {n_files} file(s), no questions yet: save them as a collection. "
            f"{intake.COLLECTION_NEXT}")
    content = intake.chunks_key(chunks)
    with st.form("etl_save_collection", enter_to_submit=False):  # Enter in the name saves nothing: the button does
        name = st.text_input("Collection name", intake.default_name(doc_names), key="etl_coll_name", max_chars=80)
        if st.form_submit_button("Save collection", type="primary"):
            save_once("etl_save_collection", name, content,
                      lambda: intake.save_collection(store, name, chunks, docs.files if docs else [], passage_files),
                      f"Saved collection “{name.strip()}”: {len(chunks):,} passages. {intake.COLLECTION_NEXT}")
    saved_message("etl_save_collection", name, content)

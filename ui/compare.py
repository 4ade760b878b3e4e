"""The Compare page's panels: a passage in full (``passage_card``), the free-text box's prefill, and judging:
each system's unjudged share beside the scores, and "Judge the new finds".

Everything shown before the expander is opened is read from the run's results (``RunResults.judging``,
written by the run and refreshed by each save or re-score): opening the page computes nothing. The
finds are listed (``core.insight.judging.unjudged_finds``) when the expander opens, once per session
and run, and shrink as questions are saved.
"""

from __future__ import annotations

import html

import streamlit as st

from core.dataset import DataError
from core.insight.judging import Find, record_finds, rescore_run, score_changes, unjudged_finds
from core.retrieval.coverage import fmt_share
from core.workspace.run_folder import load_results
from ui import resources as res
from ui import state, widgets

OPEN_KEY = "etl_judge_open"
FINDS_KEY = "etl_judge_finds"  # (run id, [Find]) listed when the expander opened, minus the questions saved
MESSAGE_KEY = "etl_judge_message"  # (kind, text) shown once after a save
CHANGES_KEY = "etl_judge_changes"  # (run id, before/after table, note) after a re-score
SHOWN_COLUMNS = ["nDCG@10 before", "nDCG@10 after", "nDCG@10 change", "MRR@10 before", "MRR@10 after",
                 "unjudged top-10 before", "unjudged top-10 after"]


def unjudged_note(results) -> None:
    """Beside the metrics table: the re-scoring note, each system's unjudged share of its top 10 (only when the
    run's questions were judged on the bench or here) and the warning when the judgments came from only some
    systems' lists."""
    j = results.judging or {}
    if j.get("rescored"):
        st.info(widgets.plain(j["rescored"]), icon=":material/fact_check:")
    if not j.get("has_judgments"):
        return
    shares = j.get("unjudged") or {}
    parts = [f"{results.systems[r].name} {fmt_share(shares[r])}" for r in results.roles if r in shares]
    if parts:
        st.caption("Share of each system's top 10 (over all evaluation questions) that nobody judged, counted as not "
                   "relevant: " + widgets.plain(" · ".join(parts)) + ". Judge the new finds below, then re-score.")
    if j.get("warning"):
        st.warning(widgets.plain(j["warning"]), icon=":material/warning:")


def _finds(run_id: str) -> list[Find]:
    item = st.session_state.get(FINDS_KEY)
    if not item or item[0] != run_id:
        with st.spinner("Listing what the pipelines found…"):
            item = (run_id, unjudged_finds(res.get_store(), run_id))
        st.session_state[FINDS_KEY] = item
    return item[1]


def judge_section(view) -> None:
    """The lazy "Judge the new finds" expander: one question at a time, its unjudged passages blind, then
    "Save and next"; "Re-score the run" recomputes every system's scores with the new labels."""
    run_id = view.run_id
    item = st.session_state.get(FINDS_KEY)
    n = len(item[1]) if item and item[0] == run_id else (view.results.judging or {}).get("finds")
    label = ("Judge the new finds" if n is None
             else f"Judge the new finds ({n:,} passage{'s' if n != 1 else ''} unjudged in the pipelines' top 10)")
    # the count in the label changes as questions are saved (a new expander to Streamlit): it stays as it was
    with widgets.lazy_expander(label, key=OPEN_KEY, expanded=bool(st.session_state.get(OPEN_KEY))) as box:
        if box.open:
            _body(view)


def _body(view) -> None:
    run_id = view.run_id
    changes = st.session_state.get(CHANGES_KEY)
    if changes and changes[0] == run_id:
        _show_changes(changes[1], changes[2])
    message = st.session_state.pop(MESSAGE_KEY, None)
    if message:
        getattr(st, message[0])(message[1])
    st.caption("Passages that some pipeline ranked in its top 10 for an evaluation question and that nobody has "
               "judged: they count as not relevant. Tick each one that answers the question; the ones left unticked "
               "are recorded as not relevant. Which system found a passage is not shown. Then re-score: every "
               "system's scores are recomputed from its saved rankings with the new labels, without retraining.")
    finds = _finds(run_id)
    if finds:
        _judge_one(view, finds)
    else:
        st.success("Every passage in the pipelines' top 10 has been judged.")
    if st.button("Re-score the run", key="etl_judge_rescore", icon=":material/calculate:",
                 help="Recompute every system's scores from its saved rankings with the labels as they are now."):
        try:
            with st.spinner("Re-scoring every system…"):
                before, after = rescore_run(res.get_store(), run_id)
        except (DataError, FileNotFoundError) as exc:
            st.error(widgets.plain(str(exc)))
            return
        note = (after.judging or {}).get("rescored") if after is not before else None
        st.session_state[CHANGES_KEY] = (run_id, score_changes(before, after), note)
        st.session_state.pop(FINDS_KEY, None)
        res.forget_run(run_id)  # results, per-question ranks and the maps' colours changed
        st.rerun()


def _judge_one(view, finds: list[Find]) -> None:
    questions = list(dict.fromkeys(f.question_id for f in finds))
    qid = questions[0]
    mine = [f for f in finds if f.question_id == qid]
    st.markdown(f"**{widgets.plain(view.eval.queries.get(qid, qid))}**")
    st.caption(f"{len(questions):,} question{'s' if len(questions) != 1 else ''} with unjudged passages left; "
               f"{len(mine)} passage{'s' if len(mine) != 1 else ''} for this one.")
    with st.form(key=f"etl_judge_form_{qid}", border=False):
        for f in mine:
            with st.container(border=True):
                text = view.eval.corpus.get(f.passage_id, "")
                source = view.eval.sources.get(f.passage_id) or "source not recorded"
                st.caption(f"{widgets.plain(source)} · {len(text):,} characters")
                st.markdown(widgets.plain(text))
                st.checkbox("answers the question", key=f"etl_judge_{qid}_{f.passage_id}")
        save = st.form_submit_button("Save and next", type="primary", icon=":material/done_all:")
    if st.button("Skip this question", key="etl_judge_skip", help="Judge it later (it goes to the end of the list)."):
        item = st.session_state[FINDS_KEY]
        st.session_state[FINDS_KEY] = (item[0], [f for f in item[1] if f.question_id != qid] + mine)
        st.rerun()
    if save:
        marks = {(qid, f.passage_id): bool(st.session_state.get(f"etl_judge_{qid}_{f.passage_id}")) for f in mine}
        try:
            done = record_finds(res.get_store(), view.run_id, marks)
        except DataError as exc:
            st.error(widgets.plain(str(exc)))
            return
        item = st.session_state[FINDS_KEY]
        st.session_state[FINDS_KEY] = (item[0], [f for f in item[1] if f.question_id != qid])
        fresh = load_results(view.run_dir)
        if fresh is not None:
            view.results.judging = fresh.judging  # the shares beside the table follow at once
        st.session_state[MESSAGE_KEY] = (
            "success", f"Saved {done['judged']} judgment{'s' if done['judged'] != 1 else ''}: {done['relevant']} "
                       f"relevant, {done['judged'] - done['relevant']} not relevant. Re-score the run to see the "
                       "scores with them.")
        st.rerun()


def _show_changes(table, note: str | None) -> None:
    st.markdown("**Scores before judging → after re-scoring**")
    if note is None:
        st.info("Nothing new was judged relevant since the run was last scored: its scores are unchanged.")
    cols = [c for c in SHOWN_COLUMNS if c in table.columns]
    shown = table[cols].copy()
    for c in cols:
        if "unjudged" in c:
            shown[c] = shown[c] * 100  # a share, shown in percent
    st.dataframe(shown, width="stretch", key="etl_judge_changes_table",
                 column_config={c: st.column_config.NumberColumn(c, format="%+.3f" if "change" in c else
                                                                 "%.1f%%" if "unjudged" in c else "%.3f")
                                for c in cols})
    if note:
        st.caption(widgets.plain(note))


# --------------------------------------------------------------------------- question by question, try a question
def passage_card(view, passage_id: str, title: str, question_id: str | None = None) -> None:
    """A passage of the run ``view`` in full, with its source and, when the dataset knows it, the answer marked."""
    text = view.eval.corpus.get(passage_id, "")
    source = view.eval.sources.get(passage_id) or "source not recorded"
    answer = view.eval.answers.get(question_id, "") if question_id else ""
    body = html.escape(text).replace("\n", "<br>")
    if answer and answer in text:
        mark = html.escape(answer)
        body = body.replace(mark, f"<mark>{mark}</mark>", 1)
    with st.container(border=True):
        st.markdown(f"**{widgets.plain(title)}** · {widgets.plain(source)} · {len(text):,} characters")
        st.html(f'<div style="white-space:normal;line-height:1.5">{body}</div>')
        if answer and answer not in text:
            st.caption(f"Known answer (not found verbatim in this passage): {widgets.plain(answer)}")


def prefill(view) -> None:
    """The question box takes the evaluation question picked to start from."""
    q = st.session_state.get("etl_cmp_pick")
    if q:
        st.session_state[state.QUERY_TEXT_KEY] = view.eval.queries[q]

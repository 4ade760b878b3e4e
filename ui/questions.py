"""The Questions page's drawing: the generate form, the live panel of a generation run with its
filter funnel, the review table, and the labelling bench. Logic lives in ``core.generate``.

The generation job never touches Streamlit: a fragment with ``run_every`` polls its snapshot
(as the Train page's live panel does) and, once it ended, the run folder says the rest. The API
key typed here stays in this session's widget state (memory) and is handed to the job as an
argument; it is never saved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import typing

import pandas as pd
import streamlit as st

from core.csvsafe import safe_frame, unguard_frame
from core.dataset import DataError
from core.generate.faults import GenerationError
from core.generate.filters import FILTER_LABELS
from core.generate.job import (
    GenerationSpec,
    GenerationSummary,
    create_generation_run,
    generation_runs,
    load_passages,
    load_rows,
    load_summary,
    run_generation,
)
from core.generate.judgments import judged_ids, load_judgments
from core.generate.labels import (
    POOL_DEPTH,
    SEARCH_HITS,
    CandidateSearch,
    Pool,
    confidence_note,
    earlier_label,
    human_labels,
    remove_label,
    save_label,
)
from core.generate.llm import ApiKey, LLMSettings, check_connection, check_settings, with_env_defaults
from core.generate.offline import MEASURED as OFFLINE_MEASURED
from core.generate.offline import OFFLINE_METHODS, OfflineSettings
from core.generate.pairs import collection_passages, is_generated
from core.generate.review import review_table, save_review, set_keep, use_as_training
from core.generate.timing import (
    EncodeRate,
    GenerationEstimate,
    estimate_generation,
    measure_rate,
    question_cost,
    stored_rate,
)
from core.retrieval.embedding import EmbeddingCache
from core.workspace.jobs import BusyError, fmt_duration
from ui import resources as res
from ui import state, widgets

GEN_RUN_KEY = "etl_q_gen_run"  # the generation run this session launched last
KEY_WIDGET = "etl_q_llm_key"  # the API key field (session memory only)
LABEL_TEXT_KEY = "etl_q_label_text"  # the labelling bench's question box
LABEL_FROM_KEY = "etl_q_label_from"  # the generated question being verified: {text, origin, passage_id}
BACKEND_LABELS = {"offline": "Offline (no LLM)", "llm": "LLM endpoint"}
BACKEND_CAPTIONS = {
    "offline": "Cuts pseudo-questions out of the passages themselves. Needs nothing else: seconds to generate, "
    "then the round-trip check encodes the collection with the base model (the time is estimated below).",
    "llm": "A language model writes real questions. Needs an OpenAI-compatible server (Ollama, llama.cpp, vLLM, "
    "LM Studio, OpenAI); minutes to hours.",
}
METHOD_LABELS = {"inverse_cloze": "Sentence as question", "crop": "Random excerpt", "keywords": "Keywords"}
METHOD_CAPTIONS = {
    "inverse_cloze": "One sentence of a passage plays the question and the passage its answer. Needs no LLM; "
    "'Method settings' can cut the sentence out of some answers (inverse cloze), which measured worse on our "
    "benchmarks.",
    "crop": "A random stretch of the passage plays the question. Works on any passage; the 'questions' read like "
    "excerpts.",
    "keywords": "A few of the passage's rarest words, like a query typed into a search box.",
}


# --------------------------------------------------------------------------- small helpers
def run_name(backend_label: str, asked: int) -> str:
    """A generation run's default name, by the passages it asks questions of: "questions · LLM endpoint ·
    40 passages" (``max_passages`` may ask fewer than the collection holds)."""
    return f"questions · {backend_label} · {asked:,} passage{'s' if asked != 1 else ''}"


def _field(obj, name: str, key: str, **kw):
    """One widget for field ``name`` of a settings dataclass, label/help/bounds from its metadata."""
    f = next(f for f in dataclasses.fields(obj) if f.name == name)
    meta, hint, value = f.metadata, typing.get_type_hints(type(obj))[name], getattr(obj, name)
    label = meta.get("label") or name.replace("_", " ")
    if hint in (int, float):
        bounds = {k: hint(meta[k]) for k in ("min", "max", "step") if k in meta}
        return hint(st.number_input(label, value=hint(value), min_value=bounds.get("min"),
                                    max_value=bounds.get("max"), step=bounds.get("step"), help=meta.get("help"),
                                    key=key, **kw))
    return st.text_input(label, value=value or "", help=meta.get("help"), key=key, **kw)


def passage_card(title: str, text: str, source: str) -> None:
    """A passage in full (escaped), with where it came from."""
    with st.container(border=True):
        st.markdown(f"**{widgets.plain(title)}** · {widgets.plain(source or 'source not recorded')} · "
                    f"{len(text):,} characters")
        st.markdown(widgets.plain(text))


# --------------------------------------------------------------------------- generate
def _llm_settings() -> tuple[LLMSettings, str]:
    """The endpoint fields (defaults from the environment) -> (settings, key typed here)."""
    env = with_env_defaults(LLMSettings())
    c = st.columns(3)
    with c[0]:
        base_url = _field(LLMSettings(base_url=env.base_url), "base_url", "etl_q_llm_url",
                          placeholder="http://localhost:11434/v1")
    with c[1]:
        model = _field(LLMSettings(model=env.model), "model", "etl_q_llm_model", placeholder="qwen2.5:7b")
    key = c[2].text_input(
        "API key", type="password", key=KEY_WIDGET, placeholder="none (local servers need none)",
        help="Held in this browser session's memory and passed to the job: never saved to disk, logs, run folders "
        "or reports. Empty: ETL_LLM_API_KEY, then OPENAI_API_KEY, if set on the server.")
    s = LLMSettings(base_url=base_url.strip(), model=model.strip())
    with c[0]:
        s.questions_per_passage = _field(s, "questions_per_passage", "etl_q_llm_n")
    with st.expander("Prompt and requests"):
        s.prompt = st.text_area("Prompt", value=s.prompt, height=260, key="etl_q_llm_prompt",
                                help=next(f for f in dataclasses.fields(s) if f.name == "prompt").metadata["help"])
        cols = st.columns(5)
        for col, name in zip(cols, ("temperature", "max_parallel", "timeout_s", "retries", "max_answer_tokens")):
            with col:
                setattr(s, name, _field(s, name, f"etl_q_llm_{name}"))
    if st.button("Test connection", icon=":material/lan:", key="etl_q_llm_test",
                 help="One request with a short passage: checks the address, the key and the model name."):
        with st.spinner("Asking the endpoint for one question…"):
            ok, message = check_connection(s, ApiKey(key) if key else None)
        (st.success if ok else st.error)(widgets.plain(message))
    return s, key


def generate_form(ds_id: str, n_passages: int) -> None:
    """Backend, method and filter settings, then the Generate button (starts a background run)."""
    store, runner = res.get_store(), res.get_runner()
    backends = list(BACKEND_LABELS)
    backend = st.radio("How questions are written", backends, horizontal=True, key="etl_q_backend",
                       format_func=BACKEND_LABELS.get, captions=[BACKEND_CAPTIONS[b] for b in backends])
    key = ""
    if backend == "offline":
        method = st.radio("Method", list(OFFLINE_METHODS), key="etl_q_method", format_func=METHOD_LABELS.get,
                          captions=[METHOD_CAPTIONS[m] for m in OFFLINE_METHODS])
        offline = OfflineSettings(method=method)
        with st.columns(4)[0]:
            offline.per_passage = _field(offline, "per_passage", f"etl_q_off_n_{method}")
        with st.expander("Method settings"):
            offline = widgets.settings_form(offline, f"etl_q_off_{method}", advanced=True)
        spec = GenerationSpec.for_backend(ds_id, "offline", offline=offline)
        st.caption(OFFLINE_MEASURED)
    else:
        llm, key = _llm_settings()
        spec = GenerationSpec.for_backend(ds_id, "llm", llm=llm)
    tag = f"{backend}_{spec.offline.method if backend == 'offline' else 'llm'}"
    with st.expander("Filters"):
        spec.filters = widgets.settings_form(spec.filters, f"etl_q_flt_{tag}")
        spec.filters = widgets.settings_form(spec.filters, f"etl_q_flt_adv_{tag}", advanced=True)
        spec.base_model = _field(spec, "base_model", "etl_q_base_model",
                                 placeholder="all-MiniLM-L6-v2 (bundled)").strip() or None
    left, right = st.columns([1, 3])
    with left:
        spec.max_passages = _field(spec, "max_passages", "etl_q_max_passages")
    asked = min(spec.max_passages or n_passages, n_passages)  # what the job asks (``run_generation``)
    # The default name is made at launch from the passages asked then (a default typed into the field would
    # keep its first count after "Max passages" changed: issue 27); a name the user types is kept as typed.
    default = run_name(BACKEND_LABELS[backend], asked)
    name = right.text_input("Run name", value="", placeholder=default, key=f"etl_q_run_name_{ds_id}_{tag}",
                            max_chars=100, help="Empty: the name shown here, counting the passages asked.")
    estimate = generation_estimate(ds_id, spec)
    st.info(f":material/timer: Estimated time: **{widgets.plain(estimate.text())}**."
            + (" Turn the round-trip check off under Filters to skip it (a later training run encodes the "
               "passages then instead)." if estimate.round_trip and (estimate.seconds or 0) > 60 else ""))
    active = runner.active()
    if active is not None:
        st.warning(f"Run “{widgets.plain(store.get_run(active.run_id)['name'])}” is using the workspace now; "
                   "generate when it has finished.")
    if st.button("Generate questions", icon=":material/auto_awesome:", type="primary", key="etl_q_generate",
                 disabled=active is not None or n_passages == 0):
        _launch(spec, key, name.strip() or default)


@st.cache_resource(show_spinner="Measuring how fast this machine encodes (a few passages)…", max_entries=8)
def _sampled_rate(root: str, ds_id: str, offline_json: str) -> EncodeRate:
    """This machine's encoding rate, measured once on a sample of the collection (bundled base model)."""
    train, ev = res.load_dataset(ds_id)
    passages, _ = collection_passages(train, ev)
    spec = GenerationSpec(offline=OfflineSettings(**json.loads(offline_json)))
    return measure_rate(res.base_model(), passages, spec)


@st.cache_data(show_spinner=False, max_entries=16)
def _question_cost(ds_id: str, spec_json: str) -> int:
    train, ev = res.load_dataset(ds_id)
    passages, _ = collection_passages(train, ev)
    return question_cost(passages, GenerationSpec.from_dict(json.loads(spec_json)))


def generation_estimate(ds_id: str, spec: GenerationSpec) -> GenerationEstimate:
    """How long ``spec`` will take on this collection, from this machine's measured rate: the last generation's
    in this workspace, else one measured now on a sample (bundled model only; a custom one: unknown)."""
    store = res.get_store()
    train, ev = res.load_dataset(ds_id)
    passages, _ = collection_passages(train, ev)
    if not spec.filters.round_trip or not passages:
        return estimate_generation(passages, spec, None)
    rate = stored_rate(store, spec.base_model)
    if rate is None and spec.base_model is None:
        rate = _sampled_rate(str(store.root), ds_id, json.dumps(dataclasses.asdict(spec.offline), sort_keys=True))
    q_cost = _question_cost(ds_id, json.dumps(spec.to_dict(), sort_keys=True))
    return estimate_generation(passages, spec, rate, res.embedding_cache(), q_cost)


def _launch(spec: GenerationSpec, key: str, name: str | None) -> None:
    store, runner = res.get_store(), res.get_runner()
    if spec.backend == "llm":
        try:
            check_settings(with_env_defaults(spec.llm))
        except GenerationError as err:
            st.error(widgets.plain(str(err)))
            return
    run_id = create_generation_run(store, spec, name)
    api_key = ApiKey(key) if key else None  # in memory only: the job's closure holds it
    try:
        runner.submit(run_id, lambda job, rid=run_id, k=api_key: run_generation(store, rid, job, api_key=k))
    except BusyError as exc:
        store.update_run(run_id, status="cancelled", error=f"Not started: {exc}")
        store.delete_run(run_id)
        st.error(widgets.plain(str(exc)))
        return
    st.session_state[GEN_RUN_KEY] = run_id
    st.rerun()


def shown_generation(ds_id: str) -> str | None:
    """The generation run to show: this session's last launch on this dataset, else the newest one."""
    runs = generation_runs(res.get_store(), ds_id)
    mine = st.session_state.get(GEN_RUN_KEY)
    if any(r["id"] == mine for r in runs):
        return mine
    return runs[0]["id"] if runs else None


def funnel(s: GenerationSummary) -> None:
    """The filter funnel: counts that add up, the line in words, and why nothing is left when so."""
    f = s.funnel
    if s.generated and f:
        cols = st.columns(5)
        cols[0].metric("Generated", f"{s.generated:,}")
        cols[1].metric("Too short / long / copied", f"{f['too_short'] + f['too_long'] + f['copies_passage']:,}")
        cols[2].metric("Duplicates", f"{f['exact_duplicate'] + f['near_duplicate']:,}")
        cols[3].metric("Failed round-trip", f"{f['round_trip']:,}",
                       help="The base model did not find the question's own passage in its top k.")
        cols[4].metric("Kept", f"{s.kept:,}")
        st.markdown(f"**{widgets.plain(s.line)}**")
    if s.empty:
        st.warning(widgets.plain(s.empty), icon=":material/filter_alt_off:")
    elif s.kept:
        st.success(f"{s.kept:,} questions are ready: review them in the **Review** tab.")
    if s.passages_without:
        st.caption(f"{s.passages_without:,} of {s.passages_asked:,} passages gave no question"
                   + (f" ({widgets.plain(s.why_without)})" if s.why_without else "") + ".")
    if s.generated:
        flagged = {k: v for k, v in s.flagged.items() if v}
        if flagged:
            st.caption("Flagged by each filter (a question can fail several): " + ", ".join(
                f"{FILTER_LABELS[k]} {v:,}" for k, v in flagged.items()) + ".")
        st.caption(f"Generated in {fmt_duration(s.generation_seconds)}, filtered in "
                   f"{fmt_duration(s.filter_seconds)}.")


def generation_panel(run_id: str) -> None:
    """A generation run: live progress with its ETA and cancel while it runs, then the funnel."""
    store = res.get_store()

    def draw(run: dict, snap, job) -> None:
        if snap.status in ("queued", "running"):
            left = widgets.time_left(snap)
            text = (f"{snap.message} · {snap.step:,}/{snap.total:,} {snap.unit}" + (f" · {left}" if left else "")
                    if snap.total else snap.message or "Starting…")
            st.progress(snap.fraction, text=widgets.plain(text))
            if job is not None:
                st.button("Cancel", icon=":material/stop:", key=f"etl_q_cancel_{run_id}", on_click=job.cancel)
            return
        summary = load_summary(store.run_dir(run_id))
        if snap.status == "done" and summary is not None:
            funnel(summary)
        elif snap.status == "cancelled":
            st.warning("Cancelled. Every answer an endpoint gave so far is cached: generate again with the same "
                       "settings and it resumes where it stopped (offline methods simply run again).")
        elif snap.status == "failed":
            st.error(widgets.plain((summary.fatal if summary else None) or snap.error or "The run failed."))
            st.caption("What was generated before the failure is cached; fix the cause and generate again.")
        else:
            st.warning(widgets.plain(run.get("error") or "The app stopped while this run was active."))
        for note in snap.notes:
            st.caption(f":material/info: {widgets.plain(note)}")

    widgets.poll_run(run_id, draw)


# --------------------------------------------------------------------------- review
def _with_edits(table: pd.DataFrame, edits) -> pd.DataFrame:
    """``table`` with a data editor's pending cell edits applied."""
    out = table.copy()
    for row, change in ((edits or {}).get("edited_rows") or {}).items():
        for col, value in change.items():
            out.loc[int(row), col] = value
    return out


def _bulk(run_id: str, editor_key: str, version_key: str, how: str) -> None:
    run_dir = res.get_store().run_dir(run_id)
    table = _with_edits(review_table(run_dir), st.session_state.get(editor_key))
    save_review(run_dir, set_keep(table, how))
    st.session_state[version_key] = st.session_state.get(version_key, 0) + 1  # a fresh editor shows the result


def review(ds_id: str, train_questions: int, labelled: int = 0) -> None:
    """The questions of a finished generation run: keep / edit, bulk choices, then the training split (replacing
    it, or added to its ``labelled`` questions: those not generated)."""
    store = res.get_store()
    runs = generation_runs(store, ds_id, status="done")
    if not runs:
        st.info("No finished generation run for this dataset yet: generate questions in the **Generate** tab.")
        return
    labels = {r["id"]: f"{r['name']} · {time.strftime('%d %b %H:%M', time.localtime(r['created']))}" for r in runs}
    ids = list(labels)
    mine = st.session_state.get(GEN_RUN_KEY)
    run_id = st.selectbox("Generation run", ids, index=ids.index(mine) if mine in ids else 0,
                          format_func=labels.get, key=f"etl_q_review_run_{ds_id}")
    run_dir = store.run_dir(run_id)
    table = review_table(run_dir)
    if table.empty:
        summary = load_summary(run_dir)
        st.warning(widgets.plain((summary.empty if summary else None) or "This run saved no question."))
        return
    version_key = f"etl_q_review_v_{run_id}"
    editor_key = f"etl_q_review_{run_id}_{st.session_state.get(version_key, 0)}"
    c = st.columns(3)
    for col, how, label in zip(c, ("passed", "all", "none"),
                               ("Keep those that passed the filters", "Keep all", "Keep none")):
        col.button(label, key=f"etl_q_bulk_{how}_{run_id}", on_click=_bulk,
                   args=(run_id, editor_key, version_key, how), width="stretch")
    edited = st.data_editor(  # shown guarded (its toolbar downloads CSV), read back unguarded
        safe_frame(table), key=editor_key, hide_index=True, num_rows="fixed", width="stretch", height=380,
        column_order=("keep", "question", "passage", "verdict", "source"),
        disabled=("passage", "verdict", "source", "passage_id"),
        column_config={
            "keep": st.column_config.CheckboxColumn("keep", help="Train on this question", width="small"),
            "question": st.column_config.TextColumn("question (editable)", width="large"),
            "passage": st.column_config.TextColumn("passage (start)", width="large"),
            "verdict": st.column_config.TextColumn("filters", width="medium"),
            "source": st.column_config.TextColumn("source", width="small"),
        })
    edited = unguard_frame(edited)
    if not edited[["keep", "question"]].equals(table[["keep", "question"]]):
        save_review(run_dir, edited)  # a reload finds the choices
    passages, sources = load_passages(run_dir)
    row = st.selectbox("Read a passage in full", list(range(len(edited))), key=f"etl_q_review_read_{run_id}",
                       format_func=lambda i: f"{i + 1}. {widgets.short(edited.loc[i, 'question'], 100)}")
    if row is not None:
        pid = edited.loc[row, "passage_id"]
        passage_card(f"Passage of question {row + 1}", passages.get(pid, ""), sources.get(pid, ""))
    n = int(edited["keep"].sum())
    st.caption(f"The training split becomes these {n:,} questions over all the collection's passages"
               + (f" (replacing its {train_questions:,} training questions)" if train_questions else "")
               + (f", or these and its {labelled:,} labelled questions (one run trains on both; 'Generated pairs "
                  "per labelled pair' on the Train page sets the mix)" if labelled else "")
               + ". The evaluation split is not touched: generated questions never enter it from here.")
    left_col, right_col = st.columns(2)
    use = left_col.button(f"Use the {n:,} kept questions as the training split", type="primary", disabled=n == 0,
                          icon=":material/check:", key=f"etl_q_use_{run_id}")
    add = labelled > 0 and right_col.button(f"Add them to the {labelled:,} labelled training questions",
                                            disabled=n == 0, icon=":material/add:", key=f"etl_q_add_{run_id}")
    if use or add:
        try:
            done = use_as_training(store, ds_id, run_id, edited, keep_labelled=bool(add))
        except DataError as exc:
            widgets.show_data_error(exc)
            return
        extra = f" ({done.edited} edited by you)" if done.edited else ""
        left = f"; {done.left_out} left out (already evaluation questions, or empty)" if done.left_out else ""
        both = f" ({labelled:,} labelled and {done.questions - labelled:,} generated)" if add else " generated"
        state.flash(f"The training split now holds {done.questions:,}{both} questions{extra}{left}.")
        st.rerun()


# --------------------------------------------------------------------------- label
NOT_TICKED_NOTE = "Passages shown and not ticked are recorded as not relevant for this question."
FOUND_WORDS = {"base": "base model", "bm25": "BM25", "search": "your search", "more": "show more",
               "earlier": "an earlier label"}


@st.cache_resource(show_spinner="Indexing the passages for search (once per collection)…", max_entries=2)
def _search(root: str, fingerprint: str, _passages: dict, _sources: dict) -> CandidateSearch:
    return CandidateSearch(_passages, _sources, res.base_model(), EmbeddingCache(res.get_store().cache_path))


@st.cache_data(show_spinner=False, max_entries=64)
def _pool(root: str, fingerprint: str, question: str, depth: int, _passages: dict, _sources: dict) -> Pool:
    """The pool of one question at one depth (a tick reruns the page: the searches are not redone)."""
    return _search(root, fingerprint, _passages, _sources).pool(question, depth)


@st.cache_data(show_spinner=False, max_entries=64)
def _hits(root: str, fingerprint: str, words: str, _passages: dict, _sources: dict) -> list[str]:
    return [c.passage_id for c in _search(root, fingerprint, _passages, _sources).keyword(words, SEARCH_HITS)]


def _fingerprint(passages: dict[str, str]) -> str:
    return hashlib.sha1(json.dumps(passages, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()


def _found_words(found_by: list[str]) -> str:
    """How a passage was found, in words ("base model + BM25", "your search")."""
    return " + ".join(FOUND_WORDS.get(n) or (f"tuned model ({n.split(':', 1)[1]})" if n.startswith("tuned:") else n)
                      for n in found_by) or "not recorded"


def _save_label(ds_id: str, question: str, shown: dict[str, list[str]], ticked: list[str], origin: str,
                allow: bool) -> None:
    try:
        qid, not_relevant = save_label(res.get_store(), ds_id, question, shown, ticked, origin=origin,
                                       allow_generated=allow)
    except DataError as exc:
        state.flash(widgets.plain(str(exc)), "error")
        return
    what = "generated question (verified)" if is_generated(origin) else "question"
    how = sorted({_found_words(shown.get(p, [])) for p in ticked})
    state.flash(f"Saved {what} {qid} with {len(ticked)} relevant passage{'s' if len(ticked) != 1 else ''} in the "
                f"evaluation split (found by: {widgets.plain('; '.join(how))}); {not_relevant} passage"
                f"{'s' if not_relevant != 1 else ''} shown and not ticked recorded as not relevant.")
    st.session_state[LABEL_TEXT_KEY] = ""
    st.session_state["etl_q_verify_pick"] = None
    st.session_state.pop(LABEL_FROM_KEY, None)


def _pick_generated(options: dict[str, dict]) -> None:
    pick = st.session_state.get("etl_q_verify_pick")
    if pick in options:
        st.session_state[LABEL_TEXT_KEY] = options[pick]["text"]
        st.session_state[LABEL_FROM_KEY] = options[pick]


def _generated_options(ds_id: str) -> dict[str, dict]:
    """Kept questions of the newest finished generation run, for verification."""
    runs = generation_runs(res.get_store(), ds_id, status="done")
    if not runs:
        return {}
    run_dir = res.get_store().run_dir(runs[0]["id"])
    table = review_table(run_dir)
    origins = [r["origin"] for r in load_rows(run_dir)]
    return {f"{i}": {"text": q, "origin": origins[i], "passage_id": p}
            for i, (q, p, k) in enumerate(zip(table["question"], table["passage_id"], table["keep"])) if k}


def _more(depth_key: str, depth: int) -> None:
    st.session_state[depth_key] = depth + POOL_DEPTH


def _keep_find(kept_key: str, box_key: str, pid: str) -> None:
    """A search hit ticked stays on the page when the search words change (and leaves it when unticked)."""
    kept = [p for p in st.session_state.get(kept_key, []) if p != pid]
    st.session_state[kept_key] = kept + [pid] if st.session_state.get(box_key) else kept


def _passage_box(pid: str, title: str, text: str, source: str, qtag: str, ticked_before: bool, note: str = "",
                 on_change=None, args: tuple = ()) -> bool:
    """One passage to judge: its tick box, where it is from, its start, and the whole text on demand.
    Nothing says which system found it (the bench is blind)."""
    with st.container(border=True):
        left, right = st.columns([1, 7])
        key = f"etl_q_rel_{qtag}_{pid}"
        ticked = left.checkbox("Relevant", key=key, value=ticked_before, on_change=on_change, args=args)
        right.markdown(f"**{widgets.plain(title)}** {widgets.plain(source or pid)} · {len(text):,} characters{note}")
        right.caption(widgets.plain(widgets.short(text, 260)))
        with right.expander("Read in full"):
            st.markdown(widgets.plain(text))
    return ticked


def _judge(ds_id: str, ev, judgments: dict, question: str, passages: dict[str, str],
           sources: dict[str, str]) -> None:
    """The blind pool for ``question``, "show more", the keyword search, and the save button."""
    root, fingerprint = str(res.get_store().root), _fingerprint(passages)
    qtag = hashlib.sha1(question.strip().encode()).hexdigest()[:8]
    depth_key, kept_key = f"etl_q_depth_{qtag}", f"etl_q_kept_{qtag}"
    pool = _pool(root, fingerprint, question, st.session_state.get(depth_key, POOL_DEPTH), passages, sources)
    source_q = st.session_state.get(LABEL_FROM_KEY) or {}
    from_generated = source_q.get("text") == question
    earlier = earlier_label(ev, judgments, question)
    st.caption(f"{len(pool.candidates)} candidates: the top {pool.depth} passages of each system (the base model "
               "and BM25 keyword ranking), each passage once, shuffled: the order says nothing about which "
               "system found it. Tick every passage that answers the question.")
    st.caption(NOT_TICKED_NOTE)
    shown: dict[str, list[str]] = {}
    ticked: list[str] = []

    def box(pid: str, title: str, found_by: list[str], **kw) -> None:
        mine = " · :blue[generated from this passage]" if from_generated and source_q.get("passage_id") == pid \
            else ""
        shown[pid] = found_by
        if _passage_box(pid, title, passages[pid], sources.get(pid, ""), qtag, pid in earlier, mine, **kw):
            ticked.append(pid)

    in_pool = {c.passage_id for c in pool.candidates}
    before = [p for p in earlier if p not in in_pool and p in passages]
    if before:
        st.markdown(f"**Already in this question's label** ({len(before)}; untick what does not answer it)")
        for i, pid in enumerate(before, start=1):
            box(pid, f"L{i}.", earlier[pid])
    kept = st.session_state.get(kept_key, [])
    for i, c in enumerate(pool.candidates, start=1):
        box(c.passage_id, f"{i}.", c.found_by + (["search"] if c.passage_id in kept else []))
    st.button("Show more", icon=":material/expand_more:", key="etl_q_more", disabled=not pool.more,
              on_click=_more, args=(depth_key, pool.depth),
              help=f"The next {POOL_DEPTH} passages of each system, shuffled the same way; those shown so far keep "
              "their place." if pool.more else "Every passage the systems rank is shown.")
    words = st.text_input("Search all passages", key=f"etl_q_kw_{qtag}", placeholder="Words the answer contains",
                          help="Keyword search (BM25) over every passage of the collection, for an answer that is "
                          "not among the candidates. Its hits can be ticked too (recorded as found by your search).")
    finds = [p for p in kept if p not in shown and p in passages]
    found = _hits(root, fingerprint, words.strip(), passages, sources) if words.strip() else []
    hits = [p for p in found if p not in shown and p not in finds]
    if words.strip() and not hits:
        st.caption(f"The {len(found)} best matches of these words are shown above already." if found else
                   "No passage holds these words.")
    for i, pid in enumerate(finds + hits, start=1):
        box_key = f"etl_q_rel_{qtag}_{pid}"
        box(pid, f"S{i}.", ["search"], on_change=_keep_find, args=(kept_key, box_key, pid))
    origin, allow = "human", False
    if from_generated:
        origin = source_q["origin"]
        allow = st.checkbox("Use it as an evaluation question (it stays marked as generated, verified by you; "
                            "the evaluation is then called mixed)", key=f"etl_q_allow_{qtag}")
    st.button(f"Save label ({len(ticked)} passage{'s' if len(ticked) != 1 else ''})", type="primary",
              icon=":material/save:", key="etl_q_save_label", disabled=not ticked or (from_generated and not allow),
              on_click=_save_label, args=(ds_id, question, shown, ticked, origin, allow))


def label_bench(ds_id: str, ev, passages: dict[str, str], sources: dict[str, str]) -> None:
    """Type a question, tick the passages that answer it, save: one evaluation question, written at once."""
    n = len(human_labels(ev))
    c1, c2 = st.columns([1, 4])
    c1.metric("Labelled by you", n)
    c2.info(widgets.plain(confidence_note(n)), icon=":material/straighten:")
    others = len(ev) - n if ev is not None else 0
    if others:
        st.caption(f"The evaluation split also holds {others:,} other question(s) (uploaded, or generated and "
                   "verified by you).")
    if not passages:
        st.info("This dataset has no passages to search.")
        return
    options = _generated_options(ds_id)
    if options:
        st.selectbox("Or verify a generated question", list(options), index=None, key="etl_q_verify_pick",
                     placeholder="Pick one to check which passages answer it", on_change=_pick_generated,
                     args=(options,), format_func=lambda k: widgets.short(options[k]["text"], 110))
    question = st.text_input("Question", key=LABEL_TEXT_KEY, placeholder="Type a question someone would ask "
                             "these documents, then press Enter")
    try:
        judgments = load_judgments(res.get_store(), ds_id)
    except DataError as exc:
        widgets.show_data_error(exc)
        judgments = {}
    if not question.strip():
        st.caption(f"The base model and keyword search (BM25) each rank every passage; their top {POOL_DEPTH} are "
                   "shown together, shuffled, without saying which found what. Tick every passage that answers "
                   "the question, then save; a search box finds any other passage.")
    else:
        _judge(ds_id, ev, judgments, question, passages, sources)
    labelled = [q for q in (ev.query_ids if ev is not None else []) if ev.origins.get(q)]
    if labelled:
        with st.expander(f"Evaluation questions you labelled or verified ({len(labelled)})"):
            st.dataframe(safe_frame(pd.DataFrame({
                "question": [ev.queries[q] for q in labelled],
                "relevant passages": [", ".join(sources.get(d) or d for d in ev.relevant_docs[q]) for q in labelled],
                "found by": ["; ".join(_found_words(judgments.get(q, {}).get(d, {}).get("found_by", []))
                                       for d in ev.relevant_docs[q]) for q in labelled],
                "judged": [len(judged_ids(judgments, q)) for q in labelled],
                "origin": [ev.origins[q] for q in labelled]}, index=labelled)), width="stretch",
                column_config={"judged": st.column_config.NumberColumn(
                    "judged", help="Passages judged for this question: relevant, plus shown and not ticked.")})
            gone = st.selectbox("Remove one", labelled, index=None, key="etl_q_remove_pick",
                                format_func=lambda q: widgets.short(ev.queries[q], 100))
            if st.button("Remove", key="etl_q_remove", disabled=gone is None):
                remove_label(res.get_store(), ds_id, gone)
                state.flash("Removed the question from the evaluation split.")
                st.rerun()

"""Session state: the keys pages share, the dataset/run selections and one-shot messages.

Session state holds only small values (ids, settings, messages); data lives in the store.
"""

from __future__ import annotations

import streamlit as st

from core.insight.history import dataset_choices, done_runs
from ui.resources import get_store

# --------------------------------------------------------------------------- session-state keys
# The selections are plain keys (not widget keys): any page may set them at any time, and they
# survive page changes whether or not the sidebar widgets are drawn in a given run.
DATASET_KEY = "etl_dataset_id"  # id of the selected dataset (Train uses it)
RUN_KEY = "etl_run_id"  # id of the selected finished run (Map, Compare)
TRAIN_RUN_KEY = "etl_train_run"  # Train page: id of the run whose live panel is shown
DATASET_PICKER = "etl_pick_dataset"  # the sidebar selectbox mirroring DATASET_KEY
RUN_PICKER = "etl_pick_run"  # the sidebar selectbox mirroring RUN_KEY
FLASH_KEY = "etl_flash"  # one message shown after the rerun that follows an action
MAPPINGS_KEY = "etl_mappings"  # Data page: {file name: column mapping chosen by hand}
MAP_PARAMS_KEY = "etl_map_params"  # Map page: UMAP settings last submitted
QUERY_TEXT_KEY = "etl_query_text"  # Compare page: the free-text query box
APP_KEY = "etl_through_app"  # set by app.py in every run: the page runs inside the app's navigation
GOTO_KEY = "etl_goto"  # the page a deep link asked for before app.py had run (see ``through_app``)


def through_app(page_file: str) -> None:
    """Make sure this page runs inside app.py's navigation; call it first thing in every page.

    On a fresh server, a deep link (``/Train``) can reach Streamlit before app.py has ever run: it
    then serves the file from ``pages/`` on its own (its old pages-folder mode), with no sample
    dataset, sidebar pickers or page config. The page then hands over to app.py, which opens the
    page that was asked for (``GOTO_KEY``).
    """
    if not st.session_state.get(APP_KEY):
        st.session_state[GOTO_KEY] = "pages/" + page_file.replace("\\", "/").rsplit("/", 1)[-1]
        st.switch_page("app.py")


def flash(message: str, kind: str = "success") -> None:
    """Remember a message to show once after the next rerun (``show_flash``)."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    item = st.session_state.pop(FLASH_KEY, None)
    if item:
        kind, message = item
        getattr(st, kind)(message)



# --------------------------------------------------------------------------- selections
def select_dataset(ds_id: str) -> None:
    """Make ``ds_id`` the selected dataset (the sidebar shows it from the next run on)."""
    st.session_state[DATASET_KEY] = ds_id


def select_run(run_id: str) -> None:
    """Make finished run ``run_id`` the one the Map and Compare pages show."""
    st.session_state[RUN_KEY] = run_id


def current(key: str, options: list[str]) -> str | None:
    """The selection under ``key`` if still offered, else the first option (newest), remembered."""
    cur = st.session_state.get(key)
    if cur not in options:
        cur = options[0] if options else None
        st.session_state[key] = cur
    return cur




def selected_dataset() -> str | None:
    """Id of the selected dataset (default: the user's newest, else the sample), or None when there is none."""
    return current(DATASET_KEY, [d["id"] for d in dataset_choices(get_store())])


def selected_run() -> str | None:
    """Id of the selected finished run (default: the newest), or None when there is none."""
    return current(RUN_KEY, [r["id"] for r in done_runs(get_store())])



"""The Streamlit side of the app. Nothing in ``core`` imports this package.

Where a page's code lives:

* ``pages/N_Name.py`` is the page: a script that draws its sections in order (title, hint, then each section
  with its widgets and core calls). N is the page's place in the sidebar (``app.py``'s ``st.navigation``), one
  number per page; the URL is the name without the number (``/Train``). A page defines no functions.
* ``ui/<name>.py`` holds that page's panels, forms, callbacks and cached helpers, and is named after it:
  ``data`` (Data), ``questions`` (Questions), ``train`` (Train: the launch form and the live panel of a run),
  ``embedding_map`` (Embedding map), ``compare`` (Compare, with its judging section). A page with nothing but
  its sections (Runs) has none.

The modules form layers; each imports only those below it, at module top (function-local imports are for heavy
libraries, and for core modules that import plotly, which loads in a background thread rather than at start-up):

1. ``resources``: cached shared objects (store, job runner, run views, parsed uploads, map figures);
2. ``state``: session keys, the dataset / run selections, one-shot messages;
3. ``widgets``: what several pages share on screen (tables, verdict, settings forms, progress, a run's polling);
4. the page modules above, which never import one another.
"""

"""The Streamlit side of the app: ``resources`` (cached shared objects), ``state`` (session keys and
selections) and ``widgets`` (what pages share on screen). Nothing in ``core`` imports this package."""

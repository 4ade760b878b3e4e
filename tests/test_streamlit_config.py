"""The server settings the app relies on (docs/HARDENING.md, "Safe defaults"), read the way Streamlit reads them."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def options():
    from streamlit import config

    config.get_config_options(force_reparse=True, options_from_flags={})
    # Streamlit reads .streamlit/config.toml from the working directory: parse ours explicitly.
    config._update_config_with_toml((ROOT / ".streamlit" / "config.toml").read_text(), "test")
    yield config.get_option
    config.get_config_options(force_reparse=True, options_from_flags={})


def test_server_is_local_and_guarded(options):
    assert options("server.address") == "127.0.0.1"
    assert options("server.enableXsrfProtection") is True
    assert options("server.maxUploadSize") == 200
    assert options("client.showErrorDetails") == "none"
    assert options("server.fileWatcherType") == "none"


def test_no_forced_gc_after_each_rerun(options):
    # With it on, every 1-second rerun of the live panel ran gc.collect(2) over torch's heap while
    # holding the GIL: a watched fine-tune on the sample data took 620 s instead of 127 s.
    assert options("runner.postScriptGC") is False

"""The export's README / model card with hostile names: a base-model folder whose name is Python code,
a run name with a newline and an HTML tag. Code examples carry them as string literals (repr), Markdown
as escaped text on one line; running the example as shown must not run the name."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys

from core.insight.model_card import md_text, model_card
from core.tuning.spec import RunSpec, Scoring

EVIL_MODEL = 'm"); __import__("os").system("touch PWNED"); ("'
EVIL_NAME = "nice run\n# Owned heading\n<svg onload=alert(1)> [click](javascript:alert(1)) | cell"


def _run_dir(tmp_path, method: str, base_model: str, name: str):
    run_dir = tmp_path / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    spec = RunSpec.for_method(method, base_model=base_model, scoring=Scoring(passage_tokens=64))
    (run_dir / "config.json").write_text(json.dumps(spec.to_dict()))
    (run_dir / "status.json").write_text(json.dumps({"name": name}))
    return run_dir


def _python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, re.S)


def test_adapter_example_keeps_a_hostile_model_path_a_string(tmp_path):
    card = model_card(_run_dir(tmp_path, "adapter", EVIL_MODEL, "adapter run"), 128)
    (code,) = _python_blocks(card)
    tree = ast.parse(code)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SentenceTransformer"]
    assert len(calls) == 1 and isinstance(calls[0].args[0], ast.Constant) and calls[0].args[0].value == EVIL_MODEL
    # Run the example as shown (with stand-ins for sentence-transformers and numpy): no PWNED file appears.
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    (stubs / "sentence_transformers.py").write_text("class SentenceTransformer:\n    def __init__(self, *a, **k): pass\n")
    (stubs / "numpy.py").write_text("def load(*a, **k):\n    return {'weight': None, 'bias': None}\n")
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", code], cwd=work, env={"PYTHONPATH": str(stubs)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert not (work / "PWNED").exists()


def test_markdown_escapes_the_run_name_and_the_model(tmp_path):
    card = model_card(_run_dir(tmp_path, "nudge", EVIL_MODEL, EVIL_NAME), None)
    lines = card.splitlines()
    assert lines[0].startswith("# nice run ") and "Owned heading" in lines[0]  # one heading, one line
    assert not any(line.startswith("# Owned") for line in lines)
    assert "<svg" not in card and "&lt;svg onload=alert\\(1\\)&gt;" in card
    assert "](javascript:" not in card
    assert f"({md_text(EVIL_MODEL)})" in card


def test_md_text():
    assert md_text("a\nb\r\nc") == "a b c"
    assert md_text("<b>x</b> *y* `z` [l](u) #h |") == "&lt;b&gt;x&lt;/b&gt; \\*y\\* \\`z\\` \\[l\\]\\(u\\) \\#h \\|"

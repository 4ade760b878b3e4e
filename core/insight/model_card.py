"""The words of an export: the model card (what the model is, its scores, how to use it) and the
bundle's README (its files, vector size, token limit and the re-indexing reminder).

Every value a user gave (run name, base model path or id, system names, settings) goes into Markdown
through :func:`md_text` (one line, HTML and Markdown characters escaped) and into Python code
through ``repr()``: a model folder named ``m"); __import__("os").system(...); ("`` stays a string.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path
from typing import Any

from core.insight.unchanged import UNCHANGED_BUNDLE, base_unchanged
from core.tuning.methods import method_of
from core.tuning.spec import RunSpec
from core.workspace.run_folder import load_results, read_status

DEFAULT_BASE_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what the bundled base model is on the Hub


def base_model_ref(spec: RunSpec) -> str:
    """How a bundle names the base model: the run's folder or hub id; the bundled default by its hub id."""
    return spec.base_model or DEFAULT_BASE_HUB_ID


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def md_text(value: Any) -> str:
    """``value`` as inline Markdown text: one line (newlines become spaces), ``< > &`` as HTML entities
    (no raw tag reaches a renderer) and Markdown punctuation backslash-escaped (no heading, link,
    emphasis or table cell can start inside it)."""
    one_line = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=False))


def _table(results) -> str:
    """The results' metrics table in Markdown, system names escaped."""
    t = results.table()
    lines = ["| system | " + " | ".join(md_text(c) for c in t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
    lines += [f"| {md_text(name)} | " + " | ".join(f"{v:.4f}" for v in row) + " |" for name, row in t.iterrows()]
    return "\n".join(lines)


def model_card(run_dir: str | Path, dim: int | None = None) -> str:
    """The top of the bundle's README.md: method, base model, settings, scores and how to use it."""
    run_dir = Path(run_dir)
    spec = RunSpec.load(run_dir)
    status = read_status(run_dir)
    results = load_results(run_dir)
    method = method_of(spec.method)
    what = method.card_what or spec.method
    if results is None:
        scores = "_No evaluation results were saved with this run._"
    else:
        head = results.headline_lines()
        lead = ("**Best retriever with tuning vs best without** (the lab's headline):\n\n"
                + "\n".join(f"- {md_text(line)}" for line in head) + "\n\nEvery retriever scored:\n\n") if head else ""
        scores = (lead + _table(results) + f"\n\nEvaluated on {results.eval_questions} held-out questions "
                  f"({results.question_origin}) searching {results.eval_passages} passages, read at "
                  f"{results.passage_tokens} tokens by both models.")
    settings = "\n".join(f"- {md_text(k)}: {md_text(v)}" for k, v in spec.describe())
    unchanged = base_unchanged(run_dir)
    ref = base_model_ref(spec)
    usage = (method.card_usage.replace("{base_model_py}", repr(ref)).replace("{base_model}", md_text(ref))
             .replace("{dim}", repr(dim)))
    return "\n".join(
        [
            f"# {md_text(status.get('name') or run_dir.name)}",
            "",
            f"Exported from the Embedding Tuning Lab on {time.strftime('%Y-%m-%d %H:%M')}.",
            "",
            f"- **What it is:** {what}",
            *([f"- **Unchanged: {UNCHANGED_BUNDLE}.** {unchanged} Deploying it changes nothing; tune on other "
               "questions (label real ones, or try the full fine-tune) before you ship."] if unchanged else []),
            f"- **Method:** `{spec.method}`",
            f"- **Base model:** {md_text(spec.model_label)}",
            f"- **Run id:** {md_text(run_dir.name)}",
            "",
            "## Scores on the held-out questions",
            "",
            scores,
            "",
            "## How to use it",
            "",
            usage,
            "",
            "## Settings",
            "",
            settings,
            "",
        ]
    )


def readme(run_dir: Path, spec: RunSpec, info: dict[str, Any]) -> str:
    """README.md: the model card, then the bundle's files, its dimension and the re-indexing reminder."""
    dim, full = info["dimension"], info["full_dimension"]
    size = (f"{dim} of {full} dimensions (Matryoshka truncation: the first {dim} coordinates, unit length again; "
            f"`truncate_dim={dim}` in sentence-transformers)" if dim != full else f"the full {full} dimensions")
    lines = [
        model_card(run_dir, info["truncate_dim"]),
        "## This bundle",
        "",
        method_of(spec.method).card_reindex.format(rows=info["embeddings"]["rows"]),
        "",
        f"- **Vector size:** {size}. Questions must be cut the same way as the stored vectors.",
        f"- **Token limit:** passages and questions are read at {info['max_seq_length']} tokens, as in the run.",
        f"- **Encoded with:** the run's `{info['scored_with_backend']}` backend made the stored vectors"
        + ("" if info["scored_with_backend"] == "torch" else
           f" (`onnx/{'model_int8' if info['scored_with_backend'] == 'onnx-int8' else 'model'}.onnx` reproduces them; "
           "torch's vectors differ from them by the cosine recorded in `onnx/onnx.json`)") + ".",
        f"- **`embeddings.parquet`:** {info['embeddings']['rows']} rows (id, text, source, vector"
        + (", passage_id: one row per window" if info["windows"] else "") + "), ready to load into a vector store.",
    ]
    if info["onnx"]:
        lines.append(f"- **`onnx/`:** {info['onnx']['of']} for ONNX Runtime: `model.onnx` (fp32, cosine "
                     f"{info['onnx']['fp32_min_cosine_vs_torch']} or more against torch on the check texts) and "
                     f"`model_int8.onnx` (dynamic int8, {info['onnx']['int8_min_cosine_vs_torch']} or more); the "
                     "graph gives token embeddings: apply the pooling in `onnx/onnx.json`, then normalise "
                     "(`snippets/onnx_search.py` does it without torch).")
    lines += [
        "- **`snippets/`:** each one runs as is from anywhere: `python snippets/faiss_search.py \"your question\"` "
        "(sentence-transformers, FAISS, Qdrant, LlamaIndex, LangChain" + (", ONNX Runtime" if info["onnx"] else "")
        + "). Install what a snippet imports first (e.g. `pip install faiss-cpu qdrant-client llama-index-core "
        "langchain-core`).",
        "",
    ]
    return "\n".join(lines)

"""Export a finished run as one zip: the tuned model (or adapter / nudged vectors) and its papers.

``model_zip(run_dir)`` builds the archive in memory from fixed names inside the run folder
(never from user text), so nothing outside the run folder can end up in it and no entry can
escape the folder it is unpacked into:

    <run id>/README.md          what this is, how it was made, its scores, how to use it
    <run id>/config.json        the run's settings
    <run id>/results.json       base / tuned / BM25 / hybrid metrics
    <run id>/model/...          full fine-tune: the sentence-transformers model folder
    <run id>/adapter.npz        adapter: W and b of q' = normalise(q @ W.T + b)
    <run id>/nudged.npy         NUDGE: the nudged passage vectors, row ids in nudged_ids.json

Errors: ``FileNotFoundError`` when the run has nothing to export (not finished, failed, or
its files were removed).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

from core.store import read_json

# Weights barely compress and deflating ~90 MB costs seconds on a small CPU: store them as is.
STORED_SUFFIXES = (".safetensors", ".bin", ".npy", ".npz", ".pt", ".onnx")
# What each method must have left in the run folder for an export to make sense.
ARTIFACTS = {
    "full": ("model",),
    "adapter": ("adapter.npz",),
    "nudge": ("nudged.npy", "nudged_ids.json"),
}
EXTRA_FILES = ("config.json", "results.json")

_USAGE = {
    "full": """```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("model")  # the model/ folder of this zip
vectors = model.encode(["your question or passage"], normalize_embeddings=True)
```

Re-encode your passages with this model: vectors from the base model do not mix with it.""",
    "adapter": """The base model is unchanged; only QUESTION vectors are transformed, so an existing
passage index built with the base model keeps working.

```python
import numpy as np
from sentence_transformers import SentenceTransformer

base = SentenceTransformer("{base_model}")
z = np.load("adapter.npz", allow_pickle=False)
W, b = z["weight"], z["bias"]

def encode_question(text):
    q = base.encode([text], normalize_embeddings=True) @ W.T + b
    return q / np.linalg.norm(q, axis=1, keepdims=True)
```""",
    "nudge": """NUDGE changed the stored PASSAGE vectors of the training corpus; the base model is
unchanged. Replace the vectors of these passages in your index (ids in `nudged_ids.json`, one
row of `nudged.npy` each) and keep encoding questions with the base model
(`{base_model}`).

```python
import json
import numpy as np

ids = json.load(open("nudged_ids.json"))
vectors = np.load("nudged.npy", allow_pickle=False)  # (len(ids), dim) float32, unit length
```""",
}


def _files_of(folder: Path) -> list[Path]:
    """Regular files under ``folder`` (recursively, sorted); symlinks are skipped, not followed."""
    out = []
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not p.is_file():
            continue
        if any((folder / part).is_symlink() for part in p.relative_to(folder).parents):
            continue  # inside a linked folder
        out.append(p)
    return out


def _metrics_markdown(results: dict | None) -> str:
    if not results or not results.get("systems"):
        return "_No evaluation results were saved with this run._"
    cols = ["Accuracy@1", "Accuracy@10", "MRR@10", "nDCG@10", "Recall@10", "MAP@100"]
    systems = results["systems"]
    order = results.get("order") or list(systems)
    cols = [c for c in cols if all(c in systems[s] for s in order)]
    lines = ["| system | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for s in order:
        lines.append(f"| {s} | " + " | ".join(f"{systems[s][c]:.4f}" for c in cols) + " |")
    n_q, n_p = results.get("n_eval_questions"), results.get("n_eval_passages")
    if n_q:
        lines.append("")
        lines.append(f"Evaluated on {n_q} held-out questions searching {n_p} passages.")
    return "\n".join(lines)


def model_card(run_dir: str | Path) -> str:
    """The README.md of the export: method, base model, settings, scores and how to use it."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", {}) or {}
    status = read_json(run_dir / "status.json", {}) or {}
    results = read_json(run_dir / "results.json")
    method = config.get("method", status.get("method", "full"))
    base_model = config.get("base_model") or "sentence-transformers/all-MiniLM-L6-v2"
    what = {
        "full": "a fine-tuned sentence-transformers model (all weights updated)",
        "adapter": "a linear query adapter applied on top of the unchanged base model",
        "nudge": "NUDGE-adjusted passage vectors for the training corpus (base model unchanged)",
    }.get(method, method)
    settings = {k: v for k, v in config.items() if k not in ("method", "dataset_id")}
    return "\n".join(
        [
            f"# {status.get('name') or run_dir.name}",
            "",
            f"Exported from the Embedding Tuning Lab on {time.strftime('%Y-%m-%d %H:%M')}.",
            "",
            f"- **What it is:** {what}",
            f"- **Method:** `{method}`",
            f"- **Base model:** `{base_model}`",
            f"- **Run id:** `{run_dir.name}`",
            "",
            "## Scores on the held-out questions",
            "",
            _metrics_markdown(results),
            "",
            "## How to use it",
            "",
            _USAGE.get(method, "").replace("{base_model}", base_model),
            "",
            "## Settings",
            "",
            "```json",
            json.dumps(settings, indent=1, default=str),
            "```",
            "",
        ]
    )


def model_zip(run_dir: str | Path) -> bytes:
    """Zip a finished run's tuned model (or adapter / nudged vectors) with its config, results and a README.

    Args:
        run_dir: The run folder (``Store.run_dir(run_id)``).

    Returns:
        The zip archive's bytes; every entry sits under ``<run folder name>/``.

    Raises:
        FileNotFoundError: the run folder, its config, or the method's artifacts are missing.
    """
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json")
    if config is None:
        raise FileNotFoundError(f"{run_dir.name}: no config.json; this is not a run folder.")
    method = config.get("method", "full")
    needed = ARTIFACTS.get(method)
    if needed is None:
        raise FileNotFoundError(f"{run_dir.name}: unknown method {method!r}, nothing to export.")
    missing = [n for n in needed if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"Run {run_dir.name} has no {', '.join(missing)}: it did not finish, so there is no tuned model to download."
        )
    prefix = run_dir.name
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{prefix}/README.md", model_card(run_dir))
        for name in EXTRA_FILES + needed:
            path = run_dir / name
            if path.is_symlink() or not path.exists():
                continue
            files = _files_of(path) if path.is_dir() else [path]
            for f in files:
                arc = f"{prefix}/{f.relative_to(run_dir).as_posix()}"
                kind = zipfile.ZIP_STORED if f.suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                zf.write(f, arc, compress_type=kind)
    return buf.getvalue()

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
import time
import zipfile
from pathlib import Path

from core.insight.results import load_results
from core.store import read_json
from core.tuning.spec import RunSpec

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


def model_card(run_dir: str | Path) -> str:
    """The README.md of the export: method, base model, settings, scores and how to use it."""
    run_dir = Path(run_dir)
    spec = RunSpec.load(run_dir)
    status = read_json(run_dir / "status.json", {}) or {}
    results = load_results(run_dir)
    what = {
        "full": "a fine-tuned sentence-transformers model (all weights updated)",
        "adapter": "a linear query adapter applied on top of the unchanged base model",
        "nudge": "NUDGE-adjusted passage vectors for the training corpus (base model unchanged)",
    }.get(spec.method, spec.method)
    if results is None:
        scores = "_No evaluation results were saved with this run._"
    else:
        scores = (results.table_markdown() + f"\n\nEvaluated on {results.eval_questions} held-out questions "
                  f"({results.question_origin}) searching {results.eval_passages} passages, read at "
                  f"{results.passage_tokens} tokens by both models.")
    settings = "\n".join(f"- {k}: {v}" for k, v in spec.describe())
    return "\n".join(
        [
            f"# {status.get('name') or run_dir.name}",
            "",
            f"Exported from the Embedding Tuning Lab on {time.strftime('%Y-%m-%d %H:%M')}.",
            "",
            f"- **What it is:** {what}",
            f"- **Method:** `{spec.method}`",
            f"- **Base model:** `{spec.model_label}`",
            f"- **Run id:** `{run_dir.name}`",
            "",
            "## Scores on the held-out questions",
            "",
            scores,
            "",
            "## How to use it",
            "",
            _USAGE.get(spec.method, "").replace("{base_model}", spec.base_model or "sentence-transformers/all-MiniLM-L6-v2"),
            "",
            "## Settings",
            "",
            settings,
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
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir.name}: no config.json; this is not a run folder.")
    method = RunSpec.load(run_dir).method
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

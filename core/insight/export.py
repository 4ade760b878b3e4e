"""Export a finished run as a bundle people deploy: the model, its ONNX files, the collection's
embeddings as Parquet, and tested snippets for the usual retrieval stacks.

One writer, two outputs: ``write_bundle(store, run_id, out)`` writes a folder (the CLI's
``python -m core export RUN_ID --out PATH``; a PATH ending in .zip gets ``write_bundle_zip``) and
``bundle_zip`` the same files as one zip (the Runs page's download). Every entry comes from fixed
names inside the run folder, the ONNX cache or text made here (never from user text as a path), so
nothing outside them ends up in the bundle and no entry escapes the folder it is unpacked into::

    README.md                what this is, its scores, how to use it, the re-indexing reminder
    export.json              run, method, base model, dimension (truncate_dim), token limit, files
    config.json results.json the run's settings and scores
    model/                   full fine-tune: the sentence-transformers folder (each method's files: its
                             ``Method.bundle_sources``, ``core.tuning.methods``)
    adapter.npz              adapter: W and b of q' = normalise(q @ W.T + b) (base model referenced)
    nudged.npy nudged_ids.json   NUDGE: the nudged passage vectors (base model referenced)
    onnx/model.onnx          the encoding model's transformer, fp32 (the tuned model; for an adapter
    onnx/model_int8.onnx     or NUDGE run the base model), dynamic int8, their tokenizer files and
    onnx/onnx.json           onnx.json (pooling, normalisation, token limit, checks against torch)
    embeddings.parquet       id, text, source, vector: the run's tuned passage vectors (the evaluation
                             collection), cut to the chosen dimension and unit length again; windowed
                             runs have a row per window (id "<passage id>#<n>", passage_id column)
    snippets/*_search.py     sentence-transformers, FAISS, Qdrant, LlamaIndex, LangChain, ONNX Runtime: the
                             tuned model alone over embeddings.parquet (``core.insight.snippets``)
    snippets/*_hybrid.py     when the recommended pipeline is a dense + BM25 hybrid: that hybrid in LlamaIndex
                             (QueryFusionRetriever + BM25Retriever), LangChain (EnsembleRetriever) and Qdrant
                             (dense + sparse vectors, a fusion query), from pipeline.json and pipeline/, with
                             each library's fusion (``core.insight.snippets_hybrid``; search.py is the exact one)
    pipeline.json search.py  the retriever the run recommends (BM25, a hybrid, a dense model, a reranker),
    pipeline/                whole, with a search function that reproduces the run's rankings
                             (``core.insight.bundle_pipeline``)

The chosen Matryoshka dimension is one of ``dimension_choices`` (``quality_by_dimension``'s sizes;
default the full size). The snippets read export.json (the hybrid ones pipeline.json too), so they follow
the bundle they sit in; each prints its top hits as ``rank<TAB>score<TAB>id<TAB>text``
(``tests/insight/test_snippets.py`` and ``tests/insight/test_snippets_hybrid.py`` run them). The README's last section
says which snippet searches what.

Errors: ``FileNotFoundError`` when the run has nothing to export (not finished, failed, or its
files were removed); ``ValueError`` for a dimension that is not offered or an output folder that
is not empty.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.insight.bundle_pipeline import CONFIG_FILE, pipeline_files, pipeline_readme
from core.insight.explore import BY_DIMENSION_FILE, open_run
from core.insight.matryoshka import DIMS, truncate
from core.insight.model_card import DEFAULT_BASE_HUB_ID, base_model_ref, model_card, readme  # noqa: F401
from core.insight.snippets import SNIPPETS, TOP_K, snippets  # noqa: F401
from core.insight.snippets_hybrid import HYBRID_SNIPPETS, hybrid_readme, hybrid_snippets  # noqa: F401
from core.retrieval.backends import ONNX_FILES, ensure_onnx, export_meta, pooling_spec
from core.retrieval.embedding import load_model, resolve_model
from core.retrieval.windows import split_windows
from core.tuning.methods import REGISTERED, method_of
from core.tuning.spec import RunSpec
from core.workspace.files import OWNER_ONLY_DIR, atomic_write_json, owner_only, read_json
from core.workspace.run_folder import CONFIG, RESULTS, is_run_folder, load_vectors
from core.workspace.store import Store

FORMAT = 1
# Weights barely compress and deflating ~90 MB costs seconds on a small CPU: store them as is.
STORED_SUFFIXES = (".safetensors", ".bin", ".npy", ".npz", ".pt", ".onnx", ".parquet")
# What each method must have left in the run folder for an export to make sense (its ``saves``).
ARTIFACTS = {m.name: m.saves for m in REGISTERED if m.kind == "fit"}
EXTRA_FILES = (CONFIG, RESULTS)
Progress = Callable[[str, float], None]  # (message, fraction done), as the report builder reports

@dataclass
class Entry:
    """One file of the bundle: a path relative to the bundle root and its bytes or its source file."""

    name: str
    data: bytes | None = None
    source: Path | None = None


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


def check_exportable(run_dir: Path) -> RunSpec:
    """The run's spec, once its method's files are known to be there.

    Raises:
        FileNotFoundError: no run folder / config, unknown method, or the method's files are missing.
    """
    if not is_run_folder(run_dir):
        raise FileNotFoundError(f"{run_dir.name}: no config.json; this is not a run folder.")
    spec = RunSpec.load(run_dir)
    method = method_of(spec.method)
    if method.kind != "fit":
        raise FileNotFoundError(f"{run_dir.name}: a {spec.method} run has no tuned model of its own to export.")
    missing = [n for n in method.saves if not (run_dir / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"Run {run_dir.name} has no {', '.join(missing)}: it did not finish, so there is no tuned model to download."
        )
    return spec


def dimension_choices(full: int) -> list[int]:
    """The vector sizes a bundle offers: the full size, then ``quality_by_dimension``'s smaller ones."""
    return [full, *[d for d in DIMS if d < full]]


def dimension_options(store: Store, run_id: str) -> list[tuple[int, str]]:
    """(dimension, label) per offered size, the label with the tuned system's nDCG@10 at that size and
    its storage (``RunView.by_dimension``: stored vectors, no encoding)."""
    saved = store.run_dir(run_id) / BY_DIMENSION_FILE  # saved by the run's view: no need to open the run
    table = pd.read_csv(saved) if saved.exists() else open_run(store, run_id).by_dimension()
    rows = table[table["model"] == "tuned"]
    full = int(rows["dimensions"].max())
    out = []
    for dim in dimension_choices(full):
        row = rows[rows["dimensions"] == dim]
        if row.empty:
            continue
        r = row.iloc[0]
        label = (f"{dim}{' (full size)' if dim == full else ''}: nDCG@10 {r['nDCG@10']:.3f}, "
                 f"{r['MB per 1M passages']:g} MB per million passages")
        out.append((dim, label))
    return out


def _encoding_model(run_dir: Path, spec: RunSpec):
    """The torch model that encodes questions (and new passages) for this run, at its token limit: the bundle's
    plain model folder when the method ships one (``Method.bundle_model``), else the base model."""
    method = method_of(spec.method)
    target = (str(method.bundle_sources(run_dir, spec)[method.bundle_model]) if method.bundle_model
              else spec.base_model)
    model = load_model(target, device="cpu")
    model.max_seq_length = spec.scoring.passage_tokens
    return model


def _embeddings_table(view, spec: RunSpec, dim: int, model_fn) -> tuple[bytes, int]:
    """embeddings.parquet's bytes and its row count (see the module docstring)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = view.passage_ids
    texts = [view.eval.corpus[p] for p in ids]
    sources = [view.eval.sources.get(p) or None for p in ids]
    extra: dict[str, list] = {}
    if view.tuned_w is not None:  # windowed: one row per window, as the run searched
        wins = split_windows(texts, model_fn().tokenizer, spec.scoring.passage_tokens, spec.scoring.window_overlap)
        if len(wins.owner) != len(view.owner) or not np.array_equal(wins.owner, np.asarray(view.owner)):
            raise ValueError("The run's passage windows cannot be rebuilt from its passages: export without "
                             "windows is not possible for this run.")
        counter: dict[int, int] = {}
        row_ids, row_texts, row_sources, owners = [], [], [], []
        for row, (start, end) in zip(wins.owner.tolist(), wins.spans):
            n = counter[row] = counter.get(row, 0) + 1
            row_ids.append(f"{ids[row]}#{n}")
            row_texts.append(texts[row][start:end])
            row_sources.append(sources[row])
            owners.append(ids[row])
        ids, texts, sources, extra = row_ids, row_texts, row_sources, {"passage_id": owners}
        vectors = truncate(np.asarray(view.tuned_w), dim)
    else:
        vectors = truncate(np.asarray(view.tuned_d), dim)
    columns = {"id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.string()),
               "source": pa.array(sources, pa.string()),
               "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim)}
    columns.update({k: pa.array(v, pa.string()) for k, v in extra.items()})
    table = pa.table(columns).replace_schema_metadata({
        "dimension": str(dim), "normalised": "L2, after truncation", "run_id": view.run_id,
        "model": f"{method_of(spec.method).bundle_model}/" if method_of(spec.method).bundle_model
        else base_model_ref(spec)})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue(), len(ids)


def _onnx_entries(model, spec: RunSpec, onnx_dir: Path, progress: Progress | None) -> tuple[list[Entry], dict]:
    """onnx/: the encoding model's fp32 and int8 files (from the workspace cache, exported once), its
    tokenizer files and onnx.json."""
    def step(done: int, total: int, unit: str) -> None:
        if progress:
            progress(f"ONNX export of the model (once per model): {done}/{total} {unit}", 0.1 + 0.6 * done / max(total, 1))

    fp32 = ensure_onnx(model, "onnx-int8", onnx_dir, progress=step).with_name(ONNX_FILES["onnx"])
    int8 = fp32.with_name(ONNX_FILES["onnx-int8"])
    checks = export_meta(model, onnx_dir)
    meta = {**pooling_spec(model), "max_seq_length": spec.scoring.passage_tokens,
            "prompts": dict(getattr(model, "prompts", {}) or {}),
            "of": "the tuned model" if method_of(spec.method).bundle_model else
            "the base model (unchanged by this method)",
            "fp32": "model.onnx", "int8": "model_int8.onnx",
            "fp32_min_cosine_vs_torch": checks.get("fp32_min_cosine"),
            "int8_min_cosine_vs_torch": checks.get("int8_min_cosine"),
            "exporter": checks.get("exporter"), "opset": checks.get("opset"),
            "pooling_note": "token embeddings -> pooling 'modes' over the attention mask (concatenated) -> "
                            "L2 normalise when 'normalize'"}
    entries = [Entry("onnx/model.onnx", source=fp32), Entry("onnx/model_int8.onnx", source=int8),
               Entry("onnx/onnx.json", json.dumps(meta, indent=1).encode("utf-8"))]
    with tempfile.TemporaryDirectory() as tmp:
        model.tokenizer.save_pretrained(tmp)
        for f in sorted(Path(tmp).iterdir()):
            if f.is_file():
                entries.append(Entry(f"onnx/{f.name}", f.read_bytes()))
    return entries, meta


def bundle_entries(store: Store, run_id: str, *, dim: int | None = None, with_onnx: bool = True,
                   progress: Progress | None = None) -> list[Entry]:
    """Every file of a run's bundle (see the module docstring), in writing order.

    Args:
        store: the workspace (its run folder and its ONNX cache, ``cache/onnx``).
        run_id: a finished full / adapter / NUDGE run.
        dim: vector size kept (``dimension_choices``); None: the full size.
        with_onnx: include onnx/ (exported into the workspace cache the first time).
        progress: called with (message, fraction done).

    Raises:
        FileNotFoundError: see ``check_exportable``; the run has no saved vectors.
        ValueError: ``dim`` is not offered.
    """
    run_dir = store.run_dir(run_id)
    spec = check_exportable(run_dir)
    if load_vectors(run_dir) is None:
        raise FileNotFoundError(f"Run {run_id} has no saved vectors: it did not finish.")
    view = open_run(store, run_id)
    full = int(view.tuned_d.shape[1])
    choices = dimension_choices(full)
    dim = full if dim is None else int(dim)
    if dim not in choices:
        raise ValueError(f"dimension {dim} is not offered for this run: choose one of {', '.join(map(str, choices))}")
    if progress:
        progress("Reading the run", 0.05)
    loaded: list[Any] = []

    def model_fn():
        if not loaded:
            loaded.append(_encoding_model(run_dir, spec))
        return loaded[0]

    entries: list[Entry] = []
    sources = {name: run_dir / name for name in EXTRA_FILES} | method_of(spec.method).bundle_sources(run_dir, spec)
    for name, path in sources.items():
        if path.is_symlink() or not path.exists():
            continue
        for f in (_files_of(path) if path.is_dir() else [path]):
            entries.append(Entry(f"{name}/{f.relative_to(path).as_posix()}" if path.is_dir() else name, source=f))
    onnx_meta = None
    if with_onnx:
        onnx_entries, onnx_meta = _onnx_entries(model_fn(), spec, store.cache_path.parent / "onnx", progress)
        entries += onnx_entries
        atomic_write_json(run_dir / ONNX_MARKER, {"onnx_folder": onnx_entries[0].source.parent.name})
    if progress:
        progress("Writing the collection's embeddings (Parquet)", 0.75)
    parquet, rows = _embeddings_table(view, spec, dim, model_fn)
    entries.append(Entry("embeddings.parquet", parquet))
    info = _export_info(view, spec, dim, full, rows, onnx_meta)
    entries.append(Entry("export.json", json.dumps(info, indent=1).encode("utf-8")))
    entries.append(Entry("README.md", readme(run_dir, spec, info).encode("utf-8")))
    for name, text in snippets(spec.method, with_onnx).items():
        entries.append(Entry(f"snippets/{name}", text.encode("utf-8")))
    if progress:
        progress("Writing the recommended retriever (pipeline/, search.py)", 0.9)
    have = {e.name for e in entries}
    for name, data in pipeline_files(view, view.results, spec, run_dir):
        if name not in have:
            entries.append(Entry(name, data) if isinstance(data, bytes) else Entry(name, source=data))
    config = json.loads(next(e.data for e in entries if e.name == CONFIG_FILE) or b"{}")
    entries += [Entry(f"snippets/{name}", text.encode("utf-8")) for name, text in hybrid_snippets(config).items()]
    readme_entry = next(e for e in entries if e.name == "README.md")
    readme_entry.data += ("\n\n" + pipeline_readme(view.results) + "\n\n" + hybrid_readme(config)).encode("utf-8")
    if progress:
        progress("Bundle ready", 1.0)
    return entries


def _local_base(spec: RunSpec) -> str | None:
    """The local folder of a run's base model (the bundled default, or a folder the user gave); None for a hub id.
    Snippets load it when it exists on the machine they run on: no download, works offline."""
    try:
        target = resolve_model(spec.base_model)
    except ValueError:
        return None
    return target if Path(target).is_dir() else None


def _export_info(view, spec: RunSpec, dim: int, full: int, rows: int, onnx_meta: dict | None) -> dict[str, Any]:
    by_dim = view.by_dimension()
    hit = by_dim[(by_dim["model"] == "tuned") & (by_dim["dimensions"] == dim)]
    return {
        "format": FORMAT,
        "run_id": view.run_id,
        "method": spec.method,
        "model": method_of(spec.method).bundle_model,
        "base_model": base_model_ref(spec),
        "base_model_path": _local_base(spec),
        "dimension": dim,
        "full_dimension": full,
        "truncate_dim": None if dim == full else dim,
        "max_seq_length": spec.scoring.passage_tokens,
        "windows": ({"size": spec.scoring.passage_tokens, "overlap": spec.scoring.window_overlap}
                    if view.tuned_w is not None else None),
        "scored_with_backend": spec.scoring.backend,
        "nDCG@10_at_dimension": None if hit.empty else round(float(hit.iloc[0]["nDCG@10"]), 4),
        "embeddings": {"file": "embeddings.parquet", "rows": rows, "passages": len(view.passage_ids),
                       "columns": ["id", "text", "source", "vector"] + (["passage_id"] if view.tuned_w is not None
                                                                        else []),
                       "what": "the run's evaluation collection, tuned vectors cut to `dimension`, unit length"},
        "onnx": None if onnx_meta is None else {"fp32": "onnx/model.onnx", "int8": "onnx/model_int8.onnx",
                                                "config": "onnx/onnx.json", "of": onnx_meta["of"],
                                                "fp32_min_cosine_vs_torch": onnx_meta["fp32_min_cosine_vs_torch"],
                                                "int8_min_cosine_vs_torch": onnx_meta["int8_min_cosine_vs_torch"]},
        "adapter": method_of(spec.method).query_file,
        "example_query": view.eval.queries[view.query_ids[0]] if view.query_ids else "",
        "snippets": [f"snippets/{n}" for n in snippets(spec.method, onnx_meta is not None)],
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_bundle(store: Store, run_id: str, out: str | Path, *, dim: int | None = None, with_onnx: bool = True,
                 progress: Progress | None = None) -> Path:
    """Write the bundle into folder ``out`` (created; it must be empty if it exists). Returns ``out``.

    Raises:
        ValueError: ``out`` exists and is not an empty folder. See ``bundle_entries`` for the rest.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} exists and is not an empty folder: give a new folder (or a .zip path).")
    entries = bundle_entries(store, run_id, dim=dim, with_onnx=with_onnx, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    owner_only(out)  # passage text (embeddings.parquet): owner-only, like the workspace and the bundle's zip
    for e in entries:
        target = out / e.name
        target.parent.mkdir(parents=True, exist_ok=True, mode=OWNER_ONLY_DIR)
        if e.source is not None:
            shutil.copyfile(e.source, target)
        else:
            target.write_bytes(e.data or b"")
        owner_only(target)
    return out


def _zip_into(fh, entries: list[Entry], prefix: str) -> None:
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for e in entries:
            arc = f"{prefix}/{e.name}"
            kind = zipfile.ZIP_STORED if Path(e.name).suffix in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
            if e.source is not None:
                zf.write(e.source, arc, compress_type=kind)
            else:
                zf.writestr(arc, e.data or b"", compress_type=kind)


def bundle_zip(store: Store, run_id: str, *, dim: int | None = None, with_onnx: bool = True,
               progress: Progress | None = None) -> bytes:
    """The bundle as one zip (every entry under ``<run id>/``): what the Runs page downloads."""
    entries = bundle_entries(store, run_id, dim=dim, with_onnx=with_onnx, progress=progress)
    buf = io.BytesIO()
    _zip_into(buf, entries, store.run_dir(run_id).name)
    return buf.getvalue()


def model_zip(run_dir: str | Path, *, dim: int | None = None, with_onnx: bool = False) -> bytes:
    """``bundle_zip`` of the run in folder ``run_dir`` (a workspace's ``runs/<id>``), for callers that hold
    a folder; ONNX files are left out unless asked for (they take an export the first time)."""
    run_dir = Path(run_dir)
    if not is_run_folder(run_dir):
        raise FileNotFoundError(f"{run_dir.name}: no config.json; this is not a run folder.")
    return bundle_zip(Store(run_dir.parent.parent), run_dir.name, dim=dim, with_onnx=with_onnx)


def write_bundle_zip(store: Store, run_id: str, out: str | Path, *, dim: int | None = None, with_onnx: bool = True,
                     progress: Progress | None = None) -> Path:
    """The bundle as a zip file at ``out`` (written to a temp file, then moved into place)."""
    out = Path(out)
    entries = bundle_entries(store, run_id, dim=dim, with_onnx=with_onnx, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=".tmp-", suffix=".zip")
    try:
        with open(fd, "wb") as fh:
            _zip_into(fh, entries, store.run_dir(run_id).name)
        Path(tmp).replace(out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return out


ONNX_MARKER = "export-onnx.json"  # in the run folder: which cache folder holds its model's ONNX files


def prepare_bundle(store: Store, run_id: str, progress: Progress | None = None) -> Path:
    """Export the run's encoding model to ONNX (fp32 and int8) into the workspace cache, once, and note
    where in the run folder (``onnx_ready``). Returns the cache folder.

    Raises:
        FileNotFoundError: see ``check_exportable``.
    """
    run_dir = store.run_dir(run_id)
    spec = check_exportable(run_dir)
    if progress:
        progress("Loading the model", 0.05)
    model = _encoding_model(run_dir, spec)

    def step(done: int, total: int, unit: str) -> None:
        if progress:
            progress(f"ONNX export of the model (once per model): {done}/{total} {unit}", 0.1 + 0.9 * done / max(total, 1))

    folder = ensure_onnx(model, "onnx-int8", store.cache_path.parent / "onnx", progress=step).parent
    if all((folder / f).exists() for f in ONNX_FILES.values()):
        atomic_write_json(run_dir / ONNX_MARKER, {"onnx_folder": folder.name})
    return folder


def onnx_ready(store: Store, run_id: str) -> bool:
    """True when ``prepare_bundle`` (or an earlier bundle) left the run's ONNX files in the workspace cache:
    a bundle is then quick to build. False: the first bundle exports them (about a minute on a CPU).
    Reads two small files; loads no model."""
    marker = read_json(store.run_dir(run_id) / ONNX_MARKER) or {}
    name = str(marker.get("onnx_folder") or "")
    if not name or "/" in name or name.startswith("."):
        return False
    folder = store.cache_path.parent / "onnx" / name
    return all((folder / f).exists() for f in ONNX_FILES.values())

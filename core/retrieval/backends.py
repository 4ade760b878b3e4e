"""Encoding backends: the same model run by torch, by ONNX Runtime (fp32) or by ONNX Runtime int8.

A backend is chosen by name (``BACKENDS``): ``torch`` is the SentenceTransformer itself;
``onnx`` and ``onnx-int8`` wrap it in an :class:`OnnxEncoder` that runs the model's transformer
with ONNX Runtime and applies the model's own pooling (its Pooling module: cls / mean / max /
mean_sqrt_len_tokens / weightedmean / lasttoken, concatenated as sentence-transformers does) and
Normalize in numpy. The encoder answers the calls every scorer makes (``encode_query``,
``encode_document``, ``max_seq_length``, ``tokenizer``, ``get_embedding_dimension``), so
``core.retrieval.embedding.encode`` and the scorers take it as they take a model; its
fingerprint carries the backend, so the embedding cache never mixes vectors of two backends.
Training always stays on torch.

Why not sentence-transformers' own ``backend="onnx"``: it needs ``optimum-onnx``, which pins
``transformers<4.58`` (this project runs transformers 5.x: pip would downgrade it), and
``optimum-intel[openvino]`` pulls a multi-GB CUDA torch. This module needs only ``onnx`` and
``onnxruntime``.

Export: ``torch.onnx.export`` with the TorchScript exporter (``dynamo=False``), dynamic batch and
sequence axes. The dynamo exporter (torch's default since 2.9) needs the ``onnxscript`` package,
which is not a dependency here; the TorchScript one works offline with ``onnx`` alone. Tracing
bakes Python-level branches in, so the example batch is padded (the attention mask is kept in
the graph) and every export is checked against the torch model on a few texts before it is used
(fp32 must reach cosine >= ``FP32_MIN_COSINE``; int8's figure is recorded). int8 is
``onnxruntime.quantization.quantize_dynamic`` (int8 weights, activations quantised at run time).

Exports are built once per model weights and kept on disk under a folder the caller gives (the
workspace's ``cache/onnx``), keyed by the weights fingerprint::

    <folder>/<weights fingerprint>/model.onnx        fp32
    <folder>/<weights fingerprint>/model_int8.onnx   dynamic int8
    <folder>/<weights fingerprint>/onnx.json         pooling, inputs, checks, versions

Errors: ``UnsupportedModel`` (a ``ValueError``) when a model's modules are not Transformer +
Pooling (+ Normalize), e.g. a Dense projection or a Router; ``ValueError`` for an unknown
backend name, a missing cache folder, or an export that does not match torch.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from core.retrieval.embedding import encodes_in_bf16, weights_fingerprint

logger = logging.getLogger(__name__)

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[str, ...] = get_args(Backend)
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx"}
META_FILE = "onnx.json"
OPSET = 17  # supported by every onnxruntime of the last years; enough for BERT-like encoders
FP32_MIN_COSINE = 0.999  # an fp32 export below this against torch is a broken trace: refused
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CHECK_TEXTS = (  # different lengths: the check batch is padded, like real batches
    "What was the total revenue in the last fiscal year?",
    "Net sales increased 8% compared with the prior year, driven by services and wearables, while the "
    "gross margin decreased slightly because of foreign currency headwinds and higher component costs.",
    "x",
)
Progress = Callable[[int, int, str], None]  # (done, total, unit), as the scorers report

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class UnsupportedModel(ValueError):
    """The model has modules the ONNX backend does not reproduce (use the torch backend)."""


def check_backend(name: str) -> str:
    """``name`` if it is a backend, else ValueError listing them."""
    if name not in BACKENDS:
        raise ValueError(f"unknown encoding backend {name!r}: use one of {', '.join(BACKENDS)}")
    return name


def backend_of(model) -> str:
    """The backend an encoder runs on: 'torch' for a plain SentenceTransformer ('torch bf16' when it encodes in
    bfloat16 on a CPU: ``core.retrieval.embedding.encodes_in_bf16``), else the ONNX encoder's."""
    backend = getattr(model, "etl_backend", "torch")
    return "torch bf16" if backend == "torch" and encodes_in_bf16(model) else backend


def torch_model_of(model):
    """The SentenceTransformer behind an encoder (the model itself for torch)."""
    return getattr(model, "torch_model", model)


def pooling_spec(model) -> dict[str, Any]:
    """What follows the transformer in ``model``, as data (what the numpy pooling applies).

    Returns:
        {"modes": [pooling modes in order], "include_prompt": bool, "normalize": bool,
        "inputs": [the transformer's input names], "dimension": int}.

    Raises:
        UnsupportedModel: modules other than Transformer, Pooling, Normalize (Dense, Router, ...).
    """
    modules = list(model)
    names = [type(m).__name__ for m in modules]
    if not modules or names[0] != "Transformer" or not hasattr(modules[0], "auto_model"):
        raise UnsupportedModel(f"The ONNX backend runs a Transformer first; this model starts with {names[:1]}: "
                               "use the torch backend.")
    pools = [m for m in modules[1:] if type(m).__name__ == "Pooling"]
    extra = [n for n in names[1:] if n not in ("Pooling", "Normalize")]
    if len(pools) != 1 or extra:
        raise UnsupportedModel(f"The ONNX backend reproduces Transformer + Pooling (+ Normalize); this model has "
                               f"{' + '.join(names)}: use the torch backend.")
    pool = pools[0]
    modes = [pool.pooling_mode] if isinstance(pool.pooling_mode, str) else list(pool.pooling_mode)
    tokenizer_inputs = set(getattr(model.tokenizer, "model_input_names", MODEL_INPUTS))
    return {"modes": modes, "include_prompt": bool(getattr(pool, "include_prompt", True)),
            "normalize": names[-1] == "Normalize", "inputs": [n for n in MODEL_INPUTS if n in tokenizer_inputs],
            "dimension": int((getattr(pool, "get_embedding_dimension", None) or pool.get_sentence_embedding_dimension)())}


def pool(token_embeddings: np.ndarray, attention_mask: np.ndarray, modes: Sequence[str],
         prompt_length: int | None = None) -> np.ndarray:
    """sentence-transformers' Pooling in numpy, for right-padded batches.

    Args:
        token_embeddings: (batch, seq, hidden) float32.
        attention_mask: (batch, seq) 0/1.
        modes: pooling modes, concatenated in this order.
        prompt_length: tokens of a prompt to leave out of the pooling (include_prompt=False).

    Returns:
        (batch, hidden x len(modes)) float32.
    """
    emb = token_embeddings.astype(np.float32, copy=False)
    mask = attention_mask.astype(np.float32)
    if prompt_length:
        mask = mask.copy()
        mask[:, :prompt_length] = 0
    out = []
    lengths = np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    for mode in modes:
        if mode == "cls":
            out.append(emb[np.arange(len(emb)), mask.argmax(axis=1)])
        elif mode == "max":
            out.append(np.where(mask[..., None] > 0, emb, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (emb * mask[..., None]).sum(axis=1)
            out.append(total / (lengths if mode == "mean" else np.sqrt(lengths)))
        elif mode == "weightedmean":
            w = mask * np.arange(1, mask.shape[1] + 1, dtype=np.float32)[None, :]
            out.append((emb * w[..., None]).sum(axis=1) / np.maximum(w.sum(axis=1, keepdims=True), 1e-9))
        elif mode == "lasttoken":
            last = mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)
            out.append(emb[np.arange(len(emb)), last])
        else:
            raise UnsupportedModel(f"pooling mode {mode!r} is not reproduced by the ONNX backend")
    return np.concatenate(out, axis=1).astype(np.float32)


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(path), threading.Lock())


def _transformer_module(model):
    import torch

    hf = model[0].auto_model
    names = pooling_spec(model)["inputs"]

    class _Transformer(torch.nn.Module):  # positional inputs in ``names`` order -> token embeddings
        def __init__(self):
            super().__init__()
            self.hf = hf

        def forward(self, *args):
            return self.hf(**dict(zip(names, args))).last_hidden_state

    return _Transformer(), names


def export_onnx(model, path: str | Path) -> None:
    """Export ``model``'s transformer (fp32, dynamic batch and sequence axes) to ``path``.

    Raises:
        UnsupportedModel: see ``pooling_spec``.
    """
    import torch

    wrapper, names = _transformer_module(model)
    hf = wrapper.hf
    was_training = hf.training
    device = next(hf.parameters()).device
    feats = model.preprocess(list(CHECK_TEXTS[:2]))  # two lengths: padded, so the mask stays in the graph
    args = tuple(feats[n].to(device) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "token_embeddings"]}
    hf.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(wrapper, args, str(path), input_names=list(names), output_names=["token_embeddings"],
                              dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    finally:
        hf.train(was_training)


def quantize_int8(fp32: str | Path, int8: str | Path) -> None:
    """Dynamic int8 quantisation of an fp32 ONNX file (int8 weights; activations quantised per batch).

    Per-channel weight scales: on all-MiniLM-L6-v2 (24 sec-10k passages at 256 tokens) per-tensor
    scales gave passage vectors at cosine 0.91 (min) / 0.94 (mean) against torch, per-channel
    0.988 / 0.992, with the same file size (22 MB against 90 MB in fp32).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # onnxruntime's "consider pre-processing" note goes to the root logger
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.setLevel(level)


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
    providers = [p for p in wanted if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def onnx_folder(model, folder: str | Path) -> Path:
    """Where the ONNX files of ``model``'s weights are kept under ``folder`` (built or not)."""
    return Path(folder) / weights_fingerprint(torch_model_of(model))


def ensure_onnx(model, backend: str, folder: str | Path, progress: Progress | None = None) -> Path:
    """The ONNX file of ``model`` for ``backend``, exported (and checked) once, then reused.

    Args:
        model: a SentenceTransformer (or an encoder wrapping one).
        backend: "onnx" or "onnx-int8" (int8 also builds the fp32 file it is made from).
        folder: the cache folder (e.g. the workspace's cache/onnx).
        progress: called with (done, total, "export steps").

    Returns:
        The .onnx file's path.

    Raises:
        UnsupportedModel: see ``pooling_spec``.
        ValueError: the fp32 export does not reproduce the torch model (cosine below FP32_MIN_COSINE).
    """
    check_backend(backend)
    if backend == "torch":
        raise ValueError("the torch backend has no ONNX file")
    st = torch_model_of(model)
    pooling_spec(st)  # refuse unsupported models before spending time
    target = onnx_folder(st, folder)
    fp32, int8 = target / ONNX_FILES["onnx"], target / ONNX_FILES["onnx-int8"]
    wanted = fp32 if backend == "onnx" else int8
    if wanted.exists():
        return wanted
    with _lock_for(target):
        if wanted.exists():
            return wanted
        steps = 2 if backend == "onnx" else (3 if not fp32.exists() else 1)
        done = 0

        def step(unit: str = "export steps") -> None:
            nonlocal done
            done += 1
            if progress:
                progress(done, steps, unit)

        if progress:
            progress(0, steps, "export steps")
        meta = _read_meta(target)
        if not fp32.exists():
            t0 = time.perf_counter()
            Path(folder).mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder, prefix=".tmp-onnx-"))
            try:
                export_onnx(st, tmp / ONNX_FILES["onnx"])
                step()
                cos = check_against_torch(st, tmp / ONNX_FILES["onnx"])
                if cos < FP32_MIN_COSINE:
                    raise ValueError(f"The ONNX export of this model does not reproduce it (cosine {cos:.4f} < "
                                     f"{FP32_MIN_COSINE}): use the torch backend.")
                meta.update(_describe(st), fp32_min_cosine=round(cos, 6),
                            fp32_export_seconds=round(time.perf_counter() - t0, 1))
                (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():  # another process finished first: keep its files
                    shutil.rmtree(tmp, ignore_errors=True)
                else:
                    os.replace(tmp, target)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            step()
            logger.info("exported %s to ONNX in %.1f s (cosine vs torch %.5f)", target.name,
                        time.perf_counter() - t0, cos)
        if backend == "onnx-int8" and not int8.exists():
            t0 = time.perf_counter()
            tmp_file = target / f".tmp-{os.getpid()}-{threading.get_ident()}-{ONNX_FILES['onnx-int8']}"
            try:
                quantize_int8(fp32, tmp_file)
                cos = check_against_torch(st, tmp_file)
                os.replace(tmp_file, int8)
            finally:
                tmp_file.unlink(missing_ok=True)
            meta = _read_meta(target)
            meta.update(int8_min_cosine=round(cos, 6), int8_seconds=round(time.perf_counter() - t0, 1))
            _write_meta(target, meta)
            step()
            logger.info("quantised %s to int8 (cosine vs torch %.5f)", target.name, cos)
        return wanted


def _read_meta(target: Path) -> dict[str, Any]:
    try:
        return json.loads((target / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_meta(target: Path, meta: dict[str, Any]) -> None:
    tmp = target / f".{META_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, target / META_FILE)


def export_meta(model, folder: str | Path) -> dict[str, Any]:
    """The onnx.json of ``model``'s export ({} before the first export)."""
    return _read_meta(onnx_folder(model, folder))


def _describe(st) -> dict[str, Any]:
    import onnxruntime
    import torch

    spec = pooling_spec(st)
    return {"model": str(getattr(st, "_etl_name", "") or ""), **spec, "opset": OPSET, "exporter": "torchscript",
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "prompts": dict(getattr(st, "prompts", {}) or {})}


def check_against_torch(model, onnx_path: str | Path, texts: Sequence[str] = CHECK_TEXTS) -> float:
    """The lowest cosine between torch's and the ONNX file's vectors of ``texts`` (passages)."""
    st = torch_model_of(model)
    ref = st.encode_document(list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    enc = OnnxEncoder(st, _session(Path(onnx_path)), "onnx")
    got = enc.encode_document(list(texts), normalize_embeddings=True)
    return float(np.min(np.sum(ref * got, axis=1)))


class OnnxEncoder:
    """A SentenceTransformer's encoding calls answered by ONNX Runtime (see the module docstring).

    Tokenisation, prompts and the token limit are the wrapped model's (its ``preprocess``), so a
    text is cut exactly where torch cuts it. ``max_seq_length`` reads and writes the wrapped
    model's. Other attributes are the wrapped model's.
    """

    def __init__(self, model, session, backend: str):
        self.torch_model = model
        self.session = session
        self.etl_backend = check_backend(backend)
        self.spec = pooling_spec(model)

    def __getattr__(self, name: str):  # prompts, similarity, _etl_name, ...: the wrapped model's
        if name in ("torch_model", "session", "spec", "etl_backend"):
            raise AttributeError(name)
        return getattr(self.torch_model, name)

    def __repr__(self) -> str:
        return f"OnnxEncoder({self.etl_backend}, {getattr(self.torch_model, '_etl_name', '?')})"

    @property
    def max_seq_length(self) -> int:
        return self.torch_model.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.torch_model.max_seq_length = value

    @property
    def tokenizer(self):
        return self.torch_model.tokenizer

    def get_embedding_dimension(self) -> int:
        return int(self.spec["dimension"])

    def _prompt(self, kind: str) -> str | None:
        prompts = dict(getattr(self.torch_model, "prompts", {}) or {})
        names = ("query",) if kind == "query" else ("document", "passage", "corpus")
        name = next((n for n in names if n in prompts), None)
        if name is not None:
            return prompts[name]
        default = getattr(self.torch_model, "default_prompt_name", None)
        return prompts.get(default) if default else None

    def _encode(self, texts: Sequence[str], kind: str, batch_size: int, normalize: bool) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        dim = self.get_embedding_dimension()
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        prompt = self._prompt(kind)
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first: less padding per batch
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for i in range(0, len(texts), batch_size):
            rows = order[i : i + batch_size]
            feats = self.torch_model.preprocess([texts[r] for r in rows], prompt=prompt or None)
            inputs = {n: feats[n].cpu().numpy().astype(np.int64) for n in self.spec["inputs"]}
            tokens = self.session.run(None, inputs)[0]
            skip = None
            if not self.spec["include_prompt"] and "prompt_length" in feats:
                pl = feats["prompt_length"]
                skip = int(pl[0].item()) if hasattr(pl, "shape") and getattr(pl, "ndim", 0) else int(pl)
            vecs = pool(tokens, inputs["attention_mask"], self.spec["modes"], skip)
            if self.spec["normalize"] or normalize:
                vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            out[rows] = vecs
        return out

    def encode_query(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False,
                     **_: Any) -> np.ndarray:
        """(n, dim) float32 query vectors (the model's query prompt, if any)."""
        return self._encode(texts, "query", batch_size, normalize_embeddings)

    def encode_document(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False,
                        **_: Any) -> np.ndarray:
        """(n, dim) float32 passage vectors (the model's document prompt, if any)."""
        return self._encode(texts, "passage", batch_size, normalize_embeddings)


def with_backend(model, backend: str, folder: str | Path | None = None, progress: Progress | None = None):
    """An encoder of ``model`` on ``backend``: the model itself for torch, else an ``OnnxEncoder``
    whose ONNX file is exported into ``folder`` the first time (``ensure_onnx``).

    Raises:
        ValueError: unknown backend; an ONNX backend without a cache folder; see ``ensure_onnx``.
    """
    check_backend(backend)
    st = torch_model_of(model)
    if backend == "torch":
        return st
    if folder is None:
        raise ValueError(f"the {backend} backend needs a folder for its ONNX files (the workspace's cache/onnx)")
    path = ensure_onnx(st, backend, folder, progress)
    return OnnxEncoder(st, _session(path), backend)

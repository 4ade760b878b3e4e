"""`python -m core` commands that write files: ``generate`` (training questions from passages, a pair
file), ``report`` (a run's HTML report) and ``export`` (a run's deployable bundle). ``core.cli``
adds them to its parser (``add_file_commands``) and runs them like the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from core.console import PrintReporter
from core.generate.faults import GenerationError
from core.generate.job import GenerationSpec, generate
from core.generate.llm_settings import LLMSettings
from core.generate.offline import OfflineSettings
from core.generate.pairs import write_pair_file
from core.ingest.collection import load_passages_path
from core.insight.export import write_bundle, write_bundle_zip
from core.insight.report import build_report
from core.retrieval.embedding import EmbeddingCache
from core.workspace.files import atomic_write_bytes
from core.workspace.jobs import open_workspace


def _store_holding(args: argparse.Namespace):
    """The workspace of ``args`` if it holds run ``args.run``, else None (with the error printed)."""
    store = open_workspace(args.workspace or None, note=lambda line: print(f"note: {line}", file=sys.stderr))
    try:
        store.get_run(args.run)
    except KeyError:
        print(f"error: no run {args.run!r} in {store.root}; list runs with the Runs page", file=sys.stderr)
        return None
    return store


def cmd_report(args: argparse.Namespace) -> int:
    store = _store_holding(args)
    if store is None:
        return 2
    out = Path(args.out or store.run_dir(args.run) / "report.html")
    progress = PrintReporter()
    try:
        html = build_report(store, args.run, progress=lambda m, f: progress.progress(int(f * 100), 100, "%"),
                            with_maps=not args.no_maps)
    except FileNotFoundError as exc:
        print(f"error: {exc} Reports are made of finished runs (for a shoot-out: of each method's run).",
              file=sys.stderr)
        return 2
    atomic_write_bytes(out, html.encode("utf-8"))
    print(f"report written to {out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = _store_holding(args)
    if store is None:
        return 2
    progress = PrintReporter()
    progress.phase("export", f"run {args.run} -> {args.out}")
    write = write_bundle_zip if args.out.lower().endswith(".zip") else write_bundle
    try:
        out = write(store, args.run, args.out, dim=args.dim, with_onnx=not args.no_onnx,
                    progress=lambda m, f: progress.progress(int(f * 100), 100, f"% ({m})"))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"bundle written to {out}")
    return 0


def _passages_from_paths(paths: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """(passages, sources) of every PATH (``core.ingest.collection.load_passages_path``: documents, a folder of
    them, a passages-only file, or a QA file's passages); an id met twice with another text gets the path's
    position as a prefix."""
    passages: dict[str, str] = {}
    sources: dict[str, str] = {}
    for i, raw in enumerate(paths, start=1):
        corpus, srcs, report = load_passages_path(raw)
        print(f"{raw}: {report.summary()}", file=sys.stderr)
        for problem in report.problems:
            print(f"warning: {problem}", file=sys.stderr)
        for pid, text in corpus.items():
            new = pid if passages.get(pid, text) == text else f"f{i}:{pid}"
            passages[new] = text
            if pid in srcs:
                sources[new] = srcs[pid]
    return passages, sources


def cmd_generate(args: argparse.Namespace) -> int:
    llm = bool(args.llm_url or args.llm_model)
    if llm and (args.method or args.keep_sentence is not None):
        flag = "--method chooses" if args.method else "--keep-sentence tunes"
        raise ValueError(f"{flag} an offline method; it does not apply with --llm-url / --llm-model.")
    passages, sources = _passages_from_paths(args.sources)
    if not passages:
        raise ValueError("No passage found in " + ", ".join(args.sources) + ".")
    print(f"{len(passages)} passages from {', '.join(args.sources)}", file=sys.stderr)
    if llm:
        llm = {k: v for k, v in (("questions_per_passage", args.per_passage or None), ("timeout_s", args.llm_timeout),
                                 ("retries", args.llm_retries)) if v is not None}
        spec = GenerationSpec.for_backend("", "llm", base_model=args.model, max_passages=args.max_passages,
                                          llm=LLMSettings(base_url=args.llm_url or "", model=args.llm_model or "", **llm))
    else:
        per = {"per_passage": args.per_passage} if args.per_passage else {}
        if args.keep_sentence is not None:
            if (args.method or "inverse_cloze") != "inverse_cloze":
                raise ValueError("--keep-sentence applies to the inverse_cloze method only.")
            if not 0.0 <= args.keep_sentence <= 1.0:
                raise ValueError(f"--keep-sentence is a share between 0 and 1, not {args.keep_sentence:g}.")
            per["ict_keep_sentence"] = args.keep_sentence
        spec = GenerationSpec.for_backend("", "offline", base_model=args.model, max_passages=args.max_passages,
                                          offline=OfflineSettings(method=args.method or "inverse_cloze", seed=args.seed,
                                                                  **per))
    checks = {k: v for k, v in (("round_trip", False if args.no_round_trip else None),
                                ("round_trip_k", args.round_trip_k)) if v is not None}
    spec = dataclasses.replace(spec, filters=dataclasses.replace(spec.filters, **checks))  # built, not edited
    store = open_workspace(note=lambda line: print(f"note: {line}", file=sys.stderr))
    try:  # the key comes from ETL_LLM_API_KEY / OPENAI_API_KEY only: a flag would show in ps and shell history
        out = generate(passages, spec, reporter=PrintReporter(), cache_folder=store.root / "cache",
                       embedding_cache=EmbeddingCache(store.cache_path), device=args.device)
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    s = out.summary
    print(f"\n{s.line}", file=sys.stderr)
    if out.llm is not None:
        print(f"LLM: {out.llm.summary()}", file=sys.stderr)  # how many answers came from the cache
    for line in s.problems:
        print(f"note: {line}", file=sys.stderr)
    kept = out.kept()
    if not kept:
        print(f"error: {s.empty or 'no question kept'}", file=sys.stderr)
        return 2
    write_pair_file(args.out, kept, passages, sources)
    print(f"{len(kept)} pairs ({s.origin}) written to {args.out}; train with: python -m core train --train "
          f"{args.out} --eval YOUR_QUESTIONS", file=sys.stderr)
    if s.fatal:
        print(f"error: stopped early: {s.fatal} Run the same command again to resume: answers are cached in "
              f"{store.root / 'cache'}.", file=sys.stderr)
        return 2
    return 0


def add_file_commands(sub) -> None:
    """The generate, report and export subcommands (``sub``: the main parser's subparsers)."""
    g = sub.add_parser("generate", help="training questions from passages alone (offline methods or an LLM) -> a "
                       "pair file `train` reads")
    g.add_argument("--from", dest="sources", nargs="+", required=True, metavar="PATH",
                   help="documents (.txt .md .pdf .docx .html), a folder of them, a passages-only file (a text "
                        "column, optional id/source), or a QA file / BEIR folder `evaluate` reads (its passages "
                        "only; its questions are ignored)")
    g.add_argument("--out", required=True, help="the pair file to write (CSV: question, passage, passage_id, source, "
                                                "origin; passage ids kept)")
    g.add_argument("--method", choices=["inverse_cloze", "crop", "keywords"], default=None,
                   help="offline method (default inverse_cloze; no LLM needed)")
    g.add_argument("--llm-url", default=None, help="OpenAI-compatible base URL, e.g. http://localhost:11434/v1 "
                   "(default $ETL_LLM_BASE_URL); the key is read from $ETL_LLM_API_KEY only")
    g.add_argument("--llm-model", default=None, help="model name at that endpoint (default $ETL_LLM_MODEL)")
    g.add_argument("--llm-timeout", type=float, default=None,
                   help=f"seconds to wait for one answer (default {LLMSettings().timeout_s:g})")
    g.add_argument("--llm-retries", type=int, default=None,
                   help=f"retries of one request after a timeout, 429 or 5xx (default {LLMSettings().retries}); the "
                        "job stops when the first passage fails every try")
    g.add_argument("--per-passage", type=int, default=None, help="questions per passage (default: 2 offline, 3 LLM)")
    g.add_argument("--keep-sentence", type=float, default=None, metavar="SHARE",
                   help=f"inverse_cloze: share of questions whose sentence stays in the passage they train on "
                        f"(default {OfflineSettings().ict_keep_sentence:g}; 1: every pair's passage is the passage as "
                        f"uploaded)")
    g.add_argument("--max-passages", type=int, default=0, help="only the first N passages (0: all)")
    g.add_argument("--model", default=None, help="base model of the round-trip filter (default: bundled "
                                                 "all-MiniLM-L6-v2)")
    g.add_argument("--no-round-trip", action="store_true", help="skip the round-trip filter (no model is loaded)")
    g.add_argument("--round-trip-k", type=int, default=None, help="own passage must rank in the top k (default 3)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--device", default=None, help="cpu / cuda / mps for the round-trip model")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("report", help="write a finished run's stakeholder report (one self-contained HTML file)")
    r.add_argument("run", help="run id (see the Runs page or the run folder names)")
    r.add_argument("--out", default=None, help="output file (default: report.html in the run folder)")
    r.add_argument("--workspace", default=None, help="workspace root (default: $ETL_WORKSPACE or workspace/ in the project)")
    r.add_argument("--no-maps", action="store_true", help="leave out the UMAP maps (faster)")
    r.set_defaults(func=cmd_report)

    x = sub.add_parser("export", help="write a finished run as a bundle: model, ONNX fp32/int8, the collection's "
                       "embeddings as Parquet, snippets (same bundle as the Runs page's download)")
    x.add_argument("run", help="run id (see the Runs page or the run folder names)")
    x.add_argument("--out", required=True, help="a new (or empty) folder, or a path ending in .zip")
    x.add_argument("--dim", type=int, default=None, help="Matryoshka dimension kept (the full size, 256, 128 or 64 "
                   "below it; default: the full size)")
    x.add_argument("--no-onnx", action="store_true", help="leave out onnx/ (no ONNX export)")
    x.add_argument("--workspace", default=None, help="workspace root (default: $ETL_WORKSPACE or workspace/ in the project)")
    x.set_defaults(func=cmd_export)

"""A realistic collection for walking the app as an expert would (issue 13): documents plus a
spreadsheet of questions with answer snippets, made from ../shared/data/sec-10k-qa at run time
(nothing is copied into the project).

The passages of both sec-10k files are grouped into ``--documents`` long documents (about 18
passages, ~25,000 characters each, in a fixed order), written as PDF (every third one, pages of
about 3,000 characters) and plain text. The spreadsheet (``questions.csv``: question, answer,
document) holds every sec-10k question with the sentence of its gold passage that shares the most
words with it as the answer snippet, and the document that sentence is in. ``--omit N`` leaves the
last N documents out of the folder (their questions stay in the spreadsheet), as when an expert
uploads only part of the collection.

    .venv/bin/python bench/make_walk_collection.py --out /work/walk/sec10k-docs --documents 40
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "sec-10k-qa"


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if len(s) > 30]


def _best_sentence(question: str, passage: str) -> str:
    words = set(re.findall(r"\w+", question.lower())) - {"the", "a", "of", "in", "to", "and", "what", "how", "is"}
    return max(_sentences(passage) or [passage[:200]], key=lambda s: len(words & set(re.findall(r"\w+", s.lower()))))


def _pdf(path: Path, title: str, text: str) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    safe = text.encode("latin-1", "replace").decode("latin-1")
    pdf.multi_cell(0, 5, title + "\n\n" + safe)
    pdf.output(str(path))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--documents", type=int, default=40)
    p.add_argument("--omit", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    (out / "documents").mkdir(parents=True, exist_ok=True)
    corpus, questions = {}, []
    for name in ("train_dataset.json", "val_dataset.json"):
        d = json.loads((DATA / name).read_text())
        corpus.update(d["corpus"])
        questions += [(d["queries"][q], d["corpus"][d["relevant_docs"][q][0]]) for q in d["queries"]]
    ids = sorted(corpus)
    size = -(-len(ids) // args.documents)
    doc_of: dict[str, str] = {}
    for i in range(args.documents):
        part = ids[i * size:(i + 1) * size]
        if not part:
            break
        name = f"filing-part-{i + 1:02d}.{'pdf' if i % 3 == 0 else 'txt'}"
        text = "\n\n".join(corpus[x] for x in part)
        for x in part:
            doc_of[corpus[x]] = name
        if i >= args.documents - args.omit:
            continue
        if name.endswith(".pdf"):
            _pdf(out / "documents" / name, f"Annual report excerpt, part {i + 1}", text)
        else:
            (out / "documents" / name).write_text(f"Annual report excerpt, part {i + 1}\n\n{text}\n", encoding="utf-8")
    with (out / "questions.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer", "document"])
        for q, passage in questions:
            w.writerow([q, _best_sentence(q, passage), doc_of[passage]])
    print(f"{len(list((out / 'documents').iterdir()))} documents, {len(questions)} questions in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

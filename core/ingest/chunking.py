"""Document text -> passages: token-sized chunks with stable ids, for one file or several.

* :func:`chunk_segments` cuts ``(page, text)`` segments (from :func:`core.ingest.extract.extract_text`)
  into :class:`Chunk` objects sized in the model's own tokens: paragraphs packed whole, a long
  paragraph split at sentences (then words, then characters), consecutive pieces of it overlapping;
  chunks never span pages. Ids are stable: the same file name and text give the same id.
* :func:`load_documents` extracts and chunks several files, skipping (and naming) the bad ones and
  repeated uploads, so one bad file never loses the others.
* :func:`estimate_tokens` sizes text without a tokenizer; :func:`make_token_counter` gives the
  model's exact count.

A chunk's source label (``Chunk.label``, ``DocumentSet.sources``) is written by
:func:`core.dataset.source_label`: ``"file.pdf p.3"`` or ``"file.txt"``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from core.dataset import DataError, source_label
from core.ingest.extract import Segment, extract_text

logger = logging.getLogger(__name__)

TokenCounter = Callable[[str], int]


@dataclass
class Chunk:
    """One passage of a document.

    Attributes:
        id: Stable id: ``f"{slug}-{sha1(source|page|text)[:10]}"``; the same file name and text give the
            same id on every run (a repeated identical chunk in one file also hashes its repeat number).
        text: The passage text (paragraphs separated by a blank line).
        source: The file name as given (display only; never used as a path).
        page: 1-based page number for PDFs, None for other formats.
        index: 0-based position of the chunk within its document.
    """

    id: str
    text: str
    source: str
    page: int | None
    index: int

    @property
    def label(self) -> str:
        """Where the chunk came from, for display: ``"file.pdf p.3"`` or ``"file.txt"``."""
        return source_label(self.source, self.page)


@dataclass
class DocumentSet:
    """The chunks of several files, and what went wrong with the others.

    Attributes:
        chunks: All chunks of the files read successfully, in file order; ids are unique.
        problems: One message per skipped file, naming the file and the reason.
        files: Names of the files read successfully.
        notes: Non-fatal remarks (e.g. a text file decoded with a fallback encoding).
    """

    chunks: list[Chunk]
    problems: list[str]
    files: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def corpus(self) -> dict[str, str]:
        """``{chunk id: text}`` for all chunks."""
        return {c.id: c.text for c in self.chunks}

    @property
    def sources(self) -> dict[str, str]:
        """``{chunk id: "file p.N" or "file"}`` for all chunks."""
        return {c.id: c.label for c in self.chunks}


_WORDISH = re.compile(r"[^\W_]+|\S")  # letter/digit runs, or any other single non-space character
# A sentence ends at . ! ? (plus closing quotes/brackets) followed by space and a capital/digit/opening
# quote, or at CJK full stops.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9À-ÖØ-Þ])|[。！？]+")


def estimate_tokens(text: str) -> int:
    """Cheap estimate of a subword tokenizer's count (no special tokens).

    A run of letters/digits counts ``1 + (len - 6) // 3`` (1 up to 8 characters), any other non-space
    character 1. On English prose and SEC filings this lands within about -25%/+35% of BERT WordPiece
    (1.06x on average); pass the real tokenizer's count (:func:`make_token_counter`) for exact sizing.

    Args:
        text: Any text.

    Returns:
        The estimated number of tokens.
    """
    return sum(1 + max(0, len(m) - 6) // 3 if m[0].isalnum() else 1 for m in _WORDISH.findall(text))


def make_token_counter(model_or_tokenizer) -> TokenCounter:
    """A token counter from a SentenceTransformer or a Hugging Face tokenizer.

    Args:
        model_or_tokenizer: A SentenceTransformer (its ``.tokenizer`` is used) or a transformers tokenizer.

    Returns:
        ``count(text) -> int``: the number of tokens without special tokens ([CLS]/[SEP] etc.), so keep
        ``max_tokens`` a few below the model's ``max_seq_length``.

    Raises:
        TypeError: the object has no usable tokenizer.
    """
    tok = getattr(model_or_tokenizer, "tokenizer", None)
    tok = model_or_tokenizer if tok is None else tok
    if not (callable(tok) and hasattr(tok, "encode")):
        raise TypeError(
            f"{type(model_or_tokenizer).__name__} is neither a SentenceTransformer nor a tokenizer."
        )

    def count(text: str) -> int:
        return len(tok(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

    return count


def _paragraphs(text: str) -> list[str]:
    return [p for p in (" ".join(block.split()) for block in re.split(r"\n\s*\n", text)) if p]


_ABBREVIATIONS = frozenset("mr mrs ms dr prof st no nos vs fig figs approx sec art jr sr ca cf".split())


def _sentences(paragraph: str) -> list[str]:
    out, start = [], 0
    for m in _SENTENCE_END.finditer(paragraph):
        end = m.end()
        before = re.search(r"(\w+)\W*$", paragraph[max(start, m.start() - 12) : m.start() + 1])
        if (
            m.group()[0] == "."
            and before
            and (len(before.group(1)) == 1 or before.group(1).lower() in _ABBREVIATIONS)
        ):
            continue  # "J. Smith", "Mr. Smith", "Fig. 3": not a sentence end
        piece = paragraph[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    tail = paragraph[start:].strip()
    if tail:
        out.append(tail)
    return out


# Characters per token at most, when cutting an over-long 'word' (a URL, a hash, a page of markup
# without spaces): the longest prefix tried is max_tokens times this, so each cut counts a bounded
# string. Without the bound a 1.25-million-character word took 30 s and 1.2 GB (every prefix tried
# was counted, and kept by the count cache).
MAX_CHARS_PER_TOKEN = 32


def _split_long_word(word: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Split one over-long 'word' (a URL, a hash...) into character runs that fit."""
    out: list[str] = []
    at, n = 0, len(word)
    while at < n:
        lo, hi = 1, min(n - at, max_tokens * MAX_CHARS_PER_TOKEN)  # the longest prefix that fits (>= 1 char)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(word[at : at + mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append(word[at : at + lo])
        at += lo
    return out


def _fill(units: list[str], start: int, used: int, max_tokens: int, count: TokenCounter) -> int:
    """End index of the greedy run ``units[start:end]`` (at least one unit) whose summed counts, plus
    ``used``, stay within max_tokens."""
    end = start + 1
    total = used + count(units[start])
    while end < len(units) and total + count(units[end]) <= max_tokens:
        total += count(units[end])
        end += 1
    return end


def _pack(units: list[str], sep: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Greedy packing of consecutive units (each within max_tokens) into texts within max_tokens.

    Sizing sums the (cached) per-unit counts, which for subword tokenizers is exact or within a token per
    join; each packed text is then counted whole and trimmed unit by unit until it really fits.
    """
    out: list[str] = []
    start = 0
    while start < len(units):
        end = _fill(units, start, 0, max_tokens, count)
        while end - start > 1 and count(sep.join(units[start:end])) > max_tokens:
            end -= 1
        out.append(sep.join(units[start:end]))
        start = end
    return out


def _split_words(sentence: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Word windows of at most max_tokens each (over-long words are cut into character runs)."""
    words: list[str] = []
    for w in sentence.split():
        words.extend([w] if count(w) <= max_tokens else _split_long_word(w, max_tokens, count))
    return _pack(words, " ", max_tokens, count)


def _overlap_tail(units: list[str], overlap_tokens: int, count: TokenCounter) -> list[str]:
    """About overlap_tokens of trailing text: whole trailing units (sentences) when they give at least half
    of it, otherwise the longest trailing run of words that fits (as one unit)."""
    if overlap_tokens <= 0:
        return []
    tail: list[str] = []
    total = 0
    for unit in reversed(units):
        if total + count(unit) > overlap_tokens:
            break
        tail.insert(0, unit)
        total += count(unit)
    if tail and (total * 2 >= overlap_tokens or len(tail) == len(units)):
        return tail
    words = " ".join(units).split()
    kept: list[str] = []
    total = 0
    for w in reversed(words):
        if total + count(w) > overlap_tokens:
            break
        kept.insert(0, w)
        total += count(w)
    return [" ".join(kept)] if kept else []


def _split_paragraph(paragraph: str, max_tokens: int, overlap_tokens: int, count: TokenCounter) -> list[str]:
    """A paragraph longer than max_tokens -> sentence-packed pieces that overlap by about overlap_tokens."""
    units: list[str] = []
    for sentence in _sentences(paragraph):
        if count(sentence) <= max_tokens:
            units.append(sentence)
        else:
            units.extend(_split_words(sentence, max_tokens, count))
    out: list[str] = []
    tail: list[str] = []
    start = 0
    while start < len(units):
        used = sum(count(t) for t in tail)
        if tail and used + count(units[start]) > max_tokens:
            tail, used = [], 0  # no room for the overlap next to the next sentence
        end = _fill(units, start, used, max_tokens, count)
        while count(" ".join([*tail, *units[start:end]])) > max_tokens:
            if tail:
                tail = []  # drop the overlap before dropping new text
            else:
                end -= 1  # a single unit always fits, so this stops at end = start + 1
        piece = [*tail, *units[start:end]]
        out.append(" ".join(piece))
        tail = _overlap_tail(piece, overlap_tokens, count)
        start = end
    return out


def _slug(source: str) -> str:
    base = source.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    norm = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", norm.lower()).strip("-")[:40].strip("-") or "doc"


def _chunk_id(slug: str, source: str, page: int | None, text: str, repeat: int) -> str:
    key = f"{source}|{page}|{text}" if repeat == 0 else f"{source}|{page}|{text}|{repeat}"
    return f"{slug}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def chunk_id(source: str, text: str, page: int | None = None, repeat: int = 0) -> str:
    """The stable id a chunk of ``text`` from ``source`` gets: ``f"{slug}-{sha1(source|page|text)[:10]}"``.

    Args:
        source: The file name (or any label) the text comes from.
        text: The passage text.
        page: 1-based page number, or None.
        repeat: 0 for the first occurrence of this text in this source; n for the n-th repeat.

    Returns:
        The id; the same arguments always give the same id.
    """
    return _chunk_id(_slug(source), source, page, text, repeat)


def chunk_segments(
    segments: Iterable[Segment],
    source: str,
    max_tokens: int = 200,
    overlap_tokens: int = 32,
    count_tokens: TokenCounter | None = None,
) -> list[Chunk]:
    """Cut a document's segments into chunks of at most ``max_tokens`` tokens.

    Paragraphs (blank-line separated; whitespace inside normalised) are packed whole, in order, while the
    chunk stays within ``max_tokens``; chunks never span pages. A paragraph longer than ``max_tokens``
    starts a new chunk and is split at sentence boundaries (a sentence longer than ``max_tokens`` by
    words, a word longer than that by characters); consecutive pieces of such a paragraph share about
    ``overlap_tokens`` of trailing text (whole sentences when possible). Headings are ordinary text.

    Args:
        segments: ``(page, text)`` pairs, as from :func:`extract_text`.
        source: The file name, stored on each chunk and hashed into its id.
        max_tokens: Most tokens per chunk, as counted by ``count_tokens`` (no special tokens).
        overlap_tokens: Tokens of trailing text repeated when a paragraph has to be split (0: none).
        count_tokens: Token counter; defaults to :func:`estimate_tokens`. Pass
            ``make_token_counter(model)`` for exact sizing.

    Returns:
        Chunks in document order with ``index`` 0, 1, ...; ids are unique within the document and stable
        across runs (same file name and text -> same id).

    Raises:
        ValueError: ``max_tokens`` < 1 or ``overlap_tokens`` < 0.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    if overlap_tokens < 0:
        raise ValueError(f"overlap_tokens must be 0 or more, got {overlap_tokens}")
    count = count_tokens or estimate_tokens
    overlap_tokens = min(overlap_tokens, max_tokens // 2)
    count = functools.lru_cache(maxsize=1 << 16)(count)  # words and sentences repeat; count each once
    texts: list[tuple[int | None, str]] = []
    for page, text in segments:
        run: list[str] = []  # consecutive paragraphs that fit on their own, packed together
        for para in _paragraphs(text):
            if count(para) <= max_tokens:
                run.append(para)
                continue
            texts.extend((page, t) for t in _pack(run, "\n\n", max_tokens, count))
            run = []
            texts.extend((page, t) for t in _split_paragraph(para, max_tokens, overlap_tokens, count))
        texts.extend((page, t) for t in _pack(run, "\n\n", max_tokens, count))
    slug = _slug(source)
    seen: Counter[tuple[int | None, str]] = Counter()
    chunks = []
    for index, (page, text) in enumerate(texts):
        repeat = seen[(page, text)]
        seen[(page, text)] += 1
        chunks.append(Chunk(_chunk_id(slug, source, page, text, repeat), text, source, page, index))
    return chunks


def load_documents(
    files: Sequence[tuple[str, bytes]],
    max_tokens: int = 200,
    overlap_tokens: int = 32,
    count_tokens: TokenCounter | None = None,
) -> DocumentSet:
    """Extract and chunk several files; a bad file is reported and skipped, the others still load.

    Args:
        files: ``(file name, bytes)`` pairs, e.g. from a file uploader.
        max_tokens: See :func:`chunk_segments`.
        overlap_tokens: See :func:`chunk_segments`.
        count_tokens: See :func:`chunk_segments`.

    Returns:
        A :class:`DocumentSet`. A file that cannot be used (see :func:`~core.ingest.extract.extract_text`:
        unsupported, too big, damaged, a zip bomb, no text) is skipped with a problem naming it; a file
        uploaded twice with the same bytes is skipped the second time (with a problem message); chunk ids
        are unique across the set.
    """
    chunks: list[Chunk] = []
    problems: list[str] = []
    names: list[str] = []
    notes: list[str] = []
    seen_files: dict[str, str] = {}
    ids: set[str] = set()
    for name, data in files:
        digest = hashlib.sha1(data).hexdigest()
        if digest in seen_files and data:
            problems.append(
                f"{name}: same content as {seen_files[digest]}, which is already loaded; skipped."
            )
            continue
        try:
            segments = extract_text(name, data, notes)
        except DataError as e:  # this file only: the others still load
            logger.info("document skipped: %s", e)
            problems.append(str(e))
            continue
        seen_files[digest] = name
        doc_chunks = chunk_segments(segments, name, max_tokens, overlap_tokens, count_tokens)
        for chunk in doc_chunks:  # a clash needs two different files with one name and a shared passage
            repeat = 1
            while chunk.id in ids:
                chunk.id = _chunk_id(_slug(name), name, chunk.page, chunk.text, 1000 + repeat)
                repeat += 1
            ids.add(chunk.id)
        chunks.extend(doc_chunks)
        names.append(name)
    logger.info("%d document(s) read, %d skipped, %d chunks", len(names), len(problems), len(chunks))
    return DocumentSet(chunks, problems, names, notes)

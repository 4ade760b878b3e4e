"""Documents: uploaded files -> text -> chunks, and free-text answers -> the chunk that holds them.

This module owns everything between a user's document files and a retrieval corpus:

* :func:`extract_text` reads .txt/.md/.pdf/.docx/.html files (bytes in memory, never a path)
  into ``(page, text)`` segments, refusing unusable files with a :class:`~core.dataset.DataError`
  that says what is wrong, with which file, and what to do.
* :func:`chunk_segments` cuts segments into :class:`Chunk` objects sized in the model's own tokens
  (paragraph-aware, then sentence-aware, then word-level), with stable ids.
* :func:`load_documents` does both for several files, skipping (and naming) the bad ones.
* :func:`link_answers` turns question/answer pairs into a :class:`~core.dataset.QADataset` by
  finding the chunk that holds each answer (exact, normalised, BM25, then embedding match).

Heavy libraries (pypdf, python-docx, bs4, bm25s, numpy) are imported inside the functions that use them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from core.dataset import DataError, QADataset

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm")
NORMALIZED_CONFIDENCE = 0.95  # confidence of a whitespace/case/punctuation-normalised substring match
LINK_METHODS = ("exact", "normalized", "bm25", "embedding", "none")

TokenCounter = Callable[[str], int]
Segment = tuple[int | None, str]


# --------------------------------------------------------------------------------------------------
# Data types


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
        return f"{self.source} p.{self.page}" if self.page is not None else self.source


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


@dataclass
class AnswerLink:
    """How one question's answer was linked to a chunk.

    Attributes:
        query_id: The question's id.
        chunk_id: The linked chunk's id; None when the answer was not linked.
        method: "exact", "normalized", "bm25", "embedding", or "none" (not linked).
        confidence: 1.0 for exact, 0.95 for normalised; for bm25 the IDF-weighted share of the
            answer's terms found in the chunk; for embedding the cosine similarity clipped to 0..1.
            For "none": the best confidence any method reached (0.0 when none applied).
        candidate_id: For "none", the best (rejected) chunk, if any; otherwise equal to ``chunk_id``.
    """

    query_id: str
    chunk_id: str | None
    method: str
    confidence: float
    candidate_id: str | None = None

    @property
    def linked(self) -> bool:
        """Whether the answer was linked (and the question is in the dataset)."""
        return self.chunk_id is not None


# --------------------------------------------------------------------------------------------------
# Extraction


def _ext(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""


def _control_share(text: str, sample: int = 200_000) -> float:
    """Share of control characters (other than tab/newlines/form feed) in the first ``sample`` characters."""
    text = text[:sample]
    if not text:
        return 0.0
    bad = sum(1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    return bad / len(text)


def _decode_text(name: str, data: bytes, notes: list[str] | None) -> str:
    """Decode a text file: BOM-marked UTF-8/16/32, then UTF-8, then (with a note) UTF-8 with the bad bytes
    replaced when the file is mostly valid UTF-8, else cp1252 / latin-1."""
    boms = (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    )
    what_to_do = "Save it as UTF-8 text (e.g. 'Save as… > Plain text, UTF-8') and upload it again."
    for bom, enc in boms:
        if data.startswith(bom):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{name}: the file starts with a {enc.upper()} byte-order mark but is not valid {enc.upper()} "
                    f"({e.reason} at byte {e.start}). {what_to_do}"
                ) from e
            break
    else:
        if b"\x00" in data:
            raise DataError(
                f"{name}: this does not look like a text file (it contains binary data). "
                f"Upload a .txt/.md file in UTF-8, or the original PDF/DOCX/HTML. {what_to_do}"
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            lenient = data.decode("utf-8", errors="replace")
            n_bad = lenient.count("\ufffd") - data.count("\ufffd".encode())
            n_good = len(lenient) - len(lenient.encode("ascii", "ignore")) - lenient.count("\ufffd")
            if n_good >= n_bad:
                # Mostly UTF-8 with a few damaged bytes: Windows-1252 would garble every correct accent.
                text = lenient
                message = (
                    f"{name}: {n_bad} byte sequence{'s' if n_bad != 1 else ''} not valid UTF-8 in a file that is "
                    "otherwise UTF-8; each was replaced by '\ufffd'. Fix those characters if they matter."
                )
            else:
                try:
                    text, enc = data.decode("cp1252"), "Windows-1252"
                except UnicodeDecodeError:
                    text, enc = data.decode("latin-1"), "Latin-1"
                message = (
                    f"{name}: not valid UTF-8; read it as {enc}. If accented letters or symbols look wrong, "
                    "save the file as UTF-8 and upload it again."
                )
            if notes is not None:
                notes.append(message)
    if _control_share(text) > 0.01:
        raise DataError(
            f"{name}: the bytes could not be decoded as text (too many control characters; it may be a binary "
            f"file with a text extension). {what_to_do}"
        )
    return text


_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_MD_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)


def _markdown_to_text(text: str) -> str:
    """Light Markdown clean-up: headings become their own paragraphs (text kept, '#' dropped), links and
    images keep their text, bold markers and HTML comments go; everything else is kept as written."""
    text = _HTML_COMMENT.sub("", text)
    out: list[str] = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = _MD_HEADING.match(line)
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if m:
            out += ["", m.group(2), ""]
        elif line.strip() and _MD_SETEXT.match(nxt) and not _MD_SETEXT.match(line):
            out += ["", line.strip(), ""]
        elif _MD_SETEXT.match(line) and out and out[-1] == "" and len(out) >= 2 and out[-2]:
            continue  # the underline of a setext heading
        else:
            out.append(line)
    text = "\n".join(out)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(r"\1", text)
    return _MD_BOLD.sub(r"\2", text)


_HTML_DROP = ("script", "style", "noscript", "template", "svg", "canvas", "iframe", "object", "embed", "head")
_HTML_BLOCKS = (
    "p", "div", "section", "article", "main", "aside", "header", "footer", "nav", "h1", "h2", "h3", "h4", "h5",
    "h6", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "pre", "table", "thead", "tbody", "tfoot", "tr",
    "caption", "figure", "figcaption", "address", "details", "summary", "hr", "form", "fieldset", "legend",
)  # fmt: skip


def _html_to_text(name: str, data: bytes) -> str:
    from bs4 import BeautifulSoup
    from bs4.element import NavigableString

    try:
        soup = BeautifulSoup(data, "html.parser")
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad upload
        raise DataError(
            f"{name}: could not be parsed as HTML ({e}). Check that it is a web page saved as .html."
        ) from e
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    for tag in soup.find_all("br"):
        tag.replace_with(NavigableString("\n"))
    for tag in soup.find_all(("td", "th")):
        tag.insert_after(NavigableString(" | "))
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.insert_before(NavigableString("\n\n"))
        tag.insert_after(NavigableString("\n\n"))
    body = soup.get_text()
    paras = []
    for para in re.split(r"\n\s*\n", body):
        para = re.sub(r"(\s*\|\s*)+$", "", " ".join(para.split()))
        if para:
            paras.append(para)
    if title and (not paras or paras[0] != title):
        paras.insert(0, title)
    return "\n\n".join(paras)


def _docx_to_text(name: str, data: bytes) -> str:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - zipfile.BadZipFile, PackageNotFoundError, KeyError, lxml errors...
        raise DataError(
            f"{name}: not a valid Word .docx file ({type(e).__name__}). Open it in Word or LibreOffice and save it "
            "as .docx (old .doc files must be converted), or upload it as PDF."
        ) from e

    paras: list[str] = []

    def add_table(table: Table) -> None:
        for row in table.rows:
            cells: list[str] = []
            seen: set[int] = set()
            for cell in row.cells:
                if id(cell._tc) in seen:  # a merged cell repeats in every grid column it spans
                    continue
                seen.add(id(cell._tc))
                text = " ".join(cell.text.split())
                if text:
                    cells.append(text)
                for inner in cell.tables:
                    add_table(inner)
            if cells:
                paras.append(" | ".join(cells))

    for block in document.iter_inner_content():
        if isinstance(block, Table):
            add_table(block)
        else:
            paras.append(block.text)
    return "\n\n".join(p for p in paras if p.strip())


def _pdf_segments(name: str, data: bytes) -> list[Segment]:
    import pypdf

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        encrypted = reader.is_encrypted
    except Exception as e:  # noqa: BLE001 - pypdf raises many types for damaged files
        raise DataError(
            f"{name}: could not be read as a PDF ({type(e).__name__}: {e}). The file may be damaged or not a PDF; "
            "re-export it from the original program and upload it again."
        ) from e
    if encrypted:
        remove_pw = "Remove the password (e.g. print/export it to a new PDF) and upload it again."
        try:
            ok = reader.decrypt("")
        except Exception as e:  # noqa: BLE001 - e.g. DependencyError for AES without a crypto library
            raise DataError(
                f"{name}: the PDF is encrypted and could not be decrypted ({e}). {remove_pw}"
            ) from e
        if not ok:
            raise DataError(f"{name}: the PDF is password-protected. {remove_pw}")
    segments: list[Segment] = []
    try:
        pages = list(reader.pages)
    except Exception as e:  # noqa: BLE001
        raise DataError(
            f"{name}: the PDF's page list is damaged ({e}). Re-export the PDF and upload it again."
        ) from e
    if not pages:
        raise DataError(f"{name}: the PDF has no pages. Upload a PDF with content.")
    failed = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - one broken page should not lose the others
            failed += 1
            continue
        text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", text)  # re-join words hyphenated at a line end
        if text.strip():
            segments.append((number, text))
    if not segments:
        if failed == len(pages):
            raise DataError(
                f"{name}: no page of the PDF could be read. Re-export the PDF and upload it again."
            )
        raise DataError(
            f"{name}: the PDF has no text layer (it looks scanned or made of images). Run OCR on it first "
            "(e.g. `ocrmypdf in.pdf out.pdf`, or 'Recognize text' in Acrobat) and upload the result."
        )
    return segments


def extract_text(name: str, data: bytes, notes: list[str] | None = None) -> list[Segment]:
    """Read a document file into ``(page, text)`` segments.

    Formats by extension: .txt and .md/.markdown (paragraphs split on blank lines; Markdown headings kept
    as their own paragraphs), .pdf (one segment per page with text, 1-based page numbers), .docx
    (paragraphs and table rows, in document order), .html/.htm (script/style/... dropped, blocks such as
    paragraphs, headings and list items become separate paragraphs). Non-PDF formats give one segment
    with page None. Paragraphs in the returned text are separated by blank lines.

    Args:
        name: The file name as uploaded; only its extension is used (never opened as a path).
        data: The file's bytes.
        notes: If given, non-fatal remarks are appended (e.g. a text file read as Windows-1252).

    Returns:
        ``[(page, text), ...]``, at least one segment with non-blank text.

    Raises:
        DataError: unsupported extension; empty file; text that cannot be decoded; a PDF that is damaged,
            password-protected or without a text layer (needs OCR); a .docx that is not a valid Word file;
            a document with no text.
    """
    ext = _ext(name)
    if ext not in SUPPORTED_EXTENSIONS:
        shown = ext or "(no extension)"
        raise DataError(
            f"{name}: unsupported file type {shown}. Upload .txt, .md, .pdf, .docx or .html files "
            "(convert other formats, e.g. .doc or .rtf, to PDF or DOCX first)."
        )
    if not data or not data.strip():
        raise DataError(f"{name}: the file is empty. Upload a file with text in it.")
    if ext == ".pdf":
        return _pdf_segments(name, data)
    if ext == ".docx":
        text = _docx_to_text(name, data)
    elif ext in (".html", ".htm"):
        text = _html_to_text(name, data)
    else:
        text = _decode_text(name, data, notes)
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if ext in (".md", ".markdown"):
            text = _markdown_to_text(text)
    if not text.strip():
        raise DataError(f"{name}: the document contains no text. Upload a file with text in it.")
    return [(None, text)]


# --------------------------------------------------------------------------------------------------
# Chunking

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


def _split_long_word(word: str, max_tokens: int, count: TokenCounter) -> list[str]:
    """Split one over-long 'word' (a URL, a hash...) into character runs that fit."""
    out: list[str] = []
    while word:
        lo, hi = 1, len(word)  # the longest prefix that fits (at least one character)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if count(word[:mid]) <= max_tokens:
                lo = mid
            else:
                hi = mid - 1
        out.append(word[:lo])
        word = word[lo:]
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
        A :class:`DocumentSet`. A file uploaded twice with the same bytes is skipped the second time (with a
        problem message); chunk ids are unique across the set.
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
        except DataError as e:
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
    return DocumentSet(chunks, problems, names, notes)


# --------------------------------------------------------------------------------------------------
# Answer linking

_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not of off
    on once only or other our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself yourselves""".split()
)


def _normalize(text: str) -> str:
    """Lower-case, NFKC, punctuation -> space, whitespace collapsed; padded with spaces for word-bounded
    substring tests."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text)
    return f" {' '.join(text.split())} "


def _stem(word: str) -> str:
    """A very light English suffix stripper (plurals, -ed, -ing, final e), enough for paraphrases."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) > 5:
        word = word[:-3]
    elif word.endswith("ed") and len(word) > 4:
        word = word[:-2]
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    return word


def _terms(text: str) -> list[str]:
    words = re.findall(r"\w+", unicodedata.normalize("NFKC", text).casefold())
    return [_stem(w) for w in words if w not in _STOPWORDS]


def _exact_match(answer: str, chunks: Sequence[Chunk]) -> str | None:
    """First chunk containing the answer verbatim (not inside a longer word)."""
    left = r"(?<!\w)" if answer[0].isalnum() or answer[0] == "_" else ""
    right = r"(?!\w)" if answer[-1].isalnum() or answer[-1] == "_" else ""
    pattern = re.compile(left + re.escape(answer) + right)
    for chunk in chunks:
        if answer in chunk.text and pattern.search(chunk.text):
            return chunk.id
    return None


class _Bm25:
    """bm25s over the chunks, plus the document frequencies used for the confidence score."""

    def __init__(self, chunks: Sequence[Chunk]):
        import bm25s

        self.docs = [_terms(c.text) for c in chunks]
        self.sets = [set(d) for d in self.docs]
        self.df: Counter[str] = Counter(t for s in self.sets for t in s)
        self.n = len(chunks)
        self.retriever = bm25s.BM25()
        self.retriever.index([d or [""] for d in self.docs], show_progress=False)

    def scores(self, terms: list[str]):
        import numpy as np

        known = [t for t in terms if t in self.retriever.vocab_dict]
        if not known:
            return np.zeros(self.n, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float32)

    def idf(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def coverage(self, terms: Iterable[str], doc: int) -> float:
        """IDF-weighted share of the distinct terms that occur in chunk ``doc`` (0..1)."""
        unique = set(terms)
        total = sum(self.idf(t) for t in unique)
        if total <= 0:
            return 0.0
        return sum(self.idf(t) for t in unique if t in self.sets[doc]) / total

    def best(self, question: str, answer: str) -> tuple[int, float]:
        """Best chunk for (answer + question) and its confidence; (-1, 0.0) when nothing matches."""
        a_terms, q_terms = _terms(answer), _terms(question)
        score = self.scores(a_terms) + 0.5 * self.scores(q_terms)
        if self.n == 0 or float(score.max()) <= 0:
            return -1, 0.0
        doc = int(score.argmax())
        return doc, self.coverage(a_terms or q_terms, doc)


def link_answers(
    queries: dict[str, str],
    answers: dict[str, str],
    chunks: Sequence[Chunk],
    model=None,
    min_confidence: float = 0.5,
) -> tuple[QADataset, list[AnswerLink]]:
    """Link question/answer pairs to the chunk holding each answer, giving a retrieval dataset.

    For each question, in order, the first method that applies wins:

    1. ``exact``: the answer (stripped) occurs verbatim in a chunk, not inside a longer word; the first such
       chunk in ``chunks`` order is used (so an answer split across two chunks falls through). Confidence 1.0.
    2. ``normalized``: the same after case folding, NFKC, punctuation -> space and whitespace collapsing.
       Confidence 0.95.
    3. ``bm25``: bm25s ranks chunks by BM25(answer terms) + 0.5 * BM25(question terms) (lower-cased,
       stop words dropped, light suffix stripping). Confidence = IDF-weighted share of the answer's distinct
       terms present in the top chunk, ``sum(idf(t) for t in A & C) / sum(idf(t) for t in A)`` with
       ``idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5))`` over the chunks (question terms when the answer has
       none). 1.0 means every answer term is in the chunk; rare terms weigh more; terms found in no chunk
       count against it.
    4. ``embedding`` (only with ``model``, only for answers BM25 left below ``min_confidence``): cosine
       similarity between the embedding of "question\\nanswer" and each chunk (normalised embeddings),
       best chunk wins; confidence = the cosine clipped to 0..1.

    A link whose confidence is below ``min_confidence`` is not made: its :class:`AnswerLink` has method
    "none", ``chunk_id`` None, the best confidence reached and the rejected chunk as ``candidate_id``.
    Answers whose id is not in ``queries``, or that are blank, are reported as "none" with confidence 0.

    Args:
        queries: ``{query id: question}``.
        answers: ``{query id: answer text}``.
        chunks: All chunks (e.g. ``DocumentSet.chunks``).
        model: Optional SentenceTransformer for the embedding fallback.
        min_confidence: Links below this are left out of the dataset.

    Returns:
        ``(dataset, links)``: the dataset has corpus = all chunks, sources = ``{chunk id: "file p.N" | "file"}``,
        and queries/relevant_docs for the linked questions only; ``links`` has one entry per question (then
        per answer without a question), in order.

    Raises:
        DataError: there are no chunks to link to.
    """
    if not chunks:
        raise DataError(
            "There are no document chunks to link the answers to. Upload and load documents first."
        )
    ids = list(dict.fromkeys([*queries, *answers]))
    norm_chunks = [_normalize(c.text) for c in chunks]
    bm25: _Bm25 | None = None
    links: dict[str, AnswerLink] = {}
    pending: list[str] = []  # query ids for the embedding fallback
    for qid in ids:
        answer = (answers.get(qid) or "").strip()
        if qid not in queries or not answer:
            links[qid] = AnswerLink(qid, None, "none", 0.0)
            continue
        chunk_id = _exact_match(answer, chunks)
        if chunk_id is not None:
            links[qid] = AnswerLink(qid, chunk_id, "exact", 1.0, chunk_id)
            continue
        norm = _normalize(answer)
        if norm.strip():
            hit = next((c.id for c, text in zip(chunks, norm_chunks, strict=True) if norm in text), None)
            if hit is not None:
                links[qid] = AnswerLink(qid, hit, "normalized", NORMALIZED_CONFIDENCE, hit)
                continue
        bm25 = bm25 or _Bm25(chunks)
        doc, conf = bm25.best(queries[qid], answer)
        candidate = chunks[doc].id if doc >= 0 else None
        if candidate is not None and conf >= min_confidence:
            links[qid] = AnswerLink(qid, candidate, "bm25", conf, candidate)
        else:
            links[qid] = AnswerLink(qid, None, "none", conf, candidate)
            pending.append(qid)
    if model is not None and pending:
        import numpy as np

        emb = model.encode(
            [c.text for c in chunks],
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        q_emb = model.encode(
            [f"{queries[q]}\n{answers[q].strip()}" for q in pending],
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        sims = np.asarray(q_emb, dtype=np.float32) @ np.asarray(emb, dtype=np.float32).T
        for row, qid in zip(sims, pending, strict=True):
            doc = int(row.argmax())
            conf = float(min(1.0, max(0.0, row[doc])))
            if conf >= min_confidence:
                links[qid] = AnswerLink(qid, chunks[doc].id, "embedding", conf, chunks[doc].id)
            elif conf > links[qid].confidence:
                links[qid] = AnswerLink(qid, None, "none", conf, chunks[doc].id)
    linked = [link for link in links.values() if link.chunk_id is not None]
    dataset = QADataset(
        queries={link.query_id: queries[link.query_id] for link in linked},
        corpus={c.id: c.text for c in chunks},
        relevant_docs={link.query_id: [link.chunk_id] for link in linked if link.chunk_id},
        sources={c.id: c.label for c in chunks},
    )
    return dataset, [links[q] for q in ids]

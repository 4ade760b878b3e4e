"""Document files -> text: .txt, .md, .pdf, .docx and .html read into ``(page, text)`` segments.

:func:`extract_text` reads one file from bytes in memory (never a path), refusing an unusable file
with a :class:`~core.dataset.DataError` that names the file, says what is wrong and what to do:

* text files go through the one decoder (:func:`core.ingest.decoding.decode_text`); Markdown is
  lightly cleaned (headings kept as their own paragraphs, link and image text kept);
* PDFs give one segment per page with text (pypdf); encrypted, damaged and scanned (no text
  layer) PDFs are refused;
* .docx files (python-docx) give paragraphs and table rows in document order; the archive is
  checked by its directory first (:data:`MAX_DOCX_MEMBERS`, :data:`MAX_DOCX_EXPANDED_BYTES`,
  :data:`MAX_DOCX_RATIO`) so a zip bomb is refused before python-docx inflates anything;
* HTML (a streaming ``html.parser``, no tree: memory near the text's size) drops scripts, styles and the
  like and keeps blocks as paragraphs.

Every file is capped at :data:`~core.ingest.decoding.MAX_DOCUMENT_BYTES` before it is opened, and
its text at :data:`MAX_DOCUMENT_CHARS`. Cutting the text into passages is :mod:`core.ingest.chunking`.
Heavy libraries (pypdf, python-docx, bs4) are imported inside the functions that use them.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from html.parser import HTMLParser

from core.dataset import DataError
from core.ingest.decoding import check_document_size, check_zip, decode_text, extension

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS = (".txt", ".md", ".markdown", ".pdf", ".docx", ".html", ".htm")
# Text kept from one document: as much as the largest plain-text file accepted (50 MB). Only
# compressed formats (PDF streams, a .docx's XML) can hold more, and a file that expands past it is
# more likely a bomb than prose; cutting it into passages would hold the page for minutes.
MAX_DOCUMENT_CHARS = 50_000_000
# A .docx is a zip. Word writes a few dozen parts (one more per embedded image); thousands is not
# a Word document.
MAX_DOCX_MEMBERS = 5_000
# Expanded size of all parts together: 4x the 50 MB file cap. Word's XML compresses 5-30x and
# images barely at all, so a real document stays far below; python-docx parses every part in memory.
MAX_DOCX_EXPANDED_BYTES = 200_000_000
# Expansion of one part (uncompressed / compressed). Repetitive generated XML reaches ~250x (a
# python-docx table of 2,000 empty rows: 223x); deflate bombs run near its ~1,000x ceiling.
MAX_DOCX_RATIO = 500
# Parts expanding to at most this many bytes are not ratio-checked: small and harmless.
DOCX_RATIO_FLOOR = 10_000_000
# What a text document should be saved as, ending the decoder's advice.
EXPORT_AS = "UTF-8 text (.txt or .md), or upload the original PDF, DOCX or HTML"

# One HTML page: a lower cap than MAX_DOCUMENT_BYTES, since markup is read tag by tag: the streaming
# parser takes ~14 s for 10 MB of nothing but tags (<b>x</b> repeated) on this 2-core machine, in
# ~60 MB. A long web page saved as .html is 1-3 MB.
MAX_HTML_BYTES = 10_000_000
# HTML is fed to the streaming parser this many characters at a time.
HTML_FEED_CHARS = 1 << 20

Segment = tuple[int | None, str]


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


_HTML_VOID_DROP = ("embed",)  # dropped elements that have no end tag
_HTML_CELLS = ("td", "th")


class _HTMLText(HTMLParser):
    """HTML -> text as it streams past: no tree is built, so memory stays near the text's size.

    Dropped elements (:data:`_HTML_DROP`) are skipped with everything inside them; ``<br>`` is a line
    break, a table cell ends with `` | ``, and block elements (:data:`_HTML_BLOCKS`) are surrounded by
    blank lines (paragraph breaks). The ``<title>`` is kept on its own.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = io.StringIO()
        self.title = io.StringIO()
        self.dropping: list[str] = []  # open dropped elements, innermost last
        self.in_title = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "title":
            self.in_title = True
        if tag == "body" and "head" in self.dropping:  # a <head> never closed ends where <body> starts
            del self.dropping[self.dropping.index("head") :]
        if self.dropping:
            if tag in _HTML_DROP and tag not in _HTML_VOID_DROP:
                self.dropping.append(tag)
            return
        if tag in _HTML_DROP:
            if tag not in _HTML_VOID_DROP:
                self.dropping.append(tag)
        elif tag == "br":
            self.out.write("\n")
        elif tag in _HTML_BLOCKS:
            self.out.write("\n\n")

    def handle_startendtag(self, tag: str, attrs: list) -> None:  # <br/>, <svg/>: nothing inside
        if not self.dropping and tag == "br":
            self.out.write("\n")
        elif not self.dropping and tag in _HTML_BLOCKS:
            self.out.write("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if self.dropping:
            if tag in self.dropping:
                at = len(self.dropping) - 1 - self.dropping[::-1].index(tag)
                del self.dropping[at:]
            return
        if tag in _HTML_CELLS:
            self.out.write(" | ")
        elif tag in _HTML_BLOCKS:
            self.out.write("\n\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.write(data)
        if not self.dropping:
            self.out.write(data)


def _html_to_text(name: str, data: bytes) -> str:
    """The text of an HTML page (see :class:`_HTMLText`), streamed: a page of millions of tags is read in
    memory close to its own size (BeautifulSoup's tree once took 373 MB for 2 MB of ``<b>x</b>``)."""
    from bs4.dammit import UnicodeDammit  # the page's declared or detected encoding

    markup = UnicodeDammit(data, is_html=True).unicode_markup
    if markup is None:
        raise DataError(f"{name}: could not be decoded as text. Check that it is a web page saved as .html.")
    parser = _HTMLText()
    try:
        for at in range(0, len(markup), HTML_FEED_CHARS):
            parser.feed(markup[at : at + HTML_FEED_CHARS])
            if parser.out.tell() > MAX_DOCUMENT_CHARS:
                break  # refused by _check_chars below
        parser.close()
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad upload
        raise DataError(
            f"{name}: could not be parsed as HTML ({e}). Check that it is a web page saved as .html."
        ) from e
    del markup
    title = " ".join(parser.title.getvalue().split())
    body = parser.out.getvalue()
    _check_chars(name, len(body))
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
    n_chars = 0
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - one broken page should not lose the others
            failed += 1
            continue
        text = re.sub(r"(?<=[a-z])-\n(?=[a-z])", "", text)  # re-join words hyphenated at a line end
        n_chars += len(text)
        _check_chars(name, n_chars)  # page by page: stop reading a PDF whose text runs away
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
        DataError: unsupported extension; a file over :data:`~core.ingest.decoding.MAX_DOCUMENT_BYTES` or
            text over :data:`MAX_DOCUMENT_CHARS`; empty file; text that cannot be decoded; a PDF that is
            damaged, password-protected or without a text layer (needs OCR); a .docx that is not a valid Word
            file or whose archive would expand too far (a zip bomb); a document with no text.
    """
    ext = extension(name)
    if ext not in SUPPORTED_EXTENSIONS:
        shown = ext or "(no extension)"
        raise DataError(
            f"{name}: unsupported file type {shown}. Upload .txt, .md, .pdf, .docx or .html files "
            "(convert other formats, e.g. .doc or .rtf, to PDF or DOCX first)."
        )
    check_document_size(name, len(data))  # before any parser sees the bytes
    if not data or not data.strip():
        raise DataError(f"{name}: the file is empty. Upload a file with text in it.")
    if ext == ".pdf":
        return _pdf_segments(name, data)
    if ext == ".docx":
        _check_docx_archive(name, data)
        text = _docx_to_text(name, data)
    elif ext in (".html", ".htm"):
        if len(data) > MAX_HTML_BYTES:
            raise DataError(
                f"{name} is {len(data) / 1e6:.0f} MB, over the {MAX_HTML_BYTES / 1e6:.0f} MB limit for one HTML page "
                "(markup is read tag by tag: that much would hold this machine for minutes). Save the page as PDF or "
                "plain text, or split it into smaller pages, and upload those."
            )
        text = _html_to_text(name, data)
    else:
        decoded = decode_text(data, name, EXPORT_AS)
        if decoded.note and notes is not None:
            notes.append(decoded.note)
        text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
        if ext in (".md", ".markdown"):
            text = _markdown_to_text(text)
    _check_chars(name, len(text))
    if not text.strip():
        raise DataError(f"{name}: the document contains no text. Upload a file with text in it.")
    return [(None, text)]


def _check_chars(name: str, n_chars: int) -> None:
    """Refuse a document whose text runs past :data:`MAX_DOCUMENT_CHARS`."""
    if n_chars > MAX_DOCUMENT_CHARS:
        raise DataError(
            f"{name}: holds more than {MAX_DOCUMENT_CHARS / 1e6:.0f} million characters of text, over the limit "
            "for one document (cutting that into passages would hold the page for minutes). Split it into "
            "smaller files (e.g. one per chapter) and upload those."
        )


def _check_docx_archive(name: str, data: bytes) -> None:
    """Refuse a .docx whose zip directory promises too many parts, too many bytes or a bomb-like expansion,
    before python-docx inflates anything (it reads every part into memory)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip at all: python-docx refuses it below with the usual "not a valid Word .docx file"
    advice = (
        "Open it in Word or LibreOffice and save it again (without huge embedded media), or upload it as PDF."
    )
    check_zip(
        infos,
        name,
        max_members=MAX_DOCX_MEMBERS,
        max_bytes=MAX_DOCX_EXPANDED_BYTES,
        what="a Word document holds a few dozen",
        advice=advice,
        max_ratio=MAX_DOCX_RATIO,
        ratio_floor=DOCX_RATIO_FLOOR,
    )

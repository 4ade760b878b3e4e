"""Bytes to text for every uploaded file: the one decoder, content sniffing, file-size caps and zip guards.

Question files (:mod:`core.ingest.qafiles`, BEIR members in :mod:`core.ingest.irjson`) and documents
(:mod:`core.ingest.extract`) are decoded by :func:`decode_text`:

* a UTF-16 or UTF-32 byte-order mark decides first (strictly); a UTF-8 one is dropped;
* otherwise NUL bytes mean a binary file (or UTF-16 without a mark) and are refused;
* then strict UTF-8; text that is not valid UTF-8 is read as UTF-8 with the bad bytes replaced by
  U+FFFD when it is mostly UTF-8 (at least as many well-formed non-ASCII characters as bad byte
  sequences: Windows-1252 would garble every correct accent), else as Windows-1252 (the five bytes
  it leaves undefined become U+FFFD); either way with a note naming the line and byte of the first
  bad byte;
* decoded text holding more than :data:`MAX_CONTROL_SHARE` control characters is refused.

Refusals raise :class:`core.dataset.DataError` whose message names the file, says what is wrong
and what to do; ``.problems`` holds that message. The advice part names formats the caller
accepts (``export_as``), so one message fits a question file and a document alike.

Also here: :func:`extension`, :func:`content_type` (what a file is by its first bytes),
:func:`check_qa_size` / :func:`check_document_size` (the per-file caps, checked before decoding)
and :func:`check_zip` (member count, expanded size and compression ratio of an archive, checked
before anything is inflated).
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

from core.dataset import DataError

logger = logging.getLogger(__name__)

# Size cap for one question file (CSV/TSV/JSON/JSONL). 50 MB of pairs is well over 100,000
# passages: hours per training epoch and long encodes on this app's CPU machines, and several GB
# of memory once parsed, split and checked for leakage (10 MB parses in ~2 s on 2 cores; a 100 MB
# file would hold the page for ~20 s and then stall the split). Refusing it up front, before
# decoding, keeps the page responsive and says what to do (sample or split the file).
MAX_QA_FILE_BYTES = 50_000_000  # messages say MB = 10^6 bytes
# Size cap for one document file (TXT/MD/PDF/DOCX/HTML), the same 50 MB: as plain text that is ~8
# million words, far more passages than a tuning corpus needs, and pypdf, python-docx and
# BeautifulSoup hold the whole parsed file in memory (several times its size) while extracting.
MAX_DOCUMENT_BYTES = 50_000_000
# Characters looked at for the control-character check (the start of a file tells binary from text).
SNIFF_CHARS = 200_000
# Share of control characters (other than tab, newlines, vertical tab, form feed) in the sniffed
# text above which it is treated as binary. Real text has next to none; 1% is already junk.
MAX_CONTROL_SHARE = 0.01

_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # Unicode Cc minus \t \n \v \f \r
_WIDE_BOMS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)
_UTF8_BOM = b"\xef\xbb\xbf"  # stripped; the rest is read like any UTF-8 file (bad bytes included)
# Content signatures of files that get renamed by mistake (checked before decoding: a small PDF can
# hold no NUL byte at all and would otherwise be read as text).
_MAGIC = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office file (.xls or .doc)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class Decoded:
    """Text read from bytes.

    Attributes:
        text: The decoded text (a byte-order mark removed).
        encoding: ``"utf-8"``, ``"utf-8-sig"``, ``"utf-16"``, ``"utf-32"`` or ``"cp1252"``.
        note: A warning for the user when bytes had to be replaced or the file was read as
            Windows-1252; None when it decoded cleanly.
        where: Where the note points to, e.g. ``"notes.csv line 4"``; None without a note.
    """

    text: str
    encoding: str
    note: str | None = None
    where: str | None = None


def _refuse(message: str) -> DataError:
    return DataError(message, problems=[message])


def decode_text(data: bytes, label: str, export_as: str) -> Decoded:
    """Decode a text file (see the module docstring for the order of attempts).

    Args:
        data: The file's bytes.
        label: How messages name the file, e.g. ``"notes.csv"`` or a zip member ``"corpus.jsonl"``.
        export_as: The formats the caller accepts, ending the advice "Export or save it as ...",
            e.g. ``"CSV UTF-8, JSON or JSONL text"``.

    Returns:
        The text, the encoding used and, when bytes were replaced or guessed, a note.

    Raises:
        DataError: NUL bytes without a byte-order mark, a byte-order mark the rest of the file
            does not follow, or too many control characters (a binary file).
    """
    for bom, codec, name in _WIDE_BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as e:
                raise _refuse(
                    f"{label}: starts like {name} text but byte {e.start} cannot be decoded ({e.reason}). "
                    f"Save the file again as UTF-8: export or save it as {export_as}."
                ) from e
            if "\x00" in text:
                raise _refuse(
                    f"{label}: contains NUL characters, so it is not a text file. Export or save it as {export_as}."
                )
            _check_control(text, label, export_as)
            return Decoded(text, codec)
    skip = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    body = data[skip:]
    if b"\x00" in body:
        raise _refuse(
            f"{label}: contains NUL bytes, so it looks like a binary file (an Excel workbook, a PDF, an image) "
            "or UTF-16 text without a byte-order mark; it does not look like a text file. "
            f"Export or save it as {export_as}."
        )
    utf8 = "utf-8-sig" if skip else "utf-8"
    try:
        decoded = Decoded(body.decode("utf-8"), utf8)
    except UnicodeDecodeError as e:
        decoded = _fallback(data, skip, e.start + skip, label, utf8)
        logger.info("%s", decoded.note)
    _check_control(decoded.text, label, export_as)
    return decoded


def _fallback(data: bytes, skip: int, offset: int, label: str, utf8: str) -> Decoded:
    """Text that is not valid UTF-8 (first bad byte at ``offset``; ``skip`` bytes of byte-order mark):
    lenient UTF-8 when it is mostly UTF-8, else Windows-1252; with a note."""
    body = data[skip:]
    line = data.count(b"\n", 0, offset) + 1
    where = f"{label} line {line}"
    byte = f"byte {offset} ({data[offset : offset + 1].hex()})"
    lenient = body.decode("utf-8", errors="replace")
    n_bad = lenient.count("\ufffd") - body.count("\ufffd".encode())
    n_good = len(lenient) - len(lenient.encode("ascii", "ignore")) - lenient.count("\ufffd")
    if n_good >= n_bad:
        # Mostly UTF-8 with a few damaged bytes: reading it all as Windows-1252 would garble every
        # correct accented letter ("café" -> "cafÃ©"), so replace only the bad bytes.
        note = (
            f"{where}: {byte} is not valid UTF-8 ({n_bad} bad byte sequence{'s' if n_bad != 1 else ''} in all, "
            "in a file that is otherwise UTF-8); each was replaced by '\ufffd'. Fix those characters in the file "
            "if they matter."
        )
        return Decoded(lenient, utf8, note, where)
    note = (
        f"{where}: {byte} is not valid UTF-8, so the file was read as Windows-1252 (Western European) "
        "instead. Check that accented letters and symbols look right, or save the file as UTF-8."
    )
    return Decoded(body.decode("cp1252", errors="replace"), "cp1252", note, where)


def _check_control(text: str, label: str, export_as: str) -> None:
    sample = text[:SNIFF_CHARS]
    if sample and len(_CONTROL.findall(sample)) / len(sample) > MAX_CONTROL_SHARE:
        raise _refuse(
            f"{label}: could not be decoded as text: it is full of control characters, so it looks like a binary "
            f"file, not text (perhaps renamed with a text extension). Export or save it as {export_as}."
        )


def extension(name: str) -> str:
    """The lower-cased extension of a file name, with its dot (``".csv"``), or ``""``.

    Args:
        name: A file name as uploaded (only its last path component is looked at; never opened).

    Returns:
        The extension, e.g. ``".pdf"``; ``""`` when the name has no dot.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[-1].lower() if "." in base else ""


def content_type(data: bytes) -> str | None:
    """What the file is by its first bytes, for files that are not text: e.g. ``"a PNG image"``.

    Args:
        data: The file's bytes (only the first few are read).

    Returns:
        A description for a known non-text signature; None otherwise (zip archives included:
        a zip may be a BEIR dataset or a .docx, see :data:`ZIP_MAGIC`).
    """
    return next((what for magic, what in _MAGIC if data.startswith(magic)), None)


def check_qa_size(name: str, size: int) -> None:
    """Refuse a question file over :data:`MAX_QA_FILE_BYTES` before reading or decoding it.

    Raises:
        DataError: the file is too big; the message says how to cut it down.
    """
    if size > MAX_QA_FILE_BYTES:
        raise _refuse(
            f"{name} is {size / 1e6:.0f} MB, over the {MAX_QA_FILE_BYTES / 1e6:.0f} MB limit for one question "
            "file (that many pairs would take hours per training epoch on this machine). Keep a sample of the "
            "rows, or split the file and upload the part you need."
        )


def check_document_size(name: str, size: int) -> None:
    """Refuse a document over :data:`MAX_DOCUMENT_BYTES` before extracting anything from it.

    Raises:
        DataError: the file is too big; the message says how to cut it down.
    """
    if size > MAX_DOCUMENT_BYTES:
        raise _refuse(
            f"{name} is {size / 1e6:.0f} MB, over the {MAX_DOCUMENT_BYTES / 1e6:.0f} MB limit for one document "
            "(that much text would take a long time to read and cut into passages on this machine). Split it "
            "into smaller files (e.g. one per chapter), or save it without embedded images, and upload those."
        )


def check_zip(
    infos: Sequence[zipfile.ZipInfo],
    label: str,
    *,
    max_members: int,
    max_bytes: int,
    what: str,
    advice: str,
    max_ratio: float | None = None,
    ratio_floor: int = 0,
    max_member_bytes: int | None = None,
) -> None:
    """Refuse an archive by its directory, before any member is inflated (a zip bomb, or not what it claims).

    The sizes checked are the ones the archive declares. Python's ``zipfile`` never returns more
    than the declared size of a member (a member that lies fails its CRC check instead), so a
    reader using it stays within these limits.

    Args:
        infos: ``ZipFile.infolist()``.
        label: The file name for messages.
        max_members: Most members allowed.
        max_bytes: Most bytes all members may expand to together.
        what: What the archive should be, for the member-count message, e.g. "a BEIR dataset needs a handful".
        advice: What to do instead, ending every message.
        max_ratio: Most expansion (uncompressed / compressed size) allowed for one member; None: no check.
        ratio_floor: Members expanding to at most this many bytes are not ratio-checked (small
            repetitive parts compress well and are harmless).
        max_member_bytes: Most bytes one member may expand to (the cap of the same file uploaded on
            its own); None: no check.

    Raises:
        DataError: too many members, too many expanded bytes, a member over ``max_member_bytes``, or a
            member expanding too much.
    """
    if len(infos) > max_members:
        raise _refuse(f"{label} holds {len(infos):,} files; {what} (limit {max_members:,}). {advice}")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise _refuse(
            f"{label} would expand to {total / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB limit. {advice}"
        )
    if max_member_bytes is not None:
        for info in infos:
            if info.file_size > max_member_bytes:
                raise _refuse(
                    f"{label}: its file {info.filename!r} would expand to {info.file_size / 1e6:,.0f} MB, over the "
                    f"{max_member_bytes / 1e6:,.0f} MB limit for one file (the same as for a file uploaded on its "
                    f"own). {advice}"
                )
    if max_ratio is None:
        return
    for info in infos:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > ratio_floor and ratio > max_ratio:
            raise _refuse(
                f"{label}: its part {info.filename!r} would expand {ratio:,.0f} times (from "
                f"{info.compress_size / 1e3:,.0f} KB to {info.file_size / 1e6:,.0f} MB), over the {max_ratio:,.0f}x "
                f"limit: this looks like a zip bomb. {advice}"
            )

"""Crafted inputs that once took gigabytes: each is read by the loaders in a child process whose
address space is capped at its idle size + 1 GiB (``resource.setrlimit(RLIMIT_AS)``), so a loader
that builds too much dies there with MemoryError instead of taking pytest (or the machine) down.

Before the fixes of docs/HARDENING.md ("Memory and time"), the JSONL zip bomb ran out of the cap
(2.6 GB peak through ``python -m core evaluate``), the bad-lines file built a million messages, a
page of ``<b>x</b>`` became a BeautifulSoup tree of ~180 bytes per byte, and one 1.25-million-character
word took 1.2 GB in the chunker.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from core.dataset import DataError
    from core.ingest.chunking import load_documents
    from core.ingest.qafiles import load_qa_path

    def vm_bytes():
        for line in open("/proc/self/status"):
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    limit = vm_bytes() + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = []
    for path in sys.argv[1:]:
        p = Path(path)
        t0 = time.perf_counter()
        try:
            if p.suffix in (".html", ".txt"):
                docs = load_documents([(p.name, p.read_bytes())])
                outcome, message = ("refused", docs.problems[0]) if docs.problems else ("read", f"{len(docs.chunks)}")
            else:
                res = load_qa_path(p)
                outcome, message = "read", f"{len(res.dataset)}"
        except DataError as e:
            outcome, message = "refused", str(e)
        except MemoryError:
            outcome, message = "MemoryError", ""
        out.append({"file": p.name, "outcome": outcome, "message": message[:400],
                    "seconds": round(time.perf_counter() - t0, 2)})
    print(json.dumps(out))
    """
)


def _beir_zip(corpus_blocks, block: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("queries.jsonl", '{"_id": "q1", "text": "q"}\n')
        zf.writestr("qrels/test.tsv", "q1\tc1\t1\n")
        with zf.open("corpus.jsonl", "w", force_zip64=True) as fh:
            for _ in range(corpus_blocks):
                fh.write(block)
    return buf.getvalue()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("bombs")
    mib = b"x\n" * (1 << 19)
    files = {
        "jsonl-bomb.zip": _beir_zip(46, mib),  # 48 MB of "x" lines, just under the per-file cap
        "member-over-cap.zip": _beir_zip(52, mib),  # one member of 54 MB: over the per-file cap
        "bad-lines.jsonl": b"x\n" * 4_000_000,  # 8 MB of bad lines
        "empty-objects.jsonl": b"{}\n" * 2_000_000,  # valid JSON objects, over the row cap
        "bold.html": b"<html><body>" + b"<b>x</b>" * 250_000 + b"</body></html>",  # 2 MB of tags
        "big.html": b"<p>" + b"x" * 10_000_001,  # over the HTML cap
        "one-long-word.txt": b"x" * 1_250_000,  # the text of a 10 MB page of <b>x</b>
    }
    paths = []
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths.append(str(d / name))
    proc = subprocess.run([sys.executable, "-c", CHILD, *paths], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {r["file"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize(
    ("name", "outcome", "message"),
    [
        ("jsonl-bomb.zip", "refused", r"corpus\.jsonl line 1 is not valid JSON.*\(and 30 more problems like this\)"),
        ("member-over-cap.zip", "refused", r"its file 'corpus\.jsonl' would expand to 55 MB, over the 50 MB limit "
                                           r"for one file"),
        ("bad-lines.jsonl", "refused", r"Line 1 is not valid JSON.*\(and 30 more problems like this\)"),
        ("empty-objects.jsonl", "refused", r"more than 1,000,000 lines, over the limit for one file"),
        ("bold.html", "read", r"^\d+$"),
        ("big.html", "refused", r"big\.html is 10 MB, over the 10 MB limit for one HTML page"),
        ("one-long-word.txt", "read", r"^\d+$"),
    ],
)
def test_crafted_input_within_a_gigabyte_and_30_seconds(results, name, outcome, message):
    r = results[name]
    assert r["outcome"] == outcome, r
    assert re.search(message, r["message"]), r
    assert r["seconds"] < 30, r


def test_bad_jsonl_lines_are_listed_up_to_the_cap_and_reading_stops():
    from core.dataset import DataError
    from core.ingest.qafiles import load_qa_file
    from core.ingest.tables import MAX_BAD_LINES

    with pytest.raises(DataError) as info:
        load_qa_file("bad.jsonl", b"x\n" * 100_000)
    problems = info.value.problems
    assert len(problems) == MAX_BAD_LINES + 1
    assert re.search(r"Stopped reading at line 30 after 30 bad lines; the 99,970 lines after it were not checked",
                     problems[-1]), problems[-1]


"""The on-disk cache of LLM answers: one SQLite file, one row per (endpoint, model, passage, prompt, settings).

Every answer that gave at least one question is stored as soon as it arrives, so a job
that is cancelled, fails half-way or is run again only asks for what is missing. The
key is a SHA-256 of the endpoint's base URL, the model name, the passage text, the prompt template
and the settings that change an answer (questions asked for, temperature, answer-token cap): another
server's answers are never served for this one. The row keeps the parsed questions and the raw
answer text (for review), cut at :data:`MAX_RAW_CHARS`. Nothing secret is stored: the API key is never an argument of this module.

Thread-safe (a lock around a per-call connection) and safe across processes (WAL), like
:class:`core.retrieval.embedding.EmbeddingCache`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

CACHE_FILE = "llm_questions.sqlite"  # file name inside the workspace cache folder
# Raw answer text kept per answer (for review): a few questions take a few hundred characters; a server
# answering a megabyte for every passage would otherwise fill the cache with it.
MAX_RAW_CHARS = 20_000


def cache_key(passage: str, prompt: str, model: str, n: int, *, base_url: str = "", temperature: float = 0.0,
              max_answer_tokens: int = 0) -> str:
    """The cache key of one request: SHA-256 (hex) of endpoint URL, model, passage text, prompt template, n,
    temperature and answer-token cap."""
    blob = json.dumps(["v2", base_url.rstrip("/"), model, passage, prompt, int(n), float(temperature),
                       int(max_answer_tokens)], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()


class QuestionCache:
    """Generated questions on disk, keyed by :func:`cache_key`.

    Args:
        path: The SQLite file (parent folders are created). :meth:`in_folder` names it
            inside a workspace cache folder.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._lock, self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, n INT,"
                " questions TEXT, raw TEXT, created REAL)"
            )

    @classmethod
    def in_folder(cls, folder: str | Path) -> QuestionCache:
        """The cache file :data:`CACHE_FILE` inside ``folder`` (e.g. the workspace cache folder)."""
        return cls(Path(folder) / CACHE_FILE)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def get(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """Cached questions for ``keys`` (keys not cached are absent from the result)."""
        found: dict[str, list[str]] = {}
        keys = list(keys)
        with self._lock, self._connect() as con:
            for i in range(0, len(keys), 500):
                part = keys[i : i + 500]
                q = f"SELECT key, questions FROM answers WHERE key IN ({','.join('?' * len(part))})"
                for k, blob in con.execute(q, part):
                    found[k] = list(json.loads(blob))
        return found

    def raw(self, key: str) -> str | None:
        """The raw answer text stored with ``key`` (None when not cached)."""
        with self._lock, self._connect() as con:
            row = con.execute("SELECT raw FROM answers WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, questions: list[str], raw: str, model: str, n: int) -> None:
        """Store one answer (replaces an earlier one with the same key); ``raw`` is cut at :data:`MAX_RAW_CHARS`."""
        if len(raw) > MAX_RAW_CHARS:
            raw = raw[:MAX_RAW_CHARS] + f"\n[... {len(raw) - MAX_RAW_CHARS:,} more characters not kept]"
        with self._lock, self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO answers VALUES (?,?,?,?,?,?)",
                (key, model, int(n), json.dumps(list(questions), ensure_ascii=False), raw, time.time()),
            )

    def __len__(self) -> int:
        with self._lock, self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def clear(self) -> None:
        """Forget every answer (the next run asks the endpoint again)."""
        with self._lock, self._connect() as con:
            con.execute("DELETE FROM answers")

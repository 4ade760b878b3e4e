"""Questions out of a model's free-form answer.

Models asked for "a JSON list" answer in many shapes. :func:`parse_questions` accepts,
in this order of preference:

1. JSON: a list of strings, a list of objects with a ``question`` (or ``query``/``text``)
   field, or an object holding such a list (``{"questions": [...]}``); also inside a
   Markdown code fence, or surrounded by prose ("Here are the questions: [...]"); the
   complete items of a list cut off by the token limit;
2. numbered or bulleted lines (``1.``, ``2)``, ``(3)``, ``-``, ``*``, ``•``, ``Q1:``);
3. plain lines that end with a question mark.

Numbering, bullets, surrounding quotes and trailing commas are stripped; empty items and
repeats (same text, case-insensitive) are dropped. Reasoning models' ``<think>...</think>``
blocks are ignored. An answer with no question in it gives ``[]``.
"""

from __future__ import annotations

import json
import re
from typing import Any

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_-]*)[ \t]*\n?(.*?)(```|$)", re.S)
# A list marker at the start of a line: "1.", "1)", "(1)", "1:", "-", "*", "•", "Q1:", "Question 1:".
_MARKER = re.compile(
    r"^\s*(?:q(?:uestion)?\s*\d+\s*[:.)-]|\(?\d{1,3}\s*[.):](?=\s)|\(\d{1,3}\)|[-*•·–—](?=\s))\s*",
    re.I,
)
_QUOTES = "\"'“”‘’«»`"
_TEXT_KEYS = ("question", "query", "q", "text", "content")
_LIST_KEYS = ("questions", "queries", "items", "data", "results", "output")


def _clean(item: str) -> str:
    text = " ".join(str(item).split())
    text = _MARKER.sub("", text, count=1)
    text = text.strip().rstrip(",;").strip()
    # Surrounding quotes (possibly nested, e.g. '"What ...?"'), and markdown bold.
    for _ in range(3):
        before = text
        if text.startswith("**") and text.endswith("**") and len(text) > 4:
            text = text[2:-2].strip()
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
            text = text[1:-1].strip()
        text = text.rstrip(",;").strip()
        if text == before:
            break
    return text


def _from_json_value(value: Any) -> list[str] | None:
    """Question texts in a decoded JSON value, or None when it holds no list of questions."""
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict):
                for k in _TEXT_KEYS:
                    if isinstance(item.get(k), str):
                        out.append(item[k])
                        break
        return out
    if isinstance(value, dict):
        for k in _LIST_KEYS:
            if isinstance(value.get(k), list):
                return _from_json_value(value[k])
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return _from_json_value(lists[0])
        for k in _TEXT_KEYS:
            if isinstance(value.get(k), str):
                return [value[k]]
    return None


def _try_json(text: str) -> list[str] | None:
    text = text.strip()
    if not text:
        return None
    candidates = [text]
    # Prose around the JSON: take the outermost brackets / braces.
    for open_, close in (("[", "]"), ("{", "}")):
        i, j = text.find(open_), text.rfind(close)
        if 0 <= i < j:
            candidates.append(text[i : j + 1])
    for cand in candidates:
        try:
            value = json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
        found = _from_json_value(value)
        if found is not None:
            return found
    return None


_JSON_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"(\s*:)?')  # group 2: it is an object key


def _partial_json_strings(text: str) -> list[str] | None:
    """Complete string items of a JSON list cut off mid-way (an answer stopped by the token limit)."""
    body = text.lstrip()
    if not body.startswith(("[", "{")):
        return None
    out = []
    key, key_end = None, -1
    for m in _JSON_STRING.finditer(body):
        if m.group(2):  # an object key: remember it for the value that follows
            key, key_end = m.group(1), m.end()
            continue
        is_value = key is not None and not body[key_end : m.start()].strip()
        if is_value and key not in _TEXT_KEYS:  # e.g. the "answer" field of an object
            continue
        try:
            out.append(json.loads(f'"{m.group(1)}"'))
        except json.JSONDecodeError:
            continue
    return out or None


def _from_lines(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    marked = [ln for ln in lines if _MARKER.match(ln) and _MARKER.sub("", ln, count=1).strip()]
    if marked:
        return marked
    return [ln for ln in lines if _clean(ln).endswith(("?", "？", "؟"))]


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        text = _clean(item)
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out


def parse_questions(answer: str | None) -> list[str]:
    """The questions in a model's answer (see the module docstring for the shapes read).

    Args:
        answer: The message content as the endpoint returned it (None or "" allowed).

    Returns:
        Question texts in answer order, cleaned and de-duplicated; ``[]`` when there is none.
    """
    if not answer:
        return []
    text = _THINK.sub("", answer).strip()
    if not text:
        return []
    bodies = [body for _lang, body, _end in _FENCE.findall(text)] + [text]
    for body in bodies:
        found = _try_json(body)
        if found is not None:
            return _dedupe(found)
    for body in bodies:
        found = _partial_json_strings(body)
        if found is not None:
            return _dedupe(found)
    # Not JSON: read the lines, fence markers removed.
    plain = re.sub(r"^\s*```.*$", "", text, flags=re.M)
    return _dedupe(_from_lines(plain))

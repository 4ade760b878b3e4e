"""The one tokenisation policy for lexical matching: BM25 search and answer linking both use it.

:func:`terms` turns a text into the terms BM25 counts: Unicode NFKC, case-folded, runs of word
characters (``\\w+``: letters, digits, underscore; one-character words kept), English stop words
dropped, no stemming. :class:`core.retrieval.index.BM25Index` indexes and queries these lists, and
:mod:`core.ingest.linking` ranks chunks for an answer with the same index and measures the share
of the answer's terms a chunk holds with the same function, so a word that counts in search counts
when linking answers, and the other way round.

Chosen by measurement: BM25 alone on ../shared/data/sec-10k-qa/val_dataset.json (790 questions,
395 passages; ``python -m core evaluate --bm25``), nDCG@10 per policy:

    bm25s' own tokenizer (lower-cased \\w\\w+, its 33 stop words; the old BM25Index)   0.8181
    NFKC casefold, \\w+, bm25s' 33 stop words                                           0.8210
    the same + the light suffix stripper answer linking used                            0.8097
    NFKC casefold, \\w+, the 125 stop words below + light stemming (the old linking)    0.8165
    lower-cased \\w\\w+, the 125 stop words below, no stemming                          0.8329
    NFKC casefold, \\w+, the 125 stop words below, no stemming (this policy)            0.8346

Light stemming lowered the score with either stop word list; the longer list raised it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# 125 English function words (pronouns, articles, auxiliaries, prepositions): frequent in questions ("what did the
# company ...") and passages alike, so they only add noise to BM25 and to the answer-coverage share.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not of off
    on once only or other our ours ourselves out over own same she should so some such than that the their theirs
    them themselves then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your yours yourself yourselves""".split()
)
_WORD = re.compile(r"\w+")


def terms(text: str) -> list[str]:
    """The terms BM25 and answer linking count in ``text``, in order (repeats kept).

    Args:
        text: Any text (a question, a passage, an answer).

    Returns:
        NFKC-normalised, case-folded ``\\w+`` runs that are not stop words; ``[]`` when none.
    """
    words = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return [w for w in words if w not in STOPWORDS]


def terms_batch(texts: Iterable[str]) -> list[list[str]]:
    """:func:`terms` of each text, in order (what :class:`~core.retrieval.index.BM25Index` indexes).

    Args:
        texts: Texts to tokenise.

    Returns:
        One term list per text.
    """
    return [terms(t) for t in texts]


def has_digit(term: str) -> bool:
    """Whether a term holds a digit (a number, a year, a code such as ``"covid19"``): two such terms that
    differ never mean the same thing, however alike they look (``"2020"`` / ``"2021"``)."""
    return any(ch.isdigit() for ch in term)


def same_word(a: str, b: str) -> bool:
    """Whether two terms are forms of one word: an inflection or a spelling variant, not another word.

    Equal terms; one a prefix of the other with at most 3 more letters and the shorter of at least 3
    (``revenue``/``revenues``, ``child``/``children``, ``use``/``used``); a shared stem of at least 4
    letters with endings of at most 3 (``increases``/``increased``, ``responsibility``/
    ``responsibilities``); or, from 5 letters on, one letter added inside the word (``colour``/``color``,
    ``judgement``/``judgment``) or ``s``/``z`` swapped (``organise``/``organize``). Terms holding a digit
    are the same word only when equal. ``mers``/``sars`` and ``children``/``adults`` are different words.

    Args:
        a: A term, as :func:`terms` gives it (case-folded).
        b: Another term.

    Returns:
        True when ``a`` and ``b`` are forms of one word.
    """
    if a == b:
        return True
    if has_digit(a) or has_digit(b):
        return False
    short, long = sorted((a, b), key=len)
    if len(short) >= 3 and long.startswith(short) and len(long) - len(short) <= 3:
        return True
    stem = 0
    while stem < len(short) and short[stem] == long[stem]:
        stem += 1
    if stem >= 4 and len(long) - stem <= 3 and len(short) - stem <= 3:
        return True
    if len(short) < 5:
        return False
    if len(long) == len(short) + 1:  # one letter added inside: colour / color
        return any(long[:i] + long[i + 1 :] == short for i in range(1, len(long) - 1))
    if len(long) == len(short):
        diff = [i for i in range(len(short)) if short[i] != long[i]]
        return len(diff) == 1 and diff[0] > 0 and {short[diff[0]], long[diff[0]]} == {"s", "z"}
    return False

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

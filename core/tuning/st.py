"""The one module that knows where sentence-transformers keeps its classes.

sentence-transformers 6 moved ``losses`` and ``evaluation`` under
``sentence_transformers.sentence_transformer``; the old paths warn. Everything else imports
them from here, so a future move touches this file only. Imports happen on call (the
library is heavy).
"""

from __future__ import annotations


def losses():
    """The ``losses`` module."""
    try:
        from sentence_transformers.sentence_transformer import losses as mod
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import losses as mod
    return mod


def sentence_evaluator():
    """The ``SentenceEvaluator`` base class."""
    try:
        from sentence_transformers.sentence_transformer.evaluation import SentenceEvaluator
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.evaluation import SentenceEvaluator
    return SentenceEvaluator


def ir_evaluator():
    """``InformationRetrievalEvaluator`` (the reference our metrics are tested against)."""
    try:
        from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.evaluation import InformationRetrievalEvaluator
    return InformationRetrievalEvaluator

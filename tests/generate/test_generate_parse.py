"""Questions out of free-form model answers: every shape core.generate.parse promises to read."""

from __future__ import annotations

import pytest

from core.generate.parse import parse_questions


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('["What is A?", "What is B?"]', ["What is A?", "What is B?"]),
        ('```json\n["What is A?", "What is B?"]\n```', ["What is A?", "What is B?"]),
        ('Sure, here they are:\n```\n["What is A?"]\n```\nHope this helps.', ["What is A?"]),
        ('Here you go: ["What is A?", "What is B?"] Enjoy!', ["What is A?", "What is B?"]),
        ('{"questions": ["What is A?", "What is B?"]}', ["What is A?", "What is B?"]),
        ('{"questions": [{"question": "What is A?", "answer": "a"}]}', ["What is A?"]),
        ('[{"query": "What is A?"}, {"text": "What is B?"}]', ["What is A?", "What is B?"]),
        ("1. What is A?\n2) What is B?\n(3) What is C?", ["What is A?", "What is B?", "What is C?"]),
        ("- What is A?\n* What is B?\n• What is C?", ["What is A?", "What is B?", "What is C?"]),
        ("Q1: What is A?\nQuestion 2: What is B?", ["What is A?", "What is B?"]),
        ('1. "What is A?"\n2. **What is B?**', ["What is A?", "What is B?"]),
        ("Here are three questions:\nWhat is A?\nWhat is B?\nThat is all.", ["What is A?", "What is B?"]),
        (
            '["1. What is A?", "  ", "What is A?", "what is a?"]',
            ["What is A?"],
        ),  # numbering, empties, repeats
        (
            '["What is A?", "What is B?", "What is C',
            ["What is A?", "What is B?"],
        ),  # cut off by the token limit
        ('<think>Maybe [1, 2]? Let me see.</think>\n["What is A?"]', ["What is A?"]),
        ("Was kostet die Wartung der Pumpe?", ["Was kostet die Wartung der Pumpe?"]),
        (
            "3.5 million dollars of revenue?",
            ["3.5 million dollars of revenue?"],
        ),  # a number is not a list marker
        ("Sure! I can help with that.", []),
        ("", []),
        (None, []),
        ("[]", []),
    ],
)
def test_parse_shapes(answer, expected):
    assert parse_questions(answer) == expected

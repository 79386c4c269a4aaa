"""Reading a label or a yes/no out of what a model actually wrote.

Models, small ones especially, answer "**Positive**", "positive.", "'Negative'", "Label:
negative", ``{"label": "positive"}`` or "The sentiment is positive because ...". These
functions map such answers onto the allowed values, and raise ValueError (with the answer in
the message) rather than guess when the answer names no value or several.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["YES_NO", "decision_schema", "label_schema", "match_label", "parse_yes_no"]

YES_NO = ("yes", "no")
_YES = frozenset({"yes", "y", "true", "t", "yeah", "yep", "correct", "1"})
_NO = frozenset({"no", "n", "false", "f", "nope", "incorrect", "0"})
# Edges that say nothing about the answer: spaces, quotes, Markdown emphasis, punctuation.
_EDGE = " \t\r\n\"'`*_#>.,;:!?()[]{}<>-–—"
_CLAUSE = re.compile(r"[.,;:!?\n]")
_PREFIX = re.compile(r"^(?:answer|label|category|class|sentiment|output|result)\s*[:=-]\s*", re.I)


def _norm(text: str) -> str:
    text = _PREFIX.sub("", text.strip().strip(_EDGE))
    return " ".join(text.strip(_EDGE).casefold().split())


def _unwrap_json(answer: str) -> str:
    # {"label": "positive"} or "positive" as JSON, written without a schema being enforced.
    stripped = answer.strip()
    if stripped[:1] in '{"':
        try:
            value = json.loads(stripped)
        except ValueError:
            return answer
        if isinstance(value, str):
            return value
        if isinstance(value, dict):
            strings = [v for v in value.values() if isinstance(v, str | bool)]
            if len(strings) == 1:
                return str(strings[0])
    return answer


def _words(text: str, phrase: str) -> list[int]:
    return [m.start() for m in re.finditer(rf"(?<!\w){re.escape(phrase)}(?!\w)", text)]


def match_label(answer: str, labels: Sequence[str]) -> str:
    """The one label of ``labels`` that ``answer`` names."""
    text = _norm(_unwrap_json(answer))
    table = {_norm(label): label for label in labels}
    if text in table:
        return table[text]
    first_line = _norm(text.splitlines()[0]) if text else ""
    if first_line in table:
        return table[first_line]
    # Whole-word mentions; a label inside a longer mentioned label ("positive" in "very
    # positive") does not count on its own.
    found = {key: _words(text, key) for key in table if key and _words(text, key)}
    found = {
        key: spots
        for key, spots in found.items()
        if not any(other != key and key in other for other in found)
    }
    if len(found) == 1:
        return table[next(iter(found))]
    if len(found) > 1:
        head = _norm(_CLAUSE.split(text, maxsplit=1)[0])
        if head in table:  # "Negative. It is not positive."
            return table[head]
        raise ValueError(
            f"the answer {answer[:120]!r} names several labels "
            f"({', '.join(table[k] for k in found)}); expected exactly one of {list(labels)}"
        )
    raise ValueError(f"the answer {answer[:120]!r} is none of the labels {list(labels)}")


def parse_yes_no(answer: str) -> bool:
    """True for yes/true/..., False for no/false/...; ValueError when it is neither or both."""
    text = _norm(_unwrap_json(answer))
    words = re.findall(r"\w+", text)
    if not words:
        raise ValueError(f"the answer {answer[:120]!r} is empty; expected yes or no")
    head = re.findall(r"\w+", _CLAUSE.split(text, maxsplit=1)[0])
    if len(head) == 1 and head[0] in _YES | _NO:  # "Yes, because ..." / "no."
        return head[0] in _YES
    yes = any(w in _YES and len(w) > 1 and not w.isdigit() for w in words)
    no = any(w in _NO and len(w) > 1 and not w.isdigit() for w in words)
    if yes != no:
        return yes
    raise ValueError(f"the answer {answer[:120]!r} is not a yes or a no")


def label_schema(labels: list[str]) -> dict[str, Any]:
    """The JSON schema that constrains a classify answer to one of ``labels``."""
    return {
        "title": "Label",
        "type": "object",
        "properties": {"label": {"type": "string", "enum": list(labels)}},
        "required": ["label"],
        "additionalProperties": False,
    }


def decision_schema() -> dict[str, Any]:
    """The JSON schema that constrains a filter answer to yes or no."""
    return {
        "title": "Decision",
        "type": "object",
        "properties": {"answer": {"type": "string", "enum": list(YES_NO)}},
        "required": ["answer"],
        "additionalProperties": False,
    }

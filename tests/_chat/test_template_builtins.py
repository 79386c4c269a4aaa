"""lm.templates: the seed's fifteen built-ins plus explain_error, each rendered with real
values (its variables, main variable, description and texts checked), and the library's
access by attribute, by item and by name, with suggestions for unknown names."""

from __future__ import annotations

import re
from typing import Any

import pytest

import llm_magics as lm
from llm_magics._chat.errorlog import ErrorRecord

SEED_BUILTINS = [
    "chat", "completion", "qa", "rag_qa", "rag_citation", "chain_of_thought",
    "classification", "summarise", "bullet_summary", "code_gen", "code_review",
    "json_extract", "translate", "persona", "transcript_clean",
]  # fmt: skip

# name -> (variables, main variable, values for a render, text the rendering must contain)
CASES: dict[str, tuple[tuple[str, ...], str, dict[str, Any], list[str]]] = {
    "chat": (("message",), "message", {"message": "Hi there"}, ["Hi there"]),
    "completion": (("text",), "text", {"text": "Once upon a time"}, ["Once upon a time"]),
    "qa": (("question",), "question", {"question": "Why is the sky blue?"}, ["sky blue"]),
    "rag_qa": (
        ("context", "question"),
        "question",
        {"context": "The Eiffel Tower was finished in 1889.", "question": "When?"},
        ["Context:\nThe Eiffel Tower was finished in 1889.", "Question: When?"],
    ),
    "rag_citation": (
        ("sources", "question"),
        "question",
        {"sources": "[1] Paris is in France.\n[2] Rome is in Italy.", "question": "Where?"},
        ["Sources:\n[1] Paris is in France.\n[2] Rome is in Italy.", "Question: Where?"],
    ),
    "chain_of_thought": (("question",), "question", {"question": "17 * 3?"}, ["17 * 3?"]),
    "classification": (
        ("text", "labels"),
        "text",
        {"text": "I love it", "labels": "positive, negative"},
        ["Text: I love it", "positive, negative"],
    ),
    "summarise": (
        ("length", "text"),
        "text",
        {"text": "A long story."},
        ["two or three sentences", "A long story."],
    ),
    "bullet_summary": (
        ("count", "text"),
        "text",
        {"text": "Notes.", "count": 4},
        ["as 4 bullet points", "Notes."],
    ),
    "code_gen": (
        ("language", "task"),
        "task",
        {"task": "parse a CSV file"},
        ["expert Python programmer", "parse a CSV file"],
    ),
    "code_review": (
        ("language", "code"),
        "code",
        {"code": "def f(d): return d['k']", "language": "Python"},
        ["Review this Python code", "```\ndef f(d): return d['k']\n```"],
    ),
    "json_extract": (
        ("text", "fields"),
        "text",
        {"text": "Alice lives in Paris.", "fields": "name, city"},
        ["Text: Alice lives in Paris.", "the keys: name, city"],
    ),
    "translate": (
        ("language", "text"),
        "text",
        {"text": "Good morning", "language": "French"},
        ["into French", "Good morning"],
    ),
    "persona": (
        ("persona", "message"),
        "message",
        {"persona": "a pirate captain", "message": "Where is the treasure?"},
        ["You are a pirate captain.", "Where is the treasure?"],
    ),
    "transcript_clean": (
        ("transcript",),
        "transcript",
        {"transcript": "um so uh we we ship on friday"},
        ["um so uh we we ship on friday"],
    ),
    "explain_error": (
        ("error", "question"),
        "error",
        {"error": "ZeroDivisionError: division by zero"},
        ["```\nZeroDivisionError: division by zero\n```", "how do I fix it?"],
    ),
}


def test_the_library_holds_the_seeds_fifteen_built_ins_and_explain_error() -> None:
    assert lm.templates.names() == [*SEED_BUILTINS, "explain_error"]
    assert len(lm.templates) == 16 and set(CASES) == set(lm.templates)


@pytest.mark.parametrize("name", list(CASES))
def test_each_built_in_renders_with_its_variables(name: str) -> None:
    variables, main, values, expected = CASES[name]
    t = lm.templates[name]
    assert t.variables == variables and t.main == main
    assert t.description and t.source == "built-in"
    messages = t.render(**values)
    assert [m.role for m in messages] == ["system", "user"]
    system, user = messages[0].text, messages[1].text
    assert system.strip() and user.strip()
    sent = f"{system}\n{user}"
    for piece in expected:
        assert piece in sent, (piece, sent)
    # Every placeholder was filled: nothing like {name} is left over.
    assert not re.search(r"\{[A-Za-z_]\w*\}", sent), sent


def test_each_built_in_names_its_required_variables_when_rendered_without_values() -> None:
    for name in CASES:
        t = lm.templates[name]
        with pytest.raises(lm.ConfigError, match=f"template '{name}' needs a value"):
            t.render()


def test_explain_error_sends_the_traceback_of_an_error_record() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        record = ErrorRecord.from_exception(exc, 7, "d = {}\nd['missing']")
    (_, user) = lm.templates.explain_error.render(error=record)
    assert "KeyError: 'missing'" in user.text
    assert user.text.startswith("My notebook cell failed with this error:\n\n```\n")


def test_classification_takes_labels_as_a_list_too() -> None:
    (_, user) = lm.templates.classification.render(text="ok", labels=["spam", "ham"])
    assert "['spam', 'ham']" in user.text


def test_built_ins_are_reached_by_attribute_and_by_item() -> None:
    assert lm.templates.rag_qa is lm.templates["rag_qa"]
    assert "rag_qa" in lm.templates and "nope" not in lm.templates
    assert "rag_qa" in dir(lm.templates)
    assert dict(lm.templates.items())["translate"] is lm.templates.translate


def test_an_unknown_name_suggests_the_closest_one() -> None:
    with pytest.raises(
        AttributeError, match=r"no template named 'tranlsate'\. Did you mean 'translate'"
    ):
        lm.templates.tranlsate  # noqa: B018
    with pytest.raises(KeyError) as info:
        lm.templates["rag"]
    assert isinstance(info.value, lm.ConfigError)
    assert str(info.value).startswith("no template named 'rag'. Did you mean 'rag_qa'")
    assert "LLM_MAGICS_TEMPLATES_DIR" in str(info.value)
    assert not hasattr(lm.templates, "_repr_html_")


def test_the_librarys_repr_lists_the_names() -> None:
    assert repr(lm.templates).startswith("<lm.templates: chat, completion, qa, rag_qa")

"""The built-in templates: ``lm.templates.NAME``.

The fifteen of the clients-gemini-cerebras-groq seed (chat, completion, qa, rag_qa,
rag_citation, chain_of_thought, classification, summarise, bullet_summary, code_gen,
code_review, json_extract, translate, persona, transcript_clean), written again for this
package, and ``explain_error``, for the error a notebook cell just raised::

    %%llm --template explain_error
    {Err[-1]}

Every built-in has a description, its variables, and a main variable (what a cell body or a
conversation turn fills). Their texts are short and plain so that small models follow them
too; a default is only given where a sensible one exists. A user template of the same name
(see :mod:`llm_magics._chat.templates.folder`) takes the place of a built-in.
"""

from __future__ import annotations

from typing import Any

from .template import Template

__all__ = ["BUILTIN_NAMES", "builtin_templates"]

_SOURCE = "built-in"

#: Every built-in, in the order ``lm.templates.names()`` lists them.
BUILTIN_NAMES = (
    "chat", "completion", "qa", "rag_qa", "rag_citation", "chain_of_thought",
    "classification", "summarise", "bullet_summary", "code_gen", "code_review",
    "json_extract", "translate", "persona", "transcript_clean", "explain_error",
)  # fmt: skip


def _conversation() -> list[Template]:
    return [
        _builtin(
            "chat",
            system="You are a helpful assistant. Answer clearly and concisely.",
            user="{message}",
            description="A general assistant: the message is sent as it is.",
        ),
        _builtin(
            "completion",
            system=(
                "Continue the text the user gives. Reply with the continuation only, without "
                "repeating the text."
            ),
            user="{text}",
            description="Continue a piece of text (single-turn completion).",
        ),
        _builtin(
            "persona",
            system="You are {persona}. Stay in character and answer as they would.",
            user="{message}",
            description=(
                "Answer in character: persona is who the model is (e.g. 'a pirate captain', "
                "'a patient maths teacher')."
            ),
        ),
    ]


def _questions() -> list[Template]:
    return [
        _builtin(
            "qa",
            system=(
                "Answer the question accurately and briefly. If you do not know the answer, "
                "say that you do not know."
            ),
            user="{question}",
            description="Answer a question from the model's own knowledge.",
        ),
        _builtin(
            "rag_qa",
            system=(
                "Answer the question using only the context given. If the context does not "
                "contain the answer, say: I don't know."
            ),
            user="Context:\n{context}\n\nQuestion: {question}\nAnswer:",
            description=(
                "Answer a question from retrieved context only (retrieval-augmented QA); "
                "says it does not know when the context lacks the answer."
            ),
        ),
        _builtin(
            "rag_citation",
            system=(
                "Answer the question using only the numbered sources given. After each "
                "statement, cite the sources it comes from as [1], [2]. If the sources do not "
                "contain the answer, say: I don't know."
            ),
            user="Sources:\n{sources}\n\nQuestion: {question}\nAnswer:",
            description=(
                "Answer from numbered sources and cite them as [1], [2]: sources is the "
                "text of the sources, each line starting with its number."
            ),
        ),
        _builtin(
            "chain_of_thought",
            system=(
                "Think through the problem step by step. Then give the final answer on a "
                "line of its own that starts with 'Answer:'."
            ),
            user="{question}",
            description="Reason step by step, then state the answer on an 'Answer:' line.",
        ),
    ]


def _text_work() -> list[Template]:
    return [
        _builtin(
            "classification",
            system=(
                "You are a precise classifier. Reply with exactly one label from the list "
                "and nothing else."
            ),
            user=(
                "Text: {text}\n\nWhich of these labels fits the text: {labels}?\n"
                "Reply with the label only."
            ),
            main="text",
            description=(
                "Put a text into one of the labels: labels is a comma-separated string "
                "or a list (e.g. 'positive, negative'). df.llm.classify(t, labels=[...]) "
                "fills labels and constrains the answer."
            ),
        ),
        _builtin(
            "summarise",
            system="You summarise texts faithfully: keep the key facts and add nothing.",
            user="Summarise the following text in {length}.\n\n{text}",
            defaults={"length": "two or three sentences"},
            description="Summarise a text; length says how long (default: two or three sentences).",
        ),
        _builtin(
            "bullet_summary",
            system="You summarise texts faithfully as short bullet points: one fact per bullet.",
            user="Summarise the following text as {count} bullet points.\n\n{text}",
            defaults={"count": "three to five"},
            description="Summarise a text as bullet points; count says how many.",
        ),
    ]


def _extraction() -> list[Template]:
    return [
        _builtin(
            "json_extract",
            system=(
                "You extract data from text. Reply with one JSON object only, and use null "
                "for a field the text does not give."
            ),
            user="Text: {text}\n\nGive a JSON object with the keys: {fields}.\nJSON:",
            main="text",
            description=(
                "Extract fields from a text as one JSON object: fields names the keys (e.g. "
                "'name, city, age'). With schema= (or %%llm -f json) the answer is parsed too."
            ),
        ),
        _builtin(
            "translate",
            system=(
                "You are a professional translator. Translate the user's text into {language}, "
                "keeping its meaning, tone and formatting. Reply with the translation only."
            ),
            user="{text}",
            defaults={"language": "English"},
            description="Translate a text into language (default: English).",
        ),
        _builtin(
            "transcript_clean",
            system=(
                "You clean up speech-to-text transcripts: fix punctuation, capitals and "
                "obvious mishearings, and remove filler words (um, uh, you know) and false "
                "starts. Keep the speaker's words and meaning; do not summarise."
            ),
            user="Clean up this transcript:\n\n{transcript}",
            description="Tidy a raw speech-to-text transcript without changing what was said.",
        ),
    ]


def _code() -> list[Template]:
    return [
        _builtin(
            "code_gen",
            system=(
                "You are an expert {language} programmer. Reply with one fenced code block of "
                "working, idiomatic {language} code, then at most two sentences about it."
            ),
            user="{task}",
            defaults={"language": "Python"},
            description="Write code for a task, in language (default: Python).",
        ),
        _builtin(
            "code_review",
            system=(
                "You are a senior code reviewer. List the bugs, risks and unclear parts of the "
                "code, most important first, each with a concrete fix. Say so when the code "
                "is fine."
            ),
            user="Review this {language} code:\n\n```\n{code}\n```",
            defaults={"language": "Python"},
            description="Review code for bugs and risks, with fixes (language default: Python).",
        ),
        _builtin(
            "explain_error",
            system=(
                "You help people who work in Jupyter notebooks. Explain errors in plain words: "
                "what went wrong, why, and how to fix it, with the corrected code."
            ),
            user="My notebook cell failed with this error:\n\n```\n{error}\n```\n\n{question}",
            defaults={"question": "What went wrong, and how do I fix it?"},
            main="error",
            description=(
                "Explain a notebook error and how to fix it: in a cell, "
                "`%%llm --template explain_error` with {Err[-1]} as the body sends the "
                "traceback of the latest failed cell (its own frames only, keys scrubbed)."
            ),
        ),
    ]


def builtin_templates() -> dict[str, Template]:
    """Every built-in by name, in :data:`BUILTIN_NAMES` order."""
    found = {
        t.name: t
        for group in (_conversation, _questions, _text_work, _extraction, _code)
        for t in group()
    }
    return {name: found[name] for name in BUILTIN_NAMES}


def _builtin(name: str, **fields: Any) -> Template:
    return Template(name, source=_SOURCE, **fields)

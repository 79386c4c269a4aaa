"""The rag_qa, classification, json_extract and translate built-ins answer sensibly on the real
embedded model (SmolLM2-135M through llama.cpp, temperature 0). The floors are generous: a
135M model is not a translator, and a llama.cpp build may sample slightly differently; each
measured score is noted beside its floor."""

from __future__ import annotations

import json
import re

import pytest

import llm_magics as lm

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def local() -> lm.Client:
    pytest.importorskip("llama_cpp", reason="the [local] extra is not installed")
    return lm.client("local", cache=False)


RAG = [
    ("The Eiffel Tower is in Paris. It was finished in 1889.", "When was the Eiffel Tower finished?", "1889"),
    ("Mount Everest is the highest mountain on Earth. It is in the Himalayas.", "Which mountain is the highest on Earth?", "Everest"),
    ("Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911.", "In which year did Marie Curie win the Nobel Prize in Chemistry?", "1911"),
    ("The capital of Australia is Canberra, not Sydney.", "What is the capital of Australia?", "Canberra"),
    ("Our office opens at 9 am and closes at 5 pm on weekdays.", "When does the office open?", "9"),
]  # fmt: skip


def test_rag_qa_answers_from_the_context(local: lm.Client) -> None:
    right = 0
    for context, question, expected in RAG:
        r = local.chat(lm.templates.rag_qa, context=context, question=question, temperature=0,
                       max_tokens=24)  # fmt: skip
        right += expected in r.text
    assert right >= 3, right  # measured 5/5


REVIEWS = [
    ("I love this phone, it works perfectly.", "positive"),
    ("Terrible product, it broke after one day.", "negative"),
    ("The food was delicious and the staff were friendly.", "positive"),
    ("The worst service I have ever had.", "negative"),
    ("Great movie, I enjoyed every minute.", "positive"),
    ("Boring movie, a complete waste of time.", "negative"),
    ("Poor quality, I want my money back.", "negative"),
    ("Fantastic quality, I am very happy with it.", "positive"),
]


def test_classification_picks_the_right_label(local: lm.Client) -> None:
    right = 0
    for text, label in REVIEWS:
        r = local.chat(lm.templates.classification, text=text, labels="positive, negative",
                       temperature=0, max_tokens=12)  # fmt: skip
        said = r.text.lower()
        other = "negative" if label == "positive" else "positive"
        right += label in said and other not in said
    assert right >= 5, right  # measured 7/8


PEOPLE = [
    ("My name is Alice and I live in Paris.", "Alice", "Paris"),
    ("Bob is 42 years old and works in London.", "Bob", "London"),
    ("Carla, 29, moved to Rome last year.", "Carla", "Rome"),
    ("Dmitri lives in Berlin with his dog.", "Dmitri", "Berlin"),
]


def first_json_object(text: str) -> object:
    match = re.search(r"\{.*?\}", text, re.S)
    if match is None:
        return None
    try:
        return json.loads(match.group())
    except ValueError:
        return None


def test_json_extract_gives_the_fields_as_json(local: lm.Client) -> None:
    right = 0
    for text, name, city in PEOPLE:
        r = local.chat(lm.templates.json_extract, text=text, fields="name, city", temperature=0,
                       max_tokens=40)  # fmt: skip
        found = first_json_object(r.text)
        right += isinstance(found, dict) and found.get("name") == name and found.get("city") == city
    assert right >= 3, right  # measured 4/4


PHRASES = [
    ("Hello", "bonjour"), ("Thank you very much", "merci"), ("Good morning", "bonjour"),
    ("The cat is black", "chat"), ("Good night", "nuit"), ("Water", "eau"),
    ("I love you", "aime"), ("Yes", "oui"),
]  # fmt: skip
FRENCH = re.compile(
    r"\b(je|suis|le|la|les|de|des|est|un|une|bonjour|merci|oui|nuit|chat|eau|et|vous|ce|cette)\b"
    r"|[éèêàçù]",
    re.IGNORECASE,
)


def test_translate_answers_in_french(local: lm.Client) -> None:
    french = expected = 0
    for text, word in PHRASES:
        r = local.chat(lm.templates.translate, text=text, language="French", temperature=0,
                       max_tokens=16)  # fmt: skip
        french += bool(FRENCH.search(r.text))
        expected += word in r.text.lower()
    assert french >= 6, french  # measured 8/8 answers in French
    assert expected >= 2, expected  # measured 3/8 with the expected word

"""df.llm.map with a built-in template against a real local model server (llama-cpp-python's
``llama_cpp.server`` for the embedded GGUF): every request body validated against OpenAI's
published spec on its way there, and the answers the real model's."""

from __future__ import annotations

import re

import pandas as pd
import pytest

import llm_magics as lm
from llm_magics._local.serve import LocalServer
from tests.support.llama import Forward
from tests.support.specs import SpecTransport

pytestmark = pytest.mark.model

FRENCH = re.compile(
    r"\b(je|suis|le|la|les|de|des|est|un|une|bonjour|merci|oui|nuit|et|vous|ce|cette)\b"
    r"|[éèêàçù]",
    re.IGNORECASE,
)


def test_translate_with_french_as_default_maps_every_row_on_the_local_server(
    llama_server: LocalServer, forward: Forward
) -> None:
    transport = SpecTransport("openai", forward, validate_responses=False)
    lm.register("llamacpp", base_url=llama_server.base_url)
    client = lm.client(f"llamacpp:{llama_server.model}", transport=transport, cache=False)
    frame = pd.DataFrame(
        {"text": ["Hello", "Good morning", "Thank you very much", "Good night", "Hello"]},
        index=list("abcde"),
    )
    french = lm.templates.translate.with_defaults(language="French")
    out = frame.llm.map(
        french, model=client, out="french", temperature=0, max_tokens=16, progress=False
    )
    transport.assert_clean()
    assert out.index.equals(frame.index)
    assert out["french_error"].isna().all(), out["french_error"].dropna()
    assert out.loc["a", "french"] == out.loc["e", "french"]  # the duplicate was asked once
    assert len(transport.bodies) == 4
    for body in transport.bodies:
        system, user = body["messages"]
        assert system == {"role": "system", "content": french.render_system()}
        assert user["role"] == "user" and user["content"] in set(frame["text"])
        assert (body["temperature"], body["max_tokens"]) == (0, 16)
    in_french = sum(bool(FRENCH.search(text)) for text in out["french"])
    assert in_french >= 3, out["french"]  # measured 5/5

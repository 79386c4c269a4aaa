"""df.llm with an lm.Template: variables from the columns of the same name, from columns=,
from keywords of the call, from defaults; the system prompt once or per row; the errors a
person reads, before anything is sent. Every request body is validated against OpenAI's
published spec (the scriptable backend of tests/dataframe_support.py)."""

from __future__ import annotations

import pandas as pd
import pytest

import llm_magics as lm
from llm_magics._core.types import MediaPart
from tests.dataframe_support import Backend, client_for

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def backend() -> Backend:
    return Backend()


def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": ["Hello {name}", "Good night", "Hello {name}"],
            "lang": ["French", "German", "French"],
        },
        index=["a", "b", "c"],
    )


def sent(backend: Backend) -> list[list[dict[str, object]]]:
    return [body["messages"] for body in backend.bodies]  # type: ignore[misc]


def test_columns_of_the_same_name_fill_the_variables_and_the_system_prompt_goes_once(
    backend: Backend,
) -> None:
    t = lm.templates.translate.with_defaults(language="Italian")
    out = frame().llm.map(t, model=client_for(backend), progress=False, out="it")
    assert list(out.columns) == ["text", "lang", "it", "it_error"]
    assert out["it"].tolist() == ["A:Hello {name}", "A:Good night", "A:Hello {name}"]
    assert backend.count == 2  # identical rows are asked once
    for messages in sent(backend):
        assert messages[0] == {"role": "system", "content": t.render_system()}
        assert "into Italian" in messages[0]["content"]  # type: ignore[operator]
    assert sorted(m[1]["content"] for m in sent(backend)) == ["Good night", "Hello {name}"]


def test_columns_maps_variables_to_other_columns_and_a_system_variable_varies_per_row(
    backend: Backend,
) -> None:
    out = frame().llm.map(
        lm.templates.translate, columns={"language": "lang"}, model=client_for(backend),
        progress=False, system="Be brief.",
    )  # fmt: skip
    assert out["llm_error"].isna().all()
    by_user = {m[-1]["content"]: m for m in sent(backend)}
    assert [m["role"] for m in by_user["Good night"]] == ["system", "system", "user"]
    assert by_user["Good night"][0]["content"] == "Be brief."
    assert "into German" in by_user["Good night"][1]["content"]  # type: ignore[operator]
    assert "into French" in by_user["Hello {name}"][1]["content"]  # type: ignore[operator]


def test_a_keyword_of_the_call_is_one_value_for_every_row_and_wins_over_a_column(
    backend: Backend,
) -> None:
    t = lm.Template("t", user="[{lang}] {text}")
    frame().llm.map(t, lang="Spanish", model=client_for(backend), progress=False)
    assert sorted(m[-1]["content"] for m in sent(backend)) == [
        "[Spanish] Good night", "[Spanish] Hello {name}"
    ]  # fmt: skip


def test_a_default_overridden_at_call_time_wins(backend: Backend) -> None:
    t = lm.Template("t", user="{text} ({tone})", defaults={"tone": "formal"})
    df = pd.DataFrame({"text": ["x"]})
    df.llm.map(t, model=client_for(backend), progress=False)
    df.llm.map(t, tone="casual", model=client_for(backend), progress=False)
    assert [m[-1]["content"] for m in sent(backend)] == ["x (formal)", "x (casual)"]


def test_a_variable_nothing_fills_names_it_the_template_and_the_columns_and_sends_nothing(
    backend: Backend,
) -> None:
    with pytest.raises(lm.ConfigError) as info:
        frame().llm.map(
            lm.templates.rag_qa, columns={"question": "text"}, model=client_for(backend)
        )
    message = str(info.value)
    assert "template 'rag_qa' needs a value for {context}" in message
    assert "the columns: text, lang" in message and "columns={'context': 'COLUMN'}" in message
    assert "Its variables: context, question" in message
    assert backend.count == 0


def test_bad_keywords_and_mappings_are_errors_before_anything_is_sent(backend: Backend) -> None:
    c = client_for(backend)
    with pytest.raises(lm.ConfigError, match=r"langauge= is neither.*Did you mean language="):
        frame().llm.map(lm.templates.translate, langauge="French", model=c, progress=False)
    with pytest.raises(
        lm.ConfigError, match="columns=: template 'translate' has no variable 'txt'"
    ):
        frame().llm.map(lm.templates.translate, columns={"txt": "text"}, model=c)
    with pytest.raises(
        lm.ConfigError, match="no column named 'language'; the columns are: text, lang"
    ):
        frame().llm.map(lm.templates.translate, columns={"text": "language"}, model=c)
    with pytest.raises(lm.ConfigError, match=r"columns= maps the variables of an lm\.Template"):
        frame().llm.map("{text}", columns={"text": "lang"}, model=c)
    assert backend.count == 0


def test_a_template_that_takes_no_column_is_refused(backend: Backend) -> None:
    with pytest.raises(lm.ConfigError, match="takes no variable from a column here"):
        frame().llm.map(lm.templates.qa, question="Why?", model=client_for(backend))


def test_rows_missing_a_templates_column_are_skipped_with_the_column_named(
    backend: Backend,
) -> None:
    df = pd.DataFrame({"text": ["Hi", None]})
    out = df.llm.map(lm.templates.translate, model=client_for(backend), progress=False)
    assert out["llm"].tolist() == ["A:Hi", None]
    assert out["llm_error"].tolist() == [None, "skipped: missing input 'text'"]


def test_braces_in_column_values_are_never_read_again(backend: Backend) -> None:
    df = pd.DataFrame({"code": ['print(f"{x}") {"a": {"b": 1}}']})
    t = lm.Template("r", user="Review:\n```\n{code}\n```")
    out = df.llm.map(t, model=client_for(backend), progress=False)
    assert out["llm"].iloc[0] == 'A:Review:\n```\nprint(f"{x}") {"a": {"b": 1}}\n```'


def test_a_series_fills_the_templates_main_variable_with_its_values(backend: Backend) -> None:
    reviews = pd.Series(["great", "awful"], name="review")
    out = reviews.llm.map(lm.templates.translate, language="French", model=client_for(backend),
                          progress=False)  # fmt: skip
    assert out["llm"].tolist() == ["A:great", "A:awful"]
    assert all("into French" in m[0]["content"] for m in sent(backend))  # type: ignore[operator]


def test_classify_fills_the_classification_templates_labels(backend: Backend) -> None:
    backend.answer = lambda prompt, body: "negative" if "awful" in prompt else "positive"
    df = pd.DataFrame({"text": ["great", "awful"]})
    out = df.llm.classify(lm.templates.classification, labels=["positive", "negative"],
                          model=client_for(backend), constrain=False, progress=False)  # fmt: skip
    assert out["label"].tolist() == ["positive", "negative"]
    assert "fits the text: positive, negative?" in sent(backend)[0][-1]["content"]  # type: ignore[operator]


def test_estimate_counts_a_templates_prompts_and_a_rerun_is_served_from_the_cache(
    backend: Backend,
) -> None:
    c = client_for(backend)
    t = lm.templates.translate.with_defaults(language="French")
    assert frame().llm.estimate(t, model=c).unique_prompts == 2
    frame().llm.map(t, model=c, progress=False)
    again = frame().llm.map(t, model=c, progress=False)
    assert backend.count == 2 and again["llm_error"].isna().all()
    assert frame().llm.estimate(t, model=c).calls == 0


def test_media_values_in_a_column_become_image_parts(backend: Backend) -> None:
    image = MediaPart("image", "image/png", data=PNG)
    df = pd.DataFrame({"photo": [image], "question": ["What is it?"]})
    t = lm.Template("look", user="{question}\n{photo}")
    df.llm.map(t, model=client_for(backend), progress=False)
    (content,) = [m[-1]["content"] for m in sent(backend)]
    assert isinstance(content, list)
    assert content[0] == {"type": "text", "text": "What is it?\n"}
    assert content[1]["type"] == "image_url"

"""Row templates and planning: placeholders, braces, media references, missing values, dedup,
and the label / yes-no readers. No network here."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from llm_magics import ConfigError
from llm_magics._core.types import MediaPart
from llm_magics.dataframe.labels import match_label, parse_yes_no
from llm_magics.dataframe.plan import build_plan
from llm_magics.dataframe.template import MediaRef, RowTemplate, materialize


def png_bytes() -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


PNG = png_bytes()


def render(template: str, row: dict[str, object]) -> object:
    compiled = RowTemplate(template, list(row))
    return compiled.render(row, set())


def test_placeholders_are_filled_once_and_braces_in_values_stay_literal() -> None:
    row = {"review": "great {food} and {{service}} {0} {", "n": 3}
    assert render("Review: {review} ({n})", row) == (
        "Review: great {food} and {{service}} {0} { (3)"
    )


def test_doubled_braces_and_non_placeholder_braces_are_literal_text() -> None:
    row = {"x": 1}
    assert render('{{x}} {x} {"a": 1} { return x; } }', row) == '{x} 1 {"a": 1} { return x; } }'


def test_format_specs_conversions_and_steps_work_as_in_str_format() -> None:
    row = {"price": 3.14159, "name": "Ann", "meta": {"title": "Dr"}, "items": [10, 20]}
    text = "{price:.2f} {name!r} {meta[title]} {items[-1]} {name.upper}"
    assert render(text, row).startswith("3.14 'Ann' Dr 20 <built-in method upper")


def test_column_names_that_are_not_identifiers_are_written_as_is() -> None:
    row = {"review text": "ok", 0: "zero"}
    assert render("{review text} / {0}", row) == "ok / zero"


def test_an_unknown_column_is_named_with_the_columns_listed() -> None:
    with pytest.raises(ConfigError) as info:
        RowTemplate("Rate {reveiw} now", ["review", "stars"])
    message = str(info.value)
    assert "{reveiw}" in message and "no column named 'reveiw'" in message
    assert "review, stars" in message and "Did you mean {review}?" in message
    assert "{{reveiw}}" in message  # how to write literal braces


def test_unknown_names_inside_code_stay_as_written() -> None:
    template = "Fix {code}:\n```python\nprint(f'{value}')\n```\nand `{other}`"
    assert render(template, {"code": "x"}) == (
        "Fix x:\n```python\nprint(f'{value}')\n```\nand `{other}`"
    )


def test_media_placeholders_become_media_refs_loaded_only_when_sent(tmp_path) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes(PNG)
    prompt = render("Describe {photo:image} briefly", {"photo": str(photo)})
    assert isinstance(prompt, tuple) and prompt[0] == "Describe " and prompt[2] == " briefly"
    ref = prompt[1]
    assert isinstance(ref, MediaRef) and ref.kind == "image" and ref.ident == ("s", str(photo))
    parts = materialize(prompt)
    assert isinstance(parts[1], MediaPart) and parts[1].mime_type == "image/png"
    assert parts[1].data == PNG


def test_identical_rows_share_one_prompt_and_order_is_kept() -> None:
    frame = pd.DataFrame({"t": ["a", "b", "a", "c", "b", "a"]}, index=[9, 8, 7, 6, 5, 4])
    plan = build_plan(frame, "Say {t}")
    assert plan.prompts == ["Say a", "Say b", "Say c"]
    assert plan.weights == [3, 2, 1]
    assert plan.row_job == [0, 1, 0, 2, 1, 0]


def test_rows_with_a_missing_input_are_skipped_with_the_column_named() -> None:
    frame = pd.DataFrame({"a": ["x", None, "z", float("nan")], "b": [1.0, 2.0, math.nan, math.nan]})
    plan = build_plan(frame, "{a} {b}")
    assert plan.row_job == [0, -1, -1, -1]
    assert plan.skipped == {
        1: "skipped: missing input 'a'",
        2: "skipped: missing input 'b'",
        3: "skipped: missing input 'a', 'b'",
    }


def test_na_empty_renders_missing_text_empty_and_skips_only_all_missing_rows() -> None:
    frame = pd.DataFrame({"a": ["x", None, None], "b": ["1", "2", pd.NA]})
    plan = build_plan(frame, "[{a}|{b}]", na="empty")
    assert [plan.prompts[j] for j in plan.row_job[:2]] == ["[x|1]", "[|2]"]
    assert plan.row_job[2] == -1 and plan.skipped[2] == "skipped: missing input 'a', 'b'"


def test_a_value_the_spec_cannot_format_fails_that_row_only() -> None:
    frame = pd.DataFrame({"p": [1.5, "n/a"]})
    plan = build_plan(frame, "{p:.1f}")
    assert plan.prompts == ["1.5"]
    assert plan.skipped[1].startswith("ValueError: {p:.1f}: cannot format a str")


def test_images_argument_appends_media_columns_after_the_text() -> None:
    frame = pd.DataFrame({"q": ["what?", "what?"], "img": [PNG, PNG]})
    plan = build_plan(frame, "{q}", images=["img"])
    assert len(plan.prompts) == 1 and plan.weights == [2]  # same bytes: one prompt
    text, ref = plan.prompts[0]
    assert text == "what?" and ref.kind == "image"


def test_a_template_without_columns_or_media_is_refused() -> None:
    with pytest.raises(ConfigError, match="uses no column"):
        build_plan(pd.DataFrame({"a": [1]}), "Hello")


def test_unknown_media_columns_are_named() -> None:
    with pytest.raises(ConfigError, match=r"images=.*no column named 'pic'"):
        build_plan(pd.DataFrame({"a": [1]}), "{a}", images=["pic"])


def test_a_callable_template_gets_the_row_and_none_skips_it() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3]})
    plan = build_plan(frame, lambda row: None if row["a"] == 2 else f"n={row['a']}")
    assert plan.prompts == ["n=1", "n=3"]
    assert plan.skipped == {1: "skipped: the template function returned None"}


def test_duplicate_column_names_are_refused() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(ConfigError, match="duplicate column names"):
        build_plan(frame, "{a}")


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("positive", "positive"),
        ("Positive.", "positive"),
        ("**NEGATIVE**", "negative"),
        ("'negative'", "negative"),
        ("Label: positive", "positive"),
        ('{"label": "negative"}', "negative"),
        ("The sentiment of this review is positive.", "positive"),
        ("Negative. It is not positive at all.", "negative"),
        ("very positive", "very positive"),
    ],
)
def test_labels_are_read_from_how_models_answer(answer: str, label: str) -> None:
    assert match_label(answer, ["positive", "negative", "very positive"]) == label


@pytest.mark.parametrize("answer", ["neutral", "", "positive or negative, hard to say"])
def test_answers_naming_no_label_or_several_are_errors(answer: str) -> None:
    with pytest.raises(ValueError, match="label"):
        match_label(answer, ["positive", "negative"])


@pytest.mark.parametrize(
    ("answer", "value"),
    [
        ("yes", True),
        ("Yes.", True),
        ("YES!", True),
        ("true", True),
        ('{"answer": "no"}', False),
        ("No, it is about cars.", False),
        ("False", False),
        ("**no**", False),
        ("I think yes", True),
    ],
)
def test_yes_no_answers_are_read_forgivingly(answer: str, value: bool) -> None:
    assert parse_yes_no(answer) is value


@pytest.mark.parametrize("answer", ["maybe", "", "yes and no"])
def test_unclear_yes_no_answers_are_errors(answer: str) -> None:
    with pytest.raises(ValueError):
        parse_yes_no(answer)

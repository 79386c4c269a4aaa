"""lm.Template: variables, rendering with the %%llm brace-safe grammar, defaults, composition
(extend_system, with_defaults), the conversation methods (render_system, render_turn), and
the errors a person reads. No network here."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import pytest

import llm_magics as lm
from llm_magics._core.types import MediaPart, Message, TextPart

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def bug_finder() -> lm.Template:
    return lm.Template(
        "bug_finder",
        system="You are a senior {language} reviewer.",
        user="Language: {language}\n\nCode:\n```\n{code}\n```",
        defaults={"language": "Python"},
    )


def texts(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in messages]


def test_variables_are_listed_once_in_order_of_appearance_system_first() -> None:
    t = lm.Template("t", system="Talk like {persona}.", user="{question} (asked by {persona})")
    assert t.variables == ("persona", "question")
    assert t.required == ("persona", "question")
    assert bug_finder().variables == ("language", "code")
    assert bug_finder().required == ("code",)


def test_render_gives_the_system_and_the_user_message() -> None:
    assert texts(bug_finder().render(code="x = 1")) == [
        ("system", "You are a senior Python reviewer."),
        ("user", "Language: Python\n\nCode:\n```\nx = 1\n```"),
    ]


def test_a_template_without_system_text_renders_the_user_message_alone() -> None:
    assert texts(lm.Template("q", user="Q: {q}").render(q="why?")) == [("user", "Q: why?")]


def test_braces_inside_values_are_never_read_again() -> None:
    code = 'print(f"{name}") ; d = {"a": {"b": 1}} ; {{x}} {language}'
    (_, user) = bug_finder().render(code=code)
    assert user.text.endswith(f"```\n{code}\n```")


def test_json_and_code_in_a_template_stay_literal_and_doubled_placeholders_are_escapes() -> None:
    t = lm.Template(
        "j",
        user='Answer like {"name": "Ada", "tags": {"x": 1}} for {text}; in C: { return x; }; '
        "literally {{text}}",
    )
    assert t.variables == ("text",)
    (user,) = t.render(text="Bob {0}")
    assert user.text == (
        'Answer like {"name": "Ada", "tags": {"x": 1}} for Bob {0}; in C: { return x; }; '
        "literally {text}"
    )


def test_format_specs_conversions_and_steps_work_as_in_cells() -> None:
    @dataclass
    class Row:
        title: str

    t = lm.Template("f", user="{score:.2f} {name!r} {row.title} {cfg[model]} {xs[-1]}")
    assert t.variables == ("score", "name", "row", "cfg", "xs")
    (user,) = t.render(score=0.5, name="Ada", row=Row("T"), cfg={"model": "m"}, xs=[1, 2])
    assert user.text == "0.50 'Ada' T m 2"


def test_a_value_the_spec_cannot_format_is_an_error_naming_the_template() -> None:
    with pytest.raises(lm.ConfigError, match=r"template 'f' \(user text\).*\{x:\.2f\}"):
        lm.Template("f", user="{x:.2f}").render(x="not a number")


def test_a_missing_variable_names_it_the_template_and_the_variables_it_takes() -> None:
    with pytest.raises(lm.ConfigError) as info:
        bug_finder().render()
    message = str(info.value)
    assert "template 'bug_finder' needs a value for {code}" in message
    assert "pass code=..." in message
    assert "language='Python', code" in message


def test_an_unknown_variable_is_refused_with_the_closest_name() -> None:
    with pytest.raises(lm.ConfigError, match=r"no variable 'cod'\. Did you mean code\?"):
        bug_finder().render(cod="x")
    with pytest.raises(lm.ConfigError, match=r"with_defaults\(\).*no variable 'langage'"):
        bug_finder().with_defaults(langage="Go")


def test_a_default_applies_when_no_value_is_given_and_a_value_given_at_call_time_wins() -> None:
    t = bug_finder()
    assert "Python" in t.render(code="x")[1].text
    rendered = t.render(code="x", language="Go")
    assert texts(rendered)[0] == ("system", "You are a senior Go reviewer.")
    assert "Language: Go" in rendered[1].text


def test_with_defaults_and_extend_system_return_new_templates_and_leave_the_original() -> None:
    t = bug_finder()
    go = t.with_defaults(language="Go", code="pass")
    longer = t.extend_system("Always show your work step by step.")
    assert go is not t and longer is not t
    assert (
        t.defaults == {"language": "Python"} and t.system == "You are a senior {language} reviewer."
    )
    assert go.defaults == {"language": "Go", "code": "pass"} and go.required == ()
    assert texts(go.render())[1] == ("user", "Language: Go\n\nCode:\n```\npass\n```")
    assert longer.system == (
        "You are a senior {language} reviewer.\n\nAlways show your work step by step."
    )
    assert longer.defaults == t.defaults and longer.name == t.name and longer.user == t.user


def test_extend_system_may_add_variables_and_composes_with_with_defaults() -> None:
    t = lm.templates.chain_of_thought.extend_system("Answer in {language}.").with_defaults(
        language="French"
    )
    assert t.variables == ("language", "question")
    system, user = t.render(question="2+2?")
    assert system.text.endswith("\n\nAnswer in French.") and user.text == "2+2?"


def test_extend_system_on_a_template_without_system_text_is_just_that_text() -> None:
    t = lm.Template("q", user="{q}").extend_system("  Be brief.  ")
    assert t.system == "Be brief."


def test_defaults_are_read_only() -> None:
    with pytest.raises(TypeError):
        bug_finder().defaults["language"] = "Go"  # type: ignore[index]


def test_repr_shows_the_name_the_variables_and_the_defaults() -> None:
    assert repr(bug_finder()) == (
        "Template('bug_finder', variables=['language', 'code'], defaults={'language': 'Python'})"
    )
    assert repr(lm.Template("q", user="{q}")) == "Template('q', variables=['q'])"


def test_a_variable_named_like_a_chat_option_is_refused() -> None:
    for name in ("system", "temperature", "schema", "prompt"):
        with pytest.raises(lm.ConfigError, match=rf"uses the name '{name}'.*rename"):
            lm.Template("t", user=f"{{{name}}}")
    # As a literal it is fine.
    assert lm.Template("t", user="{{system}} {x}").variables == ("x",)


def test_bad_names_defaults_and_main_are_refused_with_what_to_do() -> None:
    with pytest.raises(lm.ConfigError, match="Python identifier"):
        lm.Template("bug finder", user="{x}")
    with pytest.raises(lm.ConfigError, match="defaults: template 't' has no variable 'y'"):
        lm.Template("t", user="{x}", defaults={"y": 1})
    with pytest.raises(lm.ConfigError, match="main='q' must be a variable of the user text"):
        lm.Template("t", system="{q}", user="{x}", main="q")
    with pytest.raises(lm.ConfigError, match="the user of template 't' must be a string"):
        lm.Template("t", user=["{x}"])  # type: ignore[arg-type]


def test_the_main_variable_is_given_or_the_last_user_variable_without_a_default() -> None:
    assert bug_finder().main == "code"
    assert lm.Template("t", user="{a} {b}", main="a").main == "a"
    assert lm.Template("t", user="{a} in a {b} mood", defaults={"b": "calm"}).main == "a"
    assert lm.Template("t", user="{a} {b}", defaults={"a": 1, "b": 2}).main == "b"
    assert bug_finder().with_defaults(code="x").main == "code"  # kept by derived templates
    assert lm.Template("t", system="{a}", user="Hello").main is None
    assert lm.Template("t").user == "{input}" and lm.Template("t").main == "input"


def test_media_values_become_parts_of_the_user_message_at_their_place() -> None:
    image = MediaPart("image", "image/png", data=PNG)
    (user,) = lm.Template("v", user="Before {img} after {n}").render(img=image, n=2)
    assert isinstance(user.content, list)
    assert user.content[0] == TextPart("Before ") and user.content[2] == TextPart(" after 2")
    assert isinstance(user.content[1], MediaPart) and user.content[1].data == PNG


def test_a_media_value_in_the_system_text_is_refused() -> None:
    image = MediaPart("image", "image/png", data=PNG)
    with pytest.raises(lm.ConfigError, match="system prompt is text only"):
        lm.Template("v", system="Look: {img}", user="{q}").render(img=image, q="?")


def test_render_system_needs_only_the_variables_of_the_system_text() -> None:
    assert bug_finder().render_system() == "You are a senior Python reviewer."
    assert bug_finder().render_system(language="Go") == "You are a senior Go reviewer."
    with pytest.raises(lm.ConfigError, match=r"needs a value for \{persona\}"):
        lm.templates.persona.render_system()


def test_render_turn_fills_the_main_variable_with_the_turns_text() -> None:
    turn = bug_finder().render_turn("def f(): return {x}", language="Go")
    assert turn.role == "user"
    assert turn.text == "Language: Go\n\nCode:\n```\ndef f(): return {x}\n```"
    with pytest.raises(lm.ConfigError, match=r"fills \{code\}; do not pass code="):
        bug_finder().render_turn("x", code="y")


def test_render_turn_of_a_template_without_user_variables_appends_the_text() -> None:
    assert lm.Template("p", system="Be a pirate.", user="").render_turn("Hi").text == "Hi"
    assert lm.Template("p", user="Note:").render_turn("Hi").text == "Note:\n\nHi"


def test_render_turn_takes_text_and_media_parts_and_attaches_the_media_after_the_text() -> None:
    image = MediaPart("image", "image/png", data=PNG)
    turn = lm.templates.qa.render_turn([TextPart("What is "), image, "in the picture?"])
    assert isinstance(turn.content, list)
    assert turn.content[0] == TextPart("What is in the picture?") and turn.content[1] is image


def test_a_templates_doc_is_its_description() -> None:
    assert lm.templates.rag_qa.__doc__.startswith("rag_qa: Answer a question from retrieved")
    assert "variables: context, question" in lm.templates.rag_qa.__doc__
    assert lm.Template.__doc__.startswith("A prompt template")


def test_templates_compare_by_content_and_pickle() -> None:
    assert bug_finder() == bug_finder()
    assert bug_finder() != bug_finder().with_defaults(language="Go")
    assert pickle.loads(pickle.dumps(bug_finder())) == bug_finder()


def test_describe_shows_variables_main_texts_and_source() -> None:
    text = lm.templates.translate.describe()
    assert text.startswith("translate: Translate a text into language")
    assert "variables: language='English', text" in text
    assert "main variable (a cell body or a conversation turn): text" in text
    assert "source: built-in" in text

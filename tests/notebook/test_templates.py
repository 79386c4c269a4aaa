"""%%llm --template NAME [--var K=V] and %llm templates [NAME] in a real InteractiveShell: the
body fills the main variable, other variables come from --var, notebook names or defaults,
the template's system prompt is the cell's, and every mistake is one UsageError line sent
before anything reaches the provider (a scripted OpenAI backend validated against the spec)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import llm_magics as lm
from tests.magics_helpers import MODEL, FakeOpenAI, fake, ip

__all__ = ["fake", "ip"]  # fixtures


def run(shell: Any, line: str, cell: str = "") -> Any:
    with capture_output() as captured:
        shell.run_cell_magic("llm", f"{MODEL} --no-stream {line}", cell)
    return captured


def line(shell: Any, text: str) -> str:
    with capture_output() as captured:
        shell.run_line_magic("llm", text)
    return captured.stdout


def messages(fake: FakeOpenAI) -> list[dict[str, Any]]:
    return fake.bodies[-1]["messages"]  # type: ignore[no-any-return]


def test_the_body_fills_the_main_variable_and_var_the_others(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "--template translate --var language=French", 'Hello {{x}} and {"a": 1}')
    assert messages(fake) == [
        {"role": "system", "content": lm.templates.translate.render_system(language="French")},
        {"role": "user", "content": 'Hello {x} and {"a": 1}'},
    ]
    assert ip.user_ns["_llm"].text == 'echo: Hello {x} and {"a": 1}'


def test_the_body_is_interpolated_as_usual_and_values_are_not_read_again(
    ip: Any, fake: FakeOpenAI
) -> None:
    ip.user_ns["snippet"] = 'print(f"{name}")'
    run(ip, "--template code_review", "{snippet}")
    assert messages(fake)[-1]["content"] == (
        'Review this Python code:\n\n```\nprint(f"{name}")\n```'
    )


def test_other_variables_come_from_notebook_names_and_var_wins_over_them(
    ip: Any, fake: FakeOpenAI
) -> None:
    ip.user_ns["context"] = "The Eiffel Tower was finished in 1889."
    run(ip, "--template rag_qa", "When was it finished?")
    assert messages(fake)[-1]["content"] == (
        "Context:\nThe Eiffel Tower was finished in 1889.\n\nQuestion: When was it finished?"
        "\nAnswer:"
    )
    run(ip, '--template rag_qa --var "context=Rome was not built in a day."', "Was it?")
    assert messages(fake)[-1]["content"].startswith("Context:\nRome was not built in a day.")


def test_a_notebook_template_variable_is_used_by_name(ip: Any, fake: FakeOpenAI) -> None:
    ip.user_ns["pirate"] = lm.Template("pirate", system="Talk like a pirate.", user="{line}!")
    run(ip, "--template pirate", "Hello")
    assert messages(fake) == [
        {"role": "system", "content": "Talk like a pirate."},
        {"role": "user", "content": "Hello!"},
    ]


def test_a_blank_body_leaves_the_variables_to_var_and_the_defaults(
    ip: Any, fake: FakeOpenAI
) -> None:
    # IPython refuses a cell magic with no body at all; a blank line is the empty body.
    run(ip, '--template summarise --var "text=A long story." --var length=one\\ line', "\n")
    assert (
        messages(fake)[-1]["content"]
        == "Summarise the following text in one line.\n\nA long story."
    )


def test_explain_error_sends_the_latest_error_of_the_notebook(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_cell("{}['missing']")
    run(ip, "--template explain_error", "{Err[-1]}")
    user = messages(fake)[-1]["content"]
    assert user.startswith("My notebook cell failed with this error:\n\n```\n")
    assert "KeyError: 'missing'" in user and user.endswith("What went wrong, and how do I fix it?")


def test_s_comes_first_and_the_templates_system_prompt_after_it(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_line_magic("config", 'LLMMagics.default_system = "Default system."')
    run(ip, "--template qa", "Why?")
    assert messages(fake)[0]["content"] == lm.templates.qa.system  # no default system
    run(ip, '--template qa -s "Be brief."', "Why?")
    assert messages(fake)[0]["content"] == f"Be brief.\n\n{lm.templates.qa.system}"


def test_images_are_attached_after_the_templates_text(
    ip: Any, fake: FakeOpenAI, tmp_path: Path
) -> None:
    from PIL import Image

    path = tmp_path / "dot.png"
    Image.new("RGB", (2, 2), "red").save(path)
    run(ip, f"--template qa --image {path}", "What colour is it?")
    content = messages(fake)[-1]["content"]
    assert content[0] == {"type": "text", "text": "What colour is it?"}
    assert content[1]["type"] == "image_url"


@pytest.mark.parametrize(
    ("args", "body", "says"),
    [
        ("--template tranlsate", "x", "no template named 'tranlsate'. Did you mean 'translate'"),
        ("--template code_review --var lang=Go", "x", "has no variable 'lang'. Did you mean language?"),
        ("--template persona", "Hi", "template 'persona' needs a value for {persona} (--var NAME=VALUE"),
        ("--template qa", "\n", "needs a value for {question} (--var NAME=VALUE on the %%llm line, or a notebook variable of that name; the cell body fills {question})"),
        ("--template qa --var question=x", "y", "the cell body fills {question}"),
        ("--template qa --var question", "x", "--var question: write NAME=VALUE"),
        ("--var a=b", "Hi", "--var gives a value to a template variable: use it with --template"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_errors_and_send_nothing(
    ip: Any, fake: FakeOpenAI, args: str, body: str, says: str
) -> None:
    with pytest.raises(UsageError) as info:
        run(ip, args, body)
    assert says in str(info.value)
    assert fake.bodies == []


def test_percent_llm_templates_lists_them_and_shows_one(ip: Any) -> None:
    listing = line(ip, "templates")
    for name in lm.templates.names():
        assert f"\n{name} " in listing
    assert "LLM_MAGICS_TEMPLATES_DIR" in listing
    shown = line(ip, "templates rag_qa")
    assert shown == lm.templates.rag_qa.describe() + "\n"
    with pytest.raises(UsageError, match="Did you mean 'rag_qa'"):
        line(ip, "templates rag")
    assert "templates" in line(ip, "help")


def test_percent_llm_templates_reports_a_broken_file(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_MAGICS_TEMPLATES_DIR", str(tmp_path))
    (tmp_path / "ok.toml").write_text('user = "{x}"\n', encoding="utf-8")
    (tmp_path / "bad.toml").write_text("user = 1\n", encoding="utf-8")
    listing = line(ip, "templates")
    assert "\nok " in listing and "file: ok.toml" in listing
    assert f"Not loaded: template file {tmp_path / 'bad.toml'}: user: must be a string" in listing


def test_a_template_cell_in_a_session_sends_the_earlier_turns(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "--template translate --var language=French --session trip", "Hello")
    run(ip, "--template translate --var language=French --session trip", "Goodbye")
    sent = messages(fake)
    assert sent[0]["role"] == "system" and "into French" in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == ["Hello", "echo: Hello", "Goodbye"]

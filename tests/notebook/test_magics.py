"""%%llm in a real InteractiveShell: loading, help, settings, every cell option and the errors
a person meets. Provider traffic goes to a scripted OpenAI backend whose every request body and
stream event is validated against OpenAI's published spec."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output
from pydantic import BaseModel

import llm_magics as lm
from llm_magics._core.types import Response
from tests.magics_helpers import (
    KEY,
    MODEL,
    FakeOpenAI,
    fake,
    ip,
    last_user_text,
    magics_of,
    outputs,
)

__all__ = ["fake", "ip"]  # fixtures


def run(shell: Any, line: str, cell: str) -> Any:
    with capture_output() as captured:
        shell.run_cell_magic("llm", line, cell)
    return captured


def answer_outputs(captured: Any) -> list[dict[str, Any]]:
    """The display messages of the answer itself (not the usage line)."""
    return [
        o for o in outputs(captured) if "llm-magics-usage" not in o["data"].get("text/html", "")
    ]


def final(captured: Any) -> dict[str, Any]:
    return answer_outputs(captured)[-1]["data"]


# --- loading, help, settings -----------------------------------------------------------------


def test_load_ext_registers_the_line_and_cell_magic_and_unload_removes_them(ip: Any) -> None:
    assert ip.find_cell_magic("llm") is not None and ip.find_line_magic("llm") is not None
    ip.extension_manager.unload_extension("llm_magics")
    assert ip.find_cell_magic("llm") is None and ip.find_line_magic("llm") is None
    assert not any(type(c).__name__ == "LLMMagics" for c in ip.configurables)
    ip.extension_manager.load_extension("llm_magics")
    assert ip.find_cell_magic("llm") is not None


def test_cell_help_documents_every_option_the_line_commands_and_the_brace_rules(ip: Any) -> None:
    with capture_output() as captured:
        ip.run_cell("%%llm?\n")
    help_text = captured.stdout
    for option in (
        "-s SYSTEM",
        "--temperature",
        "--max-tokens",
        "-f",
        "-o VAR",
        "--no-cache",
        "--no-stream",
        "--session",
        "--image EXPR",
        "--audio EXPR",
        "--schema",
        "--raw",
    ):
        assert option in help_text, option
    for command in (
        "%llm list",
        "%llm models",
        "%llm use",
        "%llm alias",
        "%llm register",
        "%llm keys",
        "%llm usage",
        "%llm cache",
        "%llm history",
        "%llm reset",
        "%llm export",
        "%llm help",
    ):
        assert command in help_text, command
    assert "{{name}}" in help_text and "{Err[-1]}" in help_text
    assert "%config LLMMagics" in help_text


def test_settings_are_traitlets_changed_with_config(ip: Any, fake: FakeOpenAI) -> None:
    with capture_output() as captured:
        ip.run_line_magic("config", "LLMMagics")
    for name in ("default_model", "default_format", "stream", "max_history", "show_usage"):
        assert f"LLMMagics.{name}" in captured.stdout
    ip.run_line_magic("config", 'LLMMagics.default_model = "openai:gpt-4.1-nano"')
    ip.run_line_magic("config", 'LLMMagics.default_format = "text"')
    ip.run_line_magic("config", "LLMMagics.temperature = 0.25")
    ip.run_line_magic("config", "LLMMagics.max_tokens = 9")
    ip.run_line_magic("config", 'LLMMagics.default_system = "Be terse."')
    captured = run(ip, "", "hello")
    body = fake.bodies[-1]
    assert body["model"] == "gpt-4.1-nano"
    assert (body["temperature"], body["max_completion_tokens"]) == (0.25, 9)
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert "text/markdown" not in final(captured)


def test_a_bad_config_value_is_refused_by_traitlets(
    ip: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ip.run_cell('%config LLMMagics.default_format = "pdf"')
    assert (
        "expected any of ['markdown', 'text', 'code', 'json', 'html'], not the str 'pdf'"
        in caplog.text
    )
    assert magics_of(ip).default_format == "markdown"


def test_loading_the_extension_imports_no_heavy_module_nor_builds_the_command_parsers() -> None:
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "ip.run_line_magic('load_ext', 'llm_magics')\n"
        "heavy = [m for m in ('httpx2', 'pandas', 'numpy', 'PIL', 'ipywidgets', 'diskcache',"
        " 'llm_magics.notebook.commands') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- a cell and its answer -------------------------------------------------------------------


def test_the_answer_streams_into_one_display_and_is_stored_in_llm(
    ip: Any, fake: FakeOpenAI
) -> None:
    captured = run(ip, "", "What is the capital of France?")
    shown = answer_outputs(captured)
    ids = {o["transient"]["display_id"] for o in shown}
    assert len(ids) == 1, "every update goes to the one display of this cell"
    assert shown[0]["update"] is False and all(o["update"] for o in shown[1:])
    response = ip.user_ns["_llm"]
    assert isinstance(response, Response)
    assert response.text == "echo: What is the capital of France?"
    assert final(captured)["text/markdown"] == response.text
    assert fake.bodies[-1]["stream"] is True
    fake.transport.assert_clean()


def test_the_model_is_the_first_word_of_the_line(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "openai:gpt-4.1-mini -t 0", "hi")
    assert fake.bodies[-1]["model"] == "gpt-4.1-mini"
    run(ip, "-t 0 openai:o4-mini", "hi")
    assert fake.bodies[-1]["model"] == "o4-mini"


def test_a_quoted_system_prompt_with_spaces_and_quotes_is_one_option(
    ip: Any, fake: FakeOpenAI
) -> None:
    run(ip, """-s "You are a terse assistant. Say 'ok' {x}." """ + MODEL, "hi")
    assert fake.bodies[-1]["messages"][0] == {
        "role": "system",
        "content": "You are a terse assistant. Say 'ok' {x}.",
    }
    run(ip, "--system='It''s fine'", "hi")
    assert fake.bodies[-1]["messages"][0]["content"] == "Its fine"


def test_temperature_and_max_tokens_reach_the_request(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "-t 0.7 --max-tokens 12", "hi")
    body = fake.bodies[-1]
    assert (body["temperature"], body["max_completion_tokens"]) == (0.7, 12)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("-t 3", "between 0 and 2"),
        ("-t warm", "invalid float value: 'warm'"),
        ("--max-tokens 0", "positive"),
        ("--max-tokens many", "invalid int value"),
        ("--bogus", "unrecognized arguments: --bogus"),
        ("-f pdf", "invalid choice: 'pdf'"),
        ('-s "unclosed', "check the quotes"),
        ("-o 2x", "-o needs a variable name"),
        ("-o class", "-o needs a variable name"),
        ("a b", "unrecognized arguments: b"),
    ],
)
def test_bad_options_are_usage_errors_that_say_what_is_wrong(
    ip: Any, fake: FakeOpenAI, line: str, says: str
) -> None:
    with pytest.raises(UsageError, match=says.replace("(", r"\(")):
        ip.run_cell_magic("llm", line, "hi")
    assert fake.bodies == [], "nothing is sent when the line is wrong"


def test_an_empty_cell_is_a_usage_error(ip: Any, fake: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match="the %%llm cell is empty"):
        ip.run_cell_magic("llm", "", "  \n\n")


def test_a_usage_error_shows_as_one_line_without_traceback(ip: Any, fake: FakeOpenAI) -> None:
    with capture_output() as captured:
        result = ip.run_cell("%%llm -t 9\nhi\n")
    assert isinstance(result.error_in_exec, UsageError)
    assert captured.stderr.strip().startswith("UsageError: -t (temperature)")
    assert "Traceback" not in captured.stdout + captured.stderr


# --- formats ---------------------------------------------------------------------------------


def test_text_and_html_formats_use_their_mime_types(ip: Any, fake: FakeOpenAI) -> None:
    fake.reply = "<b>bold</b> *not markdown*"
    assert final(run(ip, "-f text", "a")) == {"text/plain": fake.reply}
    shown = final(run(ip, "-f html", "b"))
    assert shown["text/html"] == fake.reply and "text/markdown" not in shown


def test_code_format_offers_the_fenced_code_as_the_next_cell(ip: Any, fake: FakeOpenAI) -> None:
    fake.reply = "Here:\n```bash\npip install x\n```\nthen\n```python\nprint({'a': 1})\n```\nDone."
    captured = run(ip, "-f code", "write code")
    assert ip.rl_next_input == "print({'a': 1})"
    assert final(captured)["text/markdown"] == fake.reply


def test_code_format_without_a_fence_offers_the_whole_answer(ip: Any, fake: FakeOpenAI) -> None:
    fake.reply = "x = 1\nprint(x)"
    run(ip, "-f code", "code please")
    assert ip.rl_next_input == "x = 1\nprint(x)"


def test_json_format_asks_for_json_parses_displays_and_stores_the_value(
    ip: Any, fake: FakeOpenAI
) -> None:
    fake.reply = '{"city": "Paris", "population": 2102650}'
    captured = run(ip, "-f json -o facts", "Facts about Paris")
    body = fake.bodies[-1]
    assert body["response_format"] == {"type": "json_object"}
    assert "JSON" in body["messages"][0]["content"], "OpenAI's JSON mode needs the word JSON"
    assert final(captured)["application/json"] == {"city": "Paris", "population": 2102650}
    assert ip.user_ns["facts"] == {"city": "Paris", "population": 2102650}
    assert ip.user_ns["_llm"].text == fake.reply


def test_json_format_with_an_answer_that_is_not_json_keeps_the_text(
    ip: Any, fake: FakeOpenAI
) -> None:
    fake.reply = "Sorry, I cannot."
    captured = run(ip, "-f json -o facts", "Give JSON")
    assert "not valid JSON" in captured.stderr
    assert final(captured) == {"text/plain": "Sorry, I cannot."}
    assert isinstance(ip.user_ns["facts"], Response)


class City(BaseModel):
    name: str
    country: str


def test_schema_parses_into_the_pydantic_model_and_o_stores_it(ip: Any, fake: FakeOpenAI) -> None:
    ip.user_ns["City"] = City
    fake.reply = '{"name": "Paris", "country": "France"}'
    captured = run(ip, "--schema City -o city", "Capital of France")
    assert fake.bodies[-1]["response_format"]["type"] == "json_schema"
    assert ip.user_ns["city"] == City(name="Paris", country="France")
    assert final(captured)["application/json"] == {"name": "Paris", "country": "France"}


@pytest.mark.parametrize("line", ["--schema City -o p", "--schema City -o p --no-stream"])
def test_an_answer_that_fails_its_schema_shows_whole_and_is_kept_in_llm_and_the_variable(
    ip: Any, fake: FakeOpenAI, line: str
) -> None:
    # Case 14 of the hardening issue: it used to leave a truncated answer, the previous
    # cell's _llm and p unset.
    ip.user_ns["City"] = City
    run(ip, "", "an earlier question")
    fake.reply = "Paris is the capital, and it is in France, as everyone knows."
    with capture_output() as captured, pytest.raises(lm.OutputParseError) as info:
        ip.run_cell_magic("llm", line, "Capital of France")
    assert ip.user_ns["_llm"].text == fake.reply
    assert ip.user_ns["p"] is ip.user_ns["_llm"]
    assert final(captured) == {"text/plain": fake.reply}
    rendered = info.value._render_traceback_()  # type: ignore[attr-defined]
    assert len(rendered) == 1 and "_llm and p hold the Response" in rendered[0]


def test_schema_names_an_unknown_variable(ip: Any, fake: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match="--schema Citty: no variable named 'Citty'"):
        ip.run_cell_magic("llm", "--schema Citty", "x")


# --- -o, --no-stream, --no-cache -------------------------------------------------------------


def test_o_stores_the_response_in_the_variable(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "-o answer", "hello there")
    assert ip.user_ns["answer"] is ip.user_ns["_llm"]
    assert str(ip.user_ns["answer"]) == "echo: hello there"


def test_no_stream_sends_one_request_and_shows_the_answer_once(ip: Any, fake: FakeOpenAI) -> None:
    captured = run(ip, "--no-stream", "quiet please")
    assert "stream" not in fake.bodies[-1]
    shown = answer_outputs(captured)
    assert [o["data"]["text/plain"] for o in shown] == ["echo: quiet please"]
    ip.run_line_magic("config", "LLMMagics.stream = False")
    run(ip, "", "again")
    assert "stream" not in fake.bodies[-1]


def test_a_rerun_is_served_from_the_cache_unless_no_cache(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "-t 0", "same question")
    run(ip, "-t 0", "same question")
    assert len(fake.bodies) == 1, "the second run is a cache hit"
    assert ip.user_ns["_llm"].cached
    captured = run(ip, "-t 0 --no-cache", "same question")
    assert len(fake.bodies) == 2 and not ip.user_ns["_llm"].cached
    assert final(captured)["text/markdown"] == "echo: same question"


# --- sessions --------------------------------------------------------------------------------


def test_a_session_sends_the_earlier_turns_and_keeps_its_system_prompt(
    ip: Any, fake: FakeOpenAI
) -> None:
    run(ip, '--session trip -s "You plan trips."', "Where is Lyon?")
    run(ip, "--session trip", "And how far from Paris?")
    messages = fake.bodies[-1]["messages"]
    assert [(m["role"], m["content"]) for m in messages] == [
        ("system", "You plan trips."),
        ("user", "Where is Lyon?"),
        ("assistant", "echo: Where is Lyon?"),
        ("user", "And how far from Paris?"),
    ]
    run(ip, "", "Unrelated")
    assert len(fake.bodies[-1]["messages"]) == 1, "cells without --session have no history"
    assert len(magics_of(ip).sessions.get("trip")) == 2


def test_max_history_limits_the_turns_a_session_sends(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_line_magic("config", "LLMMagics.max_history = 1")
    for i in range(3):
        run(ip, "--session s", f"q{i}")
    users = [m["content"] for m in fake.bodies[-1]["messages"] if m["role"] == "user"]
    assert users == ["q1", "q2"]
    assert len(magics_of(ip).sessions.get("s")) == 3


# --- media -----------------------------------------------------------------------------------


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3, 3), "blue").save(buf, format="PNG")
    return buf.getvalue()


def _wav() -> bytes:
    import io
    import wave

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 1600)
    return buf.getvalue()


def content_types(body: dict[str, Any]) -> list[str]:
    content = body["messages"][-1]["content"]
    return ["text"] if isinstance(content, str) else [p["type"] for p in content]


def test_image_options_take_variables_attributes_items_and_paths(
    ip: Any, fake: FakeOpenAI, tmp_path: Path
) -> None:
    png = _png()
    path = tmp_path / "pic.png"
    path.write_bytes(png)

    class Holder:
        image = lm.Image(png)

    ip.user_ns.update(img=lm.Image(png), holder=Holder(), frames=[png])
    run(ip, f"--image img --image holder.image --image frames[0] --image {path}", "Compare")
    body = fake.bodies[-1]
    assert content_types(body) == ["text", "image_url", "image_url", "image_url", "image_url"]
    urls = [p["image_url"]["url"] for p in body["messages"][-1]["content"][1:]]
    assert all(u.startswith("data:image/png;base64,") for u in urls)


def test_an_image_url_is_passed_as_a_url(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "--image https://example.org/cat.png", "What animal?")
    part = fake.bodies[-1]["messages"][-1]["content"][1]
    assert part == {"type": "image_url", "image_url": {"url": "https://example.org/cat.png"}}


def test_a_placeholder_holding_an_image_puts_it_at_that_place(ip: Any, fake: FakeOpenAI) -> None:
    ip.user_ns["before"] = lm.Image(_png())
    run(ip, "", "Look at {before} and tell me {{what}}")
    content = fake.bodies[-1]["messages"][-1]["content"]
    assert [p["type"] for p in content] == ["text", "image_url", "text"]
    assert (content[0]["text"], content[2]["text"]) == ("Look at ", " and tell me {what}")


def test_audio_option_sends_input_audio(ip: Any, fake: FakeOpenAI) -> None:
    ip.user_ns["clip"] = _wav()
    run(ip, "openai:gpt-4o-audio-preview --audio clip", "Transcribe")
    part = fake.bodies[-1]["messages"][-1]["content"][1]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("--image nothing_here", "--image nothing_here: no variable named 'nothing_here'"),
        ("--image 'f(x)'", "is not a variable reference"),
        ("--image words", "--image words"),
        ("--audio pic", "audio"),
    ],
)
def test_bad_media_options_name_the_expression(
    ip: Any, fake: FakeOpenAI, line: str, says: str
) -> None:
    ip.user_ns.update(words="just some text", pic=_png())
    with pytest.raises(UsageError, match=says.replace("(", r"\(").replace(")", r"\)")):
        ip.run_cell_magic("llm", line, "x")
    assert fake.bodies == []


def test_a_provider_that_takes_no_audio_is_a_usage_error_before_sending(
    ip: Any, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEREBRAS_API_KEY", "csk-test-123456789")
    ip.user_ns["clip"] = _wav()
    with pytest.raises(UsageError, match="cerebras does not support audio"):
        ip.run_cell_magic("llm", "cerebras:llama3.1-8b --audio clip", "x")


# --- models and keys -------------------------------------------------------------------------


def test_an_unknown_model_is_a_usage_error_listing_what_exists(ip: Any, fake: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match=r"unknown model 'gtp4'.*provider:model"):
        ip.run_cell_magic("llm", "gtp4", "hi")
    with pytest.raises(UsageError, match="unknown provider 'opnai'"):
        ip.run_cell_magic("llm", "opnai:gpt-4o", "hi")


def test_a_missing_key_is_a_usage_error_naming_the_variable_and_local(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UsageError, match=r"OPENAI_API_KEY.*`local`"):
        ip.run_cell_magic("llm", "openai:gpt-4o-mini", "hi")


# --- provider failures -----------------------------------------------------------------------


def test_a_provider_failure_keeps_its_type_but_renders_as_one_line(
    ip: Any, fake: FakeOpenAI
) -> None:
    fake.status = 401
    with pytest.raises(lm.AuthenticationError) as info:
        ip.run_cell_magic("llm", "", "hi")
    rendered = info.value._render_traceback_()  # type: ignore[attr-defined]
    assert len(rendered) == 1 and "AuthenticationError" in rendered[0]
    assert "OPENAI_API_KEY" in rendered[0] and KEY not in rendered[0]
    with capture_output() as captured:
        result = ip.run_cell("%%llm\nhi again\n")
    assert isinstance(result.error_in_exec, lm.AuthenticationError)
    assert "Traceback" not in captured.stdout and captured.stdout.count("\n") == 1
    assert "_llm" not in ip.user_ns


def test_the_raw_option_sends_the_cell_exactly_as_written(ip: Any, fake: FakeOpenAI) -> None:
    cell = "Keep {undefined} and {{double}} and {0} as is"
    run(ip, "--raw", cell)
    assert last_user_text(fake.bodies[-1]) == cell


def test_the_usage_line_shows_model_tokens_and_time_and_can_be_turned_off(
    ip: Any, fake: FakeOpenAI
) -> None:
    captured = run(ip, "", "hi")
    usage = [o for o in outputs(captured) if "llm-magics-usage" in o["data"].get("text/html", "")]
    assert len(usage) == 1
    line = usage[0]["data"]["text/plain"]
    assert "openai:gpt-4o-mini" in line and "11 → 7 tokens" in line and " s" in line
    assert "$" in line, "gpt-4o-mini has a known price, so the cost is shown"
    ip.run_line_magic("config", "LLMMagics.show_usage = False")
    captured = run(ip, "", "hi again")
    assert not any("llm-magics-usage" in o["data"].get("text/html", "") for o in outputs(captured))


def test_json_output_of_o_is_plain_data_that_json_can_dump(ip: Any, fake: FakeOpenAI) -> None:
    fake.reply = '[1, 2, {"three": 3}]'
    run(ip, "-f json -o data", "list")
    assert json.dumps(ip.user_ns["data"]) == '[1, 2, {"three": 3}]'


@pytest.mark.model
def test_a_cell_on_the_embedded_local_model_streams_a_real_answer(ip: Any) -> None:
    pytest.importorskip("llama_cpp", reason="the [local] extra is not installed")
    captured = run(ip, "local -t 0 --max-tokens 20", "What is the capital of France?")
    response = ip.user_ns["_llm"]
    assert "Paris" in response.text and response.provider == "local"
    updates = answer_outputs(captured)
    # A "…" placeholder shows only when the first token takes over 0.25 s: timing, not
    # behaviour, so only the streamed text is counted.
    texts = [u["data"]["text/markdown"] for u in updates if "text/markdown" in u["data"]]
    assert len(texts) >= 2, "the text arrives in several updates"
    assert texts[0] != texts[-1] and response.text.startswith(texts[0])
    assert texts[-1] == response.text


# --- small gaps (case 19 of the hardening issue) -------------------------------------------


def test_o_refuses_a_name_that_would_hide_a_builtin(ip: Any, fake: FakeOpenAI) -> None:
    with pytest.raises(UsageError, match="would hide Python's built-in print"):
        ip.run_cell_magic("llm", "-o print", "hi")
    assert "print" not in ip.user_ns and fake.bodies == []


def test_out_of_a_cell_without_output_says_so_and_points_to_in(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_cell("6 * 7", store_history=True)
    valued = ip.execution_count - 1
    ip.run_cell("x = 1", store_history=True)
    silent = ip.execution_count - 1
    with pytest.raises(
        UsageError,
        match=rf"cell {silent} has no output.*cells with one: .*{valued}.*In\[{silent}\]",
    ):
        ip.run_cell_magic("llm", "", f"Explain {{Out[{silent}]}}")


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_media_on_a_missing_file_or_a_folder_says_which(
    ip: Any, fake: FakeOpenAI, tmp_path: Any, kind: str
) -> None:
    with pytest.raises(UsageError, match=rf"--{kind} plots/missing.png: no such file"):
        ip.run_cell_magic("llm", f"--{kind} plots/missing.png", "Describe")
    with pytest.raises(UsageError, match="that is a folder"):
        ip.run_cell_magic("llm", f"--{kind} {tmp_path}", "Describe")
    assert fake.bodies == []


def test_export_into_a_missing_folder_is_a_one_line_error(ip: Any, fake: FakeOpenAI) -> None:
    run(ip, "--session notes", "hello")
    with pytest.raises(UsageError, match="does not exist"):
        ip.run_line_magic("llm", "export notes --file /nonexistent/dir/notes.md")


def test_a_provider_message_ending_in_a_full_stop_gets_no_second_one(
    ip: Any, fake: FakeOpenAI
) -> None:
    fake.status = 429
    fake.error = {"error": {"message": "Slow down.", "type": "rate", "param": None, "code": None}}
    from llm_magics._client import registry
    from llm_magics._runtime.retry import RetryPolicy

    registry.current_registry().retry = RetryPolicy(max_retries=0)
    with pytest.raises(lm.RateLimitError) as info:
        ip.run_cell_magic("llm", "--no-stream", "hi")
    assert ".." not in str(info.value) and "Slow down." in str(info.value)

"""The %llm line commands: providers and key status (never a key), live model lists, the
kernel's default model, aliases, custom OpenAI-compatible endpoints, key pools, usage, the
cache, and --session history / reset / export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

import llm_magics as lm
from llm_magics._client import registry
from tests.magics_helpers import KEY, FakeOpenAI, fake, ip, magics_of, outputs

__all__ = ["fake", "ip"]  # fixtures


def line(shell: Any, text: str) -> Any:
    with capture_output() as captured:
        shell.run_line_magic("llm", text)
    return captured


def cell(shell: Any, options: str, prompt: str) -> None:
    with capture_output():
        shell.run_cell_magic("llm", options, prompt)


def shown(captured: Any) -> str:
    """Everything a person sees: printed text and displayed Markdown/plain text."""
    texts = [captured.stdout]
    for o in outputs(captured):
        texts.append(o["data"].get("text/markdown") or o["data"].get("text/plain", ""))
    return "\n".join(texts)


# --- list, use, alias, register ----------------------------------------------------------


def test_list_shows_each_provider_with_key_status_but_never_the_key(
    ip: Any, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROQ_API_KEYS", "gsk-one-SECRET-111111,gsk-two-SECRET-222222")
    out = line(ip, "list").stdout
    assert KEY not in out and "SECRET" not in out
    rows = {r.split()[0]: r for r in out.splitlines() if r.strip()}
    assert "configured (1 key, OPENAI_API_KEY)" in rows["openai"]
    assert "configured (2 keys, GROQ_API_KEYS)" in rows["groq"]
    assert "missing (set ANTHROPIC_API_KEY)" in rows["anthropic"]
    assert "no key needed" in rows["local"] and "no key needed" in rows["ollama"]
    assert out.startswith("Default model: openai:gpt-4o-mini")


def test_use_sets_the_default_model_for_later_cells(ip: Any, fake: FakeOpenAI) -> None:
    out = line(ip, "use openai:gpt-4.1-nano").stdout
    assert "Default model: openai:gpt-4.1-nano" in out
    assert registry.current_registry().default_model() == "openai:gpt-4.1-nano"
    cell(ip, "", "hi")
    assert fake.bodies[-1]["model"] == "gpt-4.1-nano"
    assert "automatic" in line(ip, "use auto").stdout
    assert magics_of(ip).default_model == ""
    cell(ip, "", "hi again")
    assert fake.bodies[-1]["model"] == "gpt-4o-mini"


def test_use_overrides_a_configured_default(ip: Any, fake: FakeOpenAI) -> None:
    ip.run_line_magic("config", 'LLMMagics.default_model = "openai:gpt-4.1"')
    line(ip, "use openai:o4-mini")
    cell(ip, "", "hi")
    assert fake.bodies[-1]["model"] == "o4-mini"


def test_use_of_an_unknown_model_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(UsageError, match="unknown provider 'nope'"):
        line(ip, "use nope:model")
    with pytest.raises(UsageError, match=r"%llm use: .*required: MODEL; expected %llm use MODEL"):
        line(ip, "use")


def test_an_alias_names_a_model_for_cells_and_list(ip: Any, fake: FakeOpenAI) -> None:
    assert "fast → openai:gpt-4.1-nano" in line(ip, "alias fast openai:gpt-4.1-nano").stdout
    cell(ip, "fast", "hi")
    assert fake.bodies[-1]["model"] == "gpt-4.1-nano"
    out = line(ip, "list").stdout
    assert "fast" in out and "openai:gpt-4.1-nano" in out
    with pytest.raises(UsageError, match="unknown provider"):
        line(ip, "alias bad nowhere:x")


def test_register_adds_an_openai_compatible_server_with_its_key_variable(
    ip: Any, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = line(ip, "register vllm http://gpu-box:8000/v1/ --key-env VLLM_KEY --model qwen").stdout
    assert "Registered vllm → http://gpu-box:8000/v1" in out and "missing: set it" in out
    with pytest.raises(UsageError, match="VLLM_KEY"):
        cell(ip, "vllm:qwen", "hi")
    monkeypatch.setenv("VLLM_KEY", "vllm-secret-key-9876")
    cell(ip, "vllm", "hi")
    request = fake.transport.requests[-1]
    assert str(request.url) == "http://gpu-box:8000/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer vllm-secret-key-9876"
    assert fake.bodies[-1]["model"] == "qwen"
    listed = line(ip, "list").stdout
    assert "vllm" in listed and "vllm-secret-key-9876" not in listed


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ("register vllm", "the following arguments are required: BASE_URL"),
        ("register x http://x --like nobody", "like= names a built-in vendor"),
        ("register vllm ftp://x", "base_url must start with http"),
        ("register openai http://x", "cannot register 'openai'"),
        ("register x http://x --key-env 'A B'", "--key-env takes an environment variable name"),
        ("register x http://x --bogus", "unrecognized arguments: --bogus"),
    ],
)
def test_register_mistakes_are_usage_errors(ip: Any, args: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        line(ip, args)


# --- models, keys ------------------------------------------------------------------------


def test_models_lists_what_the_provider_serves(ip: Any, fake: FakeOpenAI) -> None:
    out = line(ip, "models openai").stdout
    assert out.splitlines() == ["2 models from openai:", "  openai:gpt-a", "  openai:gpt-b"]
    assert fake.transport.requests[-1].url.path == "/v1/models"
    fake.transport.assert_clean()
    assert "openai:gpt-a" in line(ip, "models").stdout, "without PROVIDER: the default's"


def test_models_of_a_provider_without_a_key_is_a_usage_error(ip: Any) -> None:
    with pytest.raises(UsageError, match="ANTHROPIC_API_KEY"):
        line(ip, "models anthropic")


def test_keys_shows_masked_keys_and_their_counters(
    ip: Any, fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    cell(ip, "", "hi")
    out = line(ip, "keys").stdout
    assert KEY not in out
    row = next(r for r in out.splitlines() if r.startswith("openai"))
    assert f"...{KEY[-4:]}" in row and " ok " in f" {row} "


def test_keys_without_any_key_says_how_to_add_one(ip: Any) -> None:
    assert "No API keys configured" in line(ip, "keys").stdout


# --- usage, cache --------------------------------------------------------------------------


def test_usage_totals_the_calls_of_this_kernel(ip: Any, fake: FakeOpenAI) -> None:
    import llm_magics as lm

    reset = (
        getattr(lm, "reset_usage", None) or __import__("llm_magics._client.usage").usage.reset_usage
    )
    reset()
    cell(ip, "--no-cache", "one")
    cell(ip, "--no-cache", "two")
    text = shown(line(ip, "usage"))
    assert "gpt-4o-mini" in text and "22" in text and "14" in text  # 2 x (11 in, 7 out)


def test_cache_stats_and_clear(ip: Any, fake: FakeOpenAI) -> None:
    cell(ip, "", "cache me")
    assert "1" in shown(line(ip, "cache"))
    out = line(ip, "cache clear").stdout
    assert out.startswith("Removed 1 cached answer")
    cell(ip, "", "cache me")
    assert len(fake.bodies) == 2, "after clear the same cell asks again"
    with pytest.raises(UsageError, match=r"invalid choice: 'flush'.*expected %llm cache"):
        line(ip, "cache flush")
    with pytest.raises(UsageError, match="cache stats takes no MODEL"):
        line(ip, "cache stats openai:gpt-4o")


# --- sessions ------------------------------------------------------------------------------


def test_history_lists_sessions_and_shows_one_as_markdown(ip: Any, fake: FakeOpenAI) -> None:
    assert "No sessions yet" in line(ip, "history").stdout
    cell(ip, '--session plan -s "You plan."', "Day one?")
    cell(ip, "--session plan", "Day two?")
    cell(ip, "--session other", "x")
    listing = line(ip, "history").stdout
    assert "plan" in listing and "other" in listing and "You plan." in listing
    md = outputs(line(ip, "history plan"))[0]["data"]["text/markdown"]
    assert md.index("Day one?") < md.index("echo: Day one?") < md.index("Day two?")
    with pytest.raises(UsageError, match=r"no session named 'nope'.*plan, other"):
        line(ip, "history nope")


def test_reset_forgets_one_session_or_all(ip: Any, fake: FakeOpenAI) -> None:
    cell(ip, "--session a", "1")
    cell(ip, "--session b", "2")
    assert "Session 'a' forgotten" in line(ip, "reset a").stdout
    cell(ip, "--session a", "3")
    assert len(fake.bodies[-1]["messages"]) == 1, "a reset session starts empty"
    assert "Forgot 2 session(s): b, a" in line(ip, "reset").stdout
    with pytest.raises(UsageError, match="no session named 'zzz'"):
        line(ip, "reset zzz")


def test_export_writes_markdown_or_json_without_any_key(
    ip: Any, fake: FakeOpenAI, tmp_path: Path
) -> None:
    cell(ip, "--session s", "What is 2+2?")
    cell(ip, "--session s", f"Remember my key {KEY}")  # a key pasted into a prompt
    md = line(ip, "export s").stdout
    assert "What is 2+2?" in md and "echo: What is 2+2?" in md and KEY not in md
    data = json.loads(line(ip, "export s --format json").stdout)
    assert [t["user"]["content"] for t in data["turns"]] == [
        "What is 2+2?",
        "Remember my key [redacted key ...cdef]",
    ]
    target = tmp_path / "s.json"
    assert "Wrote 2 turn(s)" in line(ip, f"export s --file {target}").stdout
    written = target.read_text()
    assert json.loads(written)["name"] == "s" and KEY not in written
    with pytest.raises(UsageError, match="invalid choice: 'xml'"):
        line(ip, "export s --format xml")


def test_sessions_lists_each_conversation_with_model_turns_tokens_and_cost(
    ip: Any, fake: FakeOpenAI
) -> None:
    assert "No sessions yet" in line(ip, "sessions").stdout
    cell(ip, "--session a", "one")
    cell(ip, "--session a", "two")
    cell(ip, "--session b", "three")
    rows = {r.split()[0]: r.split() for r in line(ip, "sessions").stdout.splitlines()[2:]}
    assert rows["a"][1:4] == ["openai:gpt-4o-mini", "2", "36"]  # 2 x (11 in + 7 out)
    assert rows["a"][4].startswith("$") and rows["b"][2] == "1"


def test_usage_of_one_session_counts_its_turns_by_model(ip: Any, fake: FakeOpenAI) -> None:
    cell(ip, "--session a", "one")
    cell(ip, "openai:gpt-4.1-nano --session a", "two")
    cell(ip, "--session b", "not counted")
    rows = {r.split()[0]: r.split() for r in line(ip, "usage a").stdout.splitlines()[2:]}
    # The fake answers as gpt-4o-mini whatever was asked: one model row, both turns.
    assert rows["openai:gpt-4o-mini"][1:4] == ["2", "22", "14"]
    assert rows["session"][2:5] == ["2", "22", "14"] and len(rows) == 2
    with pytest.raises(UsageError, match="no session named 'zzz'"):
        line(ip, "usage zzz")


def test_fork_copies_a_session_that_then_goes_on_alone(ip: Any, fake: FakeOpenAI) -> None:
    cell(ip, "--session plan", "Day one?")
    assert "plan-b ← plan (1 turn(s))" in line(ip, "fork plan plan-b").stdout
    cell(ip, "--session plan-b", "Day two, plan B?")
    assert fake.bodies[-1]["messages"][0]["content"] == "Day one?"
    assert len(lm.session("plan")) == 1 and len(lm.session("plan-b")) == 2
    with pytest.raises(UsageError, match="a session named 'plan' exists already"):
        line(ip, "fork plan-b plan")
    with pytest.raises(UsageError, match="no session named 'nope'"):
        line(ip, "fork nope x")


def test_save_and_load_bring_a_session_back_under_its_name_or_a_new_one(
    ip: Any, fake: FakeOpenAI, tmp_path: Path
) -> None:
    cell(ip, "--session s", "Remember 42.")
    path = tmp_path / "s.json"
    assert "Saved 1 turn(s) of 's'" in line(ip, f"save s {path}").stdout
    line(ip, "reset s")
    assert "loaded as 's'" in line(ip, f"load {path}").stdout
    assert "loaded as 'copy'" in line(ip, f"load {path} copy").stdout
    cell(ip, "--session copy", "What number?")
    assert fake.bodies[-1]["messages"][0]["content"] == "Remember 42."
    path.write_text("{broken")
    with pytest.raises(UsageError, match="is not JSON"):
        line(ip, f"load {path}")


def test_summarize_shows_a_model_written_summary_and_keeps_every_turn(
    ip: Any, fake: FakeOpenAI
) -> None:
    cell(ip, "--session trip", "I fly to Lisbon in May.")
    cell(ip, "--session trip", "My budget is 800 euros.")
    fake.reply = "Lisbon in May, 800 euros."
    shown = line(ip, "summarize trip")
    assert "Lisbon in May, 800 euros." in shown.outputs[0].data["text/markdown"]
    assert "Covers 2 turn(s)" in shown.outputs[0].data["text/markdown"]
    asked = fake.bodies[-1]["messages"]
    assert asked[0]["role"] == "system" and "I fly to Lisbon" in asked[1]["content"]
    assert lm.session("trip").summary.text == "Lisbon in May, 800 euros."
    assert len(lm.session("trip")) == 2
    assert "Summary of turns 1-2" in lm.session("trip").export(format="text")
    usage = line(ip, "usage trip").stdout
    assert "openai:gpt-4o-mini (summaries)" in usage
    assert usage.splitlines()[-1].split()[2] == "3", "2 turns and 1 summary call"
    with pytest.raises(UsageError, match="no session named 'nope'"):
        line(ip, "summarize nope")
    lm.session("empty")
    with pytest.raises(UsageError, match="no turns to summarise"):
        line(ip, "summarize empty")


# --- help and mistakes ---------------------------------------------------------------------


def test_help_and_a_bare_llm_print_the_full_help(ip: Any) -> None:
    for text in ("help", ""):
        out = line(ip, text).stdout
        assert "%llm register [--key-env VAR]" in out and "--session NAME" in out


@pytest.mark.parametrize("text", ["help register", "register -h", "register --help"])
def test_one_commands_help_is_generated_from_its_arguments(ip: Any, text: str) -> None:
    out = line(ip, text).stdout
    assert out.lstrip(":\n ").startswith("%llm register [--key-env VAR]")
    for option in ("NAME", "BASE_URL", "--key-env VAR", "--model DEFAULT", "--like VENDOR"):
        assert option in out, option


def test_every_command_has_a_summary_line_in_the_help(ip: Any) -> None:
    from llm_magics.notebook.commands import COMMANDS

    out = line(ip, "help").stdout
    for name in COMMANDS:
        (row,) = [r for r in out.splitlines() if r.strip().startswith(f"%llm {name}")]
        assert len(row.split()) > 2, f"%llm {name} has no summary: {row!r}"


def test_help_of_an_unknown_command_lists_the_commands(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"unknown %llm command 'regster'.*register"):
        line(ip, "help regster")


def test_register_like_a_vendor_gives_the_proxy_its_quirks(ip: Any, fake: FakeOpenAI) -> None:
    out = line(
        ip, "register gw https://gateway.example/v1 --like openai --model gpt-4o-mini"
    ).stdout
    assert "Registered gw" in out
    from llm_magics._client import registry

    provider = registry.current_registry().client("gw:gpt-4o-mini").provider
    assert provider.quirks.max_tokens_field == "max_completion_tokens"


def test_an_unknown_command_lists_the_commands_and_points_to_the_cell_magic(ip: Any) -> None:
    with pytest.raises(UsageError, match=r"unknown %llm command 'what'.*list, models.*%%llm"):
        line(ip, "what is 2+2")


@pytest.mark.parametrize(
    "args", ["list extra", "keys x", "alias onlyname", "history a b", "usage a b"]
)
def test_wrong_arguments_are_usage_errors_with_the_expected_form(ip: Any, args: str) -> None:
    with pytest.raises(UsageError, match="expected"):
        line(ip, args)


def test_save_without_a_path_goes_to_the_store_the_terminal_uses_and_load_finds_it(
    ip: Any, fake: FakeOpenAI
) -> None:
    cell(ip, "--session shared", "Remember 7.")
    out = line(ip, "save shared").stdout
    assert "llm-magics chat --session shared" in out
    assert "shared" in lm.session_store().names()
    line(ip, "reset shared")
    assert "loaded as 'shared'" in line(ip, "load shared").stdout
    assert len(lm.session("shared")) == 1
    with pytest.raises(UsageError, match="no such file"):
        line(ip, "load nothing-saved-by-this-name")

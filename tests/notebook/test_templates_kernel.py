"""%%llm --template and %llm templates in a real ipykernel over the Jupyter protocol, with a
user template from a TOML folder; the answers come from the local fake OpenAI server over
real HTTP, which answers with the messages it received."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.notebook.test_kernel import collect, displays
from tests.support.server import FakeOpenAIServer

jupyter_client = pytest.importorskip("jupyter_client")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(answer=lambda body: json.dumps(body["messages"])) as srv:
        yield srv


@pytest.fixture
def kernel(server: FakeOpenAIServer, tmp_path: Path) -> Iterator[Any]:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "haiku.toml").write_text(
        'description = "A haiku about a topic."\n'
        'system = "You write haiku: three lines, 5-7-5 syllables."\n'
        'user = "A haiku about {topic}, in a {mood} mood."\n'
        '[defaults]\nmood = "calm"\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "LLM_MAGICS_CACHE_DIR": str(tmp_path / "cache"),
        "LLM_MAGICS_TEMPLATES_DIR": str(folder),
    }
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel(env=env, cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(
            f"%load_ext llm_magics\n%llm register fake {server.base_url} --model m\n"
            "%config LLMMagics.show_usage = False",
            timeout=60,
        )
        assert reply["content"]["status"] == "ok"
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    return collect(kc, kc.execute(code))


def sent_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    shown = [m for m in displays(messages) if "text/plain" in m["content"]["data"]]
    return json.loads(shown[-1]["content"]["data"]["text/plain"])  # type: ignore[no-any-return]


def test_a_template_cell_sends_the_rendered_template_in_a_real_kernel(kc: Any) -> None:
    reply, messages = run(
        kc, "%%llm fake -f text --template translate --var language=French\nHello {{x}}"
    )
    assert reply["content"]["status"] == "ok"
    system, user = sent_messages(messages)
    assert system["role"] == "system" and "into French" in system["content"]
    assert user == {"role": "user", "content": "Hello {x}"}


def test_a_user_template_from_the_folder_fills_from_notebook_names(kc: Any) -> None:
    run(kc, "mood = 'wistful'")
    reply, messages = run(kc, "%%llm fake -f text --template haiku\nautumn leaves")
    assert reply["content"]["status"] == "ok", reply["content"]
    assert sent_messages(messages) == [
        {"role": "system", "content": "You write haiku: three lines, 5-7-5 syllables."},
        {"role": "user", "content": "A haiku about autumn leaves, in a wistful mood."},
    ]


def test_percent_llm_templates_lists_the_built_ins_and_the_users_own(kc: Any) -> None:
    reply, messages = run(kc, "%llm templates")
    assert reply["content"]["status"] == "ok"
    printed = "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")
    assert "\nexplain_error " in printed and "\nhaiku " in printed and "file: haiku.toml" in printed


def test_a_missing_variable_is_one_error_line_naming_it(kc: Any) -> None:
    reply, _ = run(kc, "%%llm fake --template rag_qa\nWhen?")
    content = reply["content"]
    assert content["status"] == "error" and content["ename"] == "UsageError"
    assert "template 'rag_qa' needs a value for {context}" in content["evalue"]


@pytest.fixture
def kc(kernel: Any) -> Any:
    return kernel

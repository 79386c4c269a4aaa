"""A chat in the cell output, bound to a :class:`~llm_magics._chat.memory.Conversation`.

``%llm chat NAME`` or ``lm.chat_widget(conv)``: the conversation's turns so far, an input box
(Enter or the Send button asks), a model picker (any model id; suggestions from the kernel's
default, aliases and the providers with a key), and each answer streaming in as Markdown with
its usage line under it. The widget holds no history of its own: displaying it again (or
another widget on the same conversation) shows every turn, and what it asks is recorded in
the conversation that ``%%llm --session NAME`` and ``lm.session(NAME)`` continue.

Answers are rendered to HTML in the kernel (markdown-it, raw HTML escaped) after the same
remote-content guard as ``%%llm`` answers, so an answer loads nothing from the network.

In the page the box carries the CSS class ``llm-magics-chat``; the input
``llm-magics-chat-input``, each message ``llm-magics-chat-user`` or ``llm-magics-chat-answer``,
the usage lines ``llm-magics-chat-usage``.

Thread safety: the answer streams on a worker thread (so the notebook stays usable); widget
updates from it go over the kernel's thread-safe IOPub channel. One question at a time.
"""

from __future__ import annotations

import html
import threading
import time
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .._core.errors import LLMError
from .._core.markdown import safe_markdown
from .._core.secrets import scrub
from .display import usage_line

if TYPE_CHECKING:
    from .._chat.memory import Conversation, Turn

__all__ = ["ChatWidget", "chat_widget", "markdown_html"]

DOM_CLASS = "llm-magics-chat"
_USER_STYLE = "background:#f0f4ff;border-radius:6px;padding:4px 10px;margin:4px 0 0 15%"


def markdown_html(text: str) -> str:
    """``text`` as HTML: CommonMark with tables, raw HTML escaped, remote images as links."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    return renderer.render(safe_markdown(text))


class ChatWidget:
    """An ipywidgets chat over one conversation (see the module docstring)."""

    interval = 0.1  # seconds between updates of a streaming answer

    def __init__(self, conversation: Conversation, *, model: str | None = None) -> None:
        self.conversation = conversation
        self.history = widgets.VBox()
        self.model = widgets.Combobox(
            value=model or conversation.model or _default_model(),
            options=_model_choices(conversation),
            ensure_option=False,
            description="model",
            placeholder="provider:model",
            layout=widgets.Layout(width="340px"),
        )
        self.input = widgets.Text(
            placeholder="Ask something, then press Enter",
            layout=widgets.Layout(flex="1 1 auto", width="auto"),
        )
        self.input.add_class(f"{DOM_CLASS}-input")
        self.send = widgets.Button(description="Send", icon="paper-plane")
        self.status = widgets.HTML()
        title = widgets.HTML(f"<b>Conversation <code>{html.escape(conversation.name)}</code></b>")
        self.box = widgets.VBox(
            [
                widgets.HBox([title, self.model]),
                self.history,
                widgets.HBox([self.input, self.send]),
                self.status,
            ]
        )
        self.box.add_class(DOM_CLASS)
        self.history.children = tuple(v for t in conversation.turns for v in _turn_views(t))
        self.input.on_msg(self._on_message)
        self.send.on_click(lambda _button: self.submit())
        self._worker: threading.Thread | None = None

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.box)

    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if content.get("event") == "submit":  # Enter in the input box
            self.submit()

    @property
    def busy(self) -> bool:
        return self._worker is not None and self._worker.is_alive()

    def submit(self, text: str | None = None) -> bool:
        """Ask ``text`` (default: what the input box holds); False when there is nothing to
        ask or an answer is still arriving."""
        question = (self.input.value if text is None else text).strip()
        if not question or self.busy:
            return False
        self.input.value = ""
        self._set_busy(True)
        answer = _answer_view("")
        usage = _usage_view("")
        self.history.children = (*self.history.children, _user_view(question), answer, usage)
        model = self.model.value.strip() or None
        self._worker = threading.Thread(
            target=self._answer, args=(question, model, answer, usage), daemon=True
        )
        self._worker.start()
        return True

    def wait(self, timeout: float | None = None) -> None:
        """Block until the answer being streamed has arrived (for scripts and tests)."""
        if self._worker is not None:
            self._worker.join(timeout)

    def _answer(
        self, question: str, model: str | None, answer: widgets.HTML, usage: widgets.HTML
    ) -> None:
        text, shown = "", 0.0
        try:
            stream = self.conversation.stream(question, model=model)
            for piece in stream:
                text += piece
                if time.monotonic() - shown >= self.interval:
                    answer.value, shown = markdown_html(text), time.monotonic()
            answer.value = markdown_html(text)
            if stream.response is not None:
                usage.value = _usage_html(usage_line(stream.response)["text/plain"])
            self.status.value = ""
        except Exception as exc:  # shown in the widget: a worker thread has no cell to raise in
            answer.value = markdown_html(text) if text else ""
            what = str(exc) if isinstance(exc, LLMError) else f"{type(exc).__name__}: {exc}"
            self.status.value = (
                f'<span style="color:#c00">{html.escape(scrub(what))}</span>'
                " (the conversation keeps everything that arrived)"
            )
        finally:
            self._set_busy(False)

    def _set_busy(self, busy: bool) -> None:
        self.input.disabled = self.send.disabled = busy
        if busy:
            self.status.value = '<span style="color:#888">answering…</span>'


def chat_widget(conversation: Conversation | str = "default", *, model: str | None = None) -> Any:
    """A chat widget bound to ``conversation`` (a Conversation, or the name of a kernel
    session as ``%%llm --session`` uses). Display it (last line of a cell) to chat."""
    if isinstance(conversation, str):
        from .._chat.sessions import session

        conversation = session(conversation)
    return ChatWidget(conversation, model=model)


def _turn_views(turn: Turn) -> list[widgets.HTML]:
    views = []
    if turn.user is not None:
        views.append(_user_view(turn.user.text))
    if turn.answer is not None:
        views.append(_answer_view(markdown_html(turn.answer)))
        line = " · ".join(
            p
            for p in (
                turn.model,
                f"{turn.usage.input_tokens:,} → {turn.usage.output_tokens:,} tokens"
                if turn.usage.total_tokens
                else "",
                "interrupted" if turn.finish_reason == "interrupted" else "",
            )
            if p
        )
        views.append(_usage_view(_usage_html(line) if line else ""))
    return views


def _user_view(text: str) -> widgets.HTML:
    view = widgets.HTML(f'<div style="{_USER_STYLE}">{html.escape(text)}</div>')
    view.add_class(f"{DOM_CLASS}-user")
    return view


def _answer_view(value: str) -> widgets.HTML:
    view = widgets.HTML(value, layout=widgets.Layout(margin="0 15% 0 0"))
    view.add_class(f"{DOM_CLASS}-answer")
    return view


def _usage_view(value: str) -> widgets.HTML:
    view = widgets.HTML(value)
    view.add_class(f"{DOM_CLASS}-usage")
    return view


def _usage_html(text: str) -> str:
    return f'<div style="color:#888;font-size:0.8em;padding:0 10px">{html.escape(text)}</div>'


def _default_model() -> str:
    from .._client.registry import current_registry

    return current_registry().default_model()


def _model_choices(conversation: Conversation) -> list[str]:
    """Suggestions for the picker: the defaults, aliases, models used in the conversation,
    and each provider that has a key (or needs none)."""
    from .._client.registry import current_registry

    reg = current_registry()
    choices = [conversation.model or "", reg.default_model(), *reg.aliases]
    choices += [t.model for t in conversation.turns if t.model]
    for row in reg.providers():
        if not str(row["key"]).startswith("missing"):
            name = row["provider"]
            choices.append(name if name == "local" else f"{name}:{row['default_model']}")
    return list(dict.fromkeys(c for c in choices if c))

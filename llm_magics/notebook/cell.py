"""Running one ``%%llm`` cell: build the prompt, call the client, show and store the answer.

Imported on the first ``%%llm`` cell, not by ``%load_ext`` (see :mod:`llm_magics.notebook.magics`).
Main thread only: it drives the display of the executing cell.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from .._chat.interpolation import PromptError, render, resolve, to_media_part
from .._core.errors import OutputParseError, StreamInterruptedError
from .._core.types import MediaPart, OutputSchema, Response, TextPart
from .._runtime import loop as _loop
from .display import AnswerView, bundle, extract_code, json_bundle, pump, usage_line
from .errors import short_error
from .host import MagicsHost

if TYPE_CHECKING:
    from .._client.client import Client

__all__ = ["CellRun"]


class CellRun:
    """One execution of a ``%%llm`` cell with its parsed options."""

    def __init__(self, magics: MagicsHost, args: argparse.Namespace, cell: str) -> None:
        self.magics = magics
        self.args = args
        self.cell = cell
        self.ns: dict[str, Any] = magics._shell.user_ns
        self.started = 0.0
        self.template_system = ""  # the --template's system prompt, once rendered

    def run(self) -> None:
        from .._client import registry

        __tracebackhide__ = True
        m, args = self.magics, self.args
        prompt = self.prompt()
        fmt = args.format or m.default_format
        options = self.options(fmt)
        conversation = m.sessions.get(args.session) if args.session else None
        if conversation is not None:
            if args.system:
                conversation.system = args.system
            if conversation.system:  # the session's own system wins over the default one
                options.pop("system", None)
        client = registry.current_registry().client(args.model or m.default_model or None)
        if args.tools:  # the agent loop; a session keeps the calls and results
            from .cell_tools import ask_with_tools

            response, view = ask_with_tools(self, client, prompt, options, conversation)
            self.store(response, self.show(response, view, fmt))
            return
        request: Any = prompt
        if conversation is not None:  # the history that fits this cell's model
            request = _loop.run(
                conversation.aprepare(prompt, client, options, max_history=m.max_history)
            )
        view = AnswerView(fmt, interval=m.update_interval)
        m.last_view = view
        response = self.ask(client, request, options, view)
        value = self.show(response, view, fmt)
        if conversation is not None:
            conversation.add(prompt, response)
        self.store(response, value)

    def prompt(self) -> Any:
        """The cell's text, rendered (unless --raw), with --image/--audio attached; with
        --template, the template filled from the cell (see :mod:`.cell_template`)."""
        text = self.cell.strip("\n")
        args = self.args
        if args.template:
            return self.templated(text)
        if not text.strip():
            raise UsageError("the %%llm cell is empty: write the prompt below the %%llm line")
        parts = self.body(text)
        if len(parts) == 1 and isinstance(parts[0], str):
            return parts[0]
        return [TextPart(p) if isinstance(p, str) else p for p in parts]

    def body(self, text: str) -> list[str | MediaPart]:
        """The cell's text rendered (unless --raw), with --image/--audio attached."""
        args = self.args
        parts: list[str | MediaPart] = (
            [text] if args.raw else render(text, self.ns, {"Err": self.magics.errors})
        )
        parts += [self.media(e, "image") for e in args.image]
        parts += [self.media(e, "audio") for e in args.audio]
        return parts

    def templated(self, text: str) -> Any:
        """The user message of ``--template NAME``, the cell body filling its main variable;
        its system prompt is kept for :meth:`options`."""
        from .cell_template import find_template, parse_vars, templated_prompt

        template = find_template(self.args.template, self.ns)
        given = parse_vars(self.args.var, template)
        has_body = bool(text.strip() or self.args.image or self.args.audio)
        body = self.body(text) if has_body else None
        filled = templated_prompt(template, given, body, self.ns, {"Err": self.magics.errors})
        self.template_system = filled.system
        return filled.content

    def options(self, fmt: str) -> dict[str, Any]:
        """The request options from the cell's line and the magics' settings."""
        m, args = self.magics, self.args
        options: dict[str, Any] = {}
        system = args.system or m.default_system or None
        if self.template_system:  # after -s; instead of the default system prompt
            tsys = self.template_system
            system = f"{args.system}\n\n{tsys}" if args.system else tsys
        temperature = args.temperature if args.temperature is not None else m.temperature
        max_tokens = args.max_tokens if args.max_tokens is not None else m.max_tokens
        if temperature is not None:
            options["temperature"] = temperature
        if max_tokens is not None:
            options["max_tokens"] = max_tokens
        if args.no_cache:
            options["cache"] = False
        if args.schema:
            options["schema"] = self.value(args.schema, "--schema")
        elif fmt == "json":
            options["json_mode"] = True
            if "json" not in f"{system or ''} {self.cell}".lower():
                # OpenAI's JSON mode refuses prompts that never mention JSON.
                system = f"{system}\n\nAnswer in JSON." if system else "Answer in JSON."
        if system:
            options["system"] = system
        return options

    def ask(
        self, client: Client, request: Any, options: dict[str, Any], view: AnswerView
    ) -> Response:
        """The answer, streamed into ``view`` where the provider streams; what arrived before
        an interrupt, a broken stream or a parse failure is shown and kept in ``_llm``."""
        __tracebackhide__ = True
        self.started = time.perf_counter()
        streaming = (
            self.magics.stream and not self.args.no_stream and client.provider.supports_stream
        )
        stream = client.astream(request, **options) if streaming else None
        view.start()
        try:
            if stream is None:
                response: Response = _loop.run(
                    client.achat(request, **options),
                    on_wait=lambda w: view.status(str(w)),
                    on_poll=view.tick,
                )
                view.text = response.text
                return response
            pump(stream, view)
            assert stream.response is not None
            return stream.response
        except KeyboardInterrupt:
            kept = self.keep_partial(client, view, "interrupted")
            raise short_error(
                KeyboardInterrupt(),
                f"stopped the answer; the {kept} characters that arrived are in _llm",
            ) from None
        except StreamInterruptedError as exc:
            self.keep_partial(client, view, "error")
            raise short_error(exc, f"{exc.message} (the partial answer is in _llm)") from None
        except OutputParseError as exc:
            # The whole answer arrived, it just does not parse: show all of it and keep it.
            answer = exc.response if exc.response is not None else Response(exc.text, "", "")
            view.text = answer.text
            view.finish(bundle(answer.text, "text"))
            self.store(answer, answer)
            held = f"_llm and {self.args.output} hold" if self.args.output else "_llm holds"
            raise short_error(exc, f"{exc.message} ({held} the Response)") from None
        except BaseException:
            view.discard()  # no "…" left standing above the error
            raise

    def show(self, response: Response, view: AnswerView, fmt: str) -> Any:
        """Finish the view in ``fmt`` and the usage line; returns the value for ``-o``."""
        m = self.magics
        value: Any = response
        if self.args.schema or fmt == "json":
            value = self.finish_json(response, view)
        elif fmt == "code":
            view.finish()
            m._shell.set_next_input(extract_code(response.text), replace=False)
        else:
            view.finish()
        if m.show_usage:
            from IPython.display import display

            first = view.first_delta_at
            display(usage_line(response, first_token=first and first - self.started), raw=True)
        return value

    def keep_partial(self, client: Client, view: AnswerView, reason: str) -> int:
        """Show and store what arrived before an interrupt or a broken stream."""
        partial = Response(
            view.text,
            client.model,
            client.provider.name,
            finish_reason=reason,
            latency=time.perf_counter() - self.started,
        )
        marker = f"[{reason}]"
        if view.fmt in ("markdown", "code"):
            view.finish(bundle(f"{view.text}\n\n*{marker}*", view.fmt))
        else:
            view.finish(bundle(f"{view.text}\n{marker}", "text"))
        self.store(partial, partial)
        return len(view.text)

    def finish_json(self, response: Response, view: AnswerView) -> Any:
        value = response.parsed
        if value is None:
            try:
                value = OutputSchema("json", {}).parse(response.text)
            except ValueError:
                view.finish(bundle(response.text, "text"))
                print(
                    "The answer is not valid JSON; _llm holds the Response (its .text is the "
                    "answer).",
                    file=sys.stderr,
                )
                return response
        shown = value.model_dump(mode="json") if hasattr(value, "model_dump") else value
        view.finish(json_bundle(shown))
        return value

    def store(self, response: Response, value: Any) -> None:
        self.ns["_llm"] = response
        if self.args.output:
            self.ns[self.args.output] = value

    def value(self, expr: str, option: str) -> Any:
        try:
            return resolve(expr, self.ns)
        except PromptError as exc:
            raise UsageError(f"{option} {expr}: {exc}") from None

    def media(self, expr: str, kind: str) -> MediaPart:
        try:
            value = resolve(expr, self.ns)
        except PromptError as exc:
            path = os.path.expanduser(expr)
            if os.path.isfile(path) or expr.startswith(("http://", "https://")):
                value = expr
            elif os.path.isdir(path):
                raise UsageError(
                    f"--{kind} {expr}: that is a folder; give one {kind} file"
                ) from None
            elif _looks_like_a_path(expr):
                raise UsageError(
                    f"--{kind} {expr}: no such file (relative paths start in {os.getcwd()}); "
                    "give an existing file, an http(s) URL or a variable"
                ) from None
            else:
                raise UsageError(
                    f"--{kind} {expr}: {exc}; give a variable (img, fig, obj.attr, xs[0]), "
                    "an existing file path or an http(s) URL"
                ) from None
        try:
            part = to_media_part(value, kind)  # type: ignore[arg-type]
        except PromptError as exc:
            raise UsageError(f"--{kind} {expr}: {exc}") from None
        assert part is not None
        return part


def _looks_like_a_path(text: str) -> bool:
    """``plots/a.png``, ``~/x.wav``, ``a.png``: not a variable reference a user meant."""
    suffix = os.path.splitext(text)[1].lower()
    return "/" in text or "\\" in text or text.startswith("~") or suffix in _MEDIA_SUFFIXES


_MEDIA_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".svg",
     ".wav", ".mp3", ".flac", ".ogg", ".m4a", ".aac", ".webm", ".opus", ".pdf"}
)  # fmt: skip

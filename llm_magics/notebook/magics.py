"""The ``%%llm`` and ``%llm`` magics: a thin parse-and-call layer over the Python API.

Loaded by ``%load_ext llm_magics``. Importing this module costs only IPython pieces that a
kernel has loaded already; the client stack (httpx2 and friends) loads on the first call.

Errors, as a person meets them:

* A mistake to fix (unknown model, missing key, bad option, unknown variable) is a
  ``UsageError``: one red line saying what to do, no traceback.
* A provider failure (rate limit, outage, refused request) keeps its own exception type, so
  the cell is marked failed, "run all" stops, and ``{Err[-1]}`` can quote it, but it renders
  as one line (``RateLimitError: ...``) instead of a traceback through this package.
* Ctrl-C / interrupt stops a stream at once; what arrived stays on screen and in ``_llm``
  (``finish_reason == "interrupted"``), and the cell ends with a one-line KeyboardInterrupt
  so queued cells do not run.
"""

from __future__ import annotations

import argparse
import builtins
import functools
import keyword
import shlex
import weakref
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Bool, Enum, Float, Int, Unicode, observe

from .errors import user_errors

if TYPE_CHECKING:
    from .._chat.interpolation import ErrorLog
    from .._chat.sessions import Conversations
    from .display import AnswerView

__all__ = ["FORMATS", "LLMMagics", "load_ipython_extension", "unload_ipython_extension"]

FORMATS = ("markdown", "text", "code", "json", "html")

_SEE_HELP = "    (`%llm help` lists them)"
_HELP = """\
Ask a language model; the cell is the prompt and the answer streams in as Markdown.

Cell magic::

    %%llm [MODEL] [options]
    Summarise {notes} in three bullet points.

MODEL is provider:model (openai:gpt-4o-mini, anthropic:claude-haiku-4-5, gemini:...,
groq:..., cerebras:..., ollama:llama3.2), `local` (embedded, no key), an alias, or a name
from `%llm register`. Without it: LLMMagics.default_model, else the kernel's default
(`%llm use`), else the first provider with a key, else `local`.

The answer is stored in `_llm` (a Response: .text, .usage, .cost, ...); `-o VAR` stores it
in VAR too (for -f json or --schema: the parsed value).

Prompt interpolation (done once; braces in values are never re-read):
  {name} {obj.attr} {d[key]} {xs[0]} {x:.2f} {x!r}   values from the notebook (no eval)
  {In[3]} {Out[3]}                                   a cell's input / output
  {Err[-1]} {Err[-2]} {Err[7]}                       latest error / the one before / cell 7's
  {{name}}                                           the literal text {name}
  {img} where img is an lm.Image/lm.Audio, PIL image, matplotlib figure or
  IPython.display.Image/Audio: attached as media at that position.
Only {identifier...} with nothing else inside is a placeholder; every other brace,
single or doubled, stays as written, so code such as {"a": {"b": 1}} or { return x; }
reaches the model unchanged. An unknown name is an error, except inside
``` fenced blocks, `inline code` and $math$, where it stays as written (f-strings in pasted
code, LaTeX such as \\frac{a}{b}). --raw turns all of this off.
(The %%llm line itself is expanded by IPython first, as for every magic: $name.)

Prompt templates (`%llm templates` lists them, `%llm templates NAME` shows one)::

    %%llm --template translate --var language=French
    The weather is lovely today.

The body (interpolated as above) fills the template's main variable; other variables come
from --var K=V, else from notebook variables of the same name, else from the template's
defaults. NAME is an lm.Template variable of the notebook or a name of lm.templates: the
built-ins and your TOML files in LLM_MAGICS_TEMPLATES_DIR. `--template explain_error` with
{Err[-1]} as the body explains the latest error.

Line magic (`%llm help COMMAND` or `%llm COMMAND -h`: one command in full)::

{commands}

Settings (`%config LLMMagics.<name> = value`): default_model, default_format,
default_system, temperature, max_tokens, stream, update_interval, max_history, show_usage, remote_content.
"""


@magics_class
class LLMMagics(Magics):
    """``%%llm`` / ``%llm``. One instance per kernel, created by ``%load_ext llm_magics``."""

    default_model = Unicode(
        "", help="Model for %%llm cells without MODEL ('' = the kernel's default model)."
    ).tag(config=True)
    default_format = Enum(
        FORMATS, default_value="markdown", help="Output format when -f is not given."
    ).tag(config=True)
    default_system = Unicode("", help="System prompt when -s is not given ('' = none).").tag(
        config=True
    )
    temperature = Float(
        None,
        allow_none=True,
        min=0.0,
        max=2.0,
        help="Temperature when -t is not given, 0 to 2 (None = provider default).",
    ).tag(config=True)
    max_tokens = Int(
        None, allow_none=True, min=1, help="Answer length limit when --max-tokens is not given."
    ).tag(config=True)
    stream = Bool(True, help="Stream answers into the cell as they arrive.").tag(config=True)
    update_interval = Float(
        0.05,
        min=0.0,
        help="Seconds between display updates while streaming (the last one is always shown).",
    ).tag(config=True)
    max_history = Int(
        20,
        min=0,
        help="Earlier turns of a --session sent with each prompt (older ones are kept, not sent).",
    ).tag(config=True)
    show_usage = Bool(
        True, help="Show model, tokens, time and cost in small grey text under each answer."
    ).tag(config=True)
    remote_content = Bool(
        False,
        help="Let answers shown as Markdown/HTML load remote images and resources. Off by "
        "default: a prompt-injected ![](https://host/?q=...) would send data to that host "
        "(local files and data: images always show).",
    ).tag(config=True)

    @observe("remote_content")
    def _remote_content_changed(self, change: dict[str, Any]) -> None:
        from .._core.markdown import allow_remote

        allow_remote(bool(change["new"]))

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.last_view: AnswerView | None = None
        self._errors: ErrorLog | None = None

    # Created on first use: %load_ext stays cheap (nothing below imports until a cell runs).
    @property
    def errors(self) -> ErrorLog:
        """Errors of recent cells, for ``{Err[-1]}``."""
        if self._errors is None:
            from .._chat.interpolation import ErrorLog

            self._errors = ErrorLog()
        return self._errors

    @property
    def sessions(self) -> Conversations:
        """The ``--session`` conversations of this kernel (the store ``lm.session`` uses)."""
        from .._chat.sessions import Conversations
        from .._core.session import SESSION

        return SESSION.get(Conversations)

    @property
    def usage_text(self) -> str:
        """The help of ``%llm``, with every line command's usage."""
        return _full_help()

    @property
    def _shell(self) -> Any:
        if self.shell is None:
            raise RuntimeError("LLMMagics needs a shell: load it with %load_ext llm_magics")
        return self.shell

    # --- the magic -----------------------------------------------------------------------

    @magic_arguments()
    @argument(
        "model",
        nargs="?",
        default=None,
        help="provider:model, `local`, an alias or a registered name",
    )
    @argument("-s", "--system", help='system prompt (quote it: -s "You are terse.")')
    @argument("-t", "--temperature", type=float, help="sampling temperature, 0 to 2")
    @argument("--max-tokens", type=int, dest="max_tokens", help="longest answer, in tokens")
    @argument(
        "-f",
        "--format",
        choices=FORMATS,
        help="markdown (default), text, code (offers the code as a new cell), json (parsed and shown as a tree), html",
    )
    @argument(
        "-o", "--output", metavar="VAR", help="store the Response (or the parsed JSON) in VAR"
    )
    @argument(
        "--no-cache",
        action="store_true",
        dest="no_cache",
        help="ask again even if this exact prompt was answered before",
    )
    @argument(
        "--no-stream",
        action="store_true",
        dest="no_stream",
        help="show the answer only when complete",
    )
    @argument(
        "--session",
        metavar="NAME",
        help="continue the conversation NAME (see %%llm history / reset / export)",
    )
    @argument(
        "--image",
        action="append",
        default=[],
        metavar="EXPR",
        help="attach an image: a variable (img, fig, obj.attr, xs[0]), a file path or a URL; repeatable",
    )
    @argument(
        "--audio", action="append", default=[], metavar="EXPR", help="attach audio, like --image"
    )
    @argument(
        "--schema",
        metavar="EXPR",
        help="a pydantic model or JSON-schema dict variable: the answer is parsed into it",
    )
    @argument(
        "--raw", action="store_true", help="send the cell exactly as written (no {placeholders})"
    )
    @argument(
        "--template",
        metavar="NAME",
        help="fill a prompt template (lm.templates, or an lm.Template variable): the cell "
        "body fills its main variable (%%llm templates lists them)",
    )
    @argument(
        "--var",
        action="append",
        default=[],
        metavar="K=V",
        help="a value for a template variable; repeatable (others come from notebook "
        "variables of the same name, then the template's defaults)",
    )
    @argument(
        "--tools",
        metavar="NAME,...",
        help="let the model call these notebook functions (the agent loop); each call "
        "shows as it happens, then the answer",
    )
    @line_cell_magic
    def llm(self, line: str, cell: str | None = None) -> None:
        __tracebackhide__ = True
        with user_errors():
            if cell is None:
                self._line(line)
            else:
                self._cell(line, cell)

    llm.__doc__ = _HELP.replace("{commands}", _SEE_HELP) + "\n" + (llm.__doc__ or "")

    # --- cells ---------------------------------------------------------------------------

    def _parse(self, line: str) -> argparse.Namespace:
        try:
            argv = shlex.split(line, comments=False, posix=True)
        except ValueError as exc:
            raise UsageError(f"cannot read the %%llm line ({exc}): check the quotes") from None
        args: argparse.Namespace = self.llm.parser.parse_args(argv)
        if args.output is not None and (
            not args.output.isidentifier() or keyword.iskeyword(args.output)
        ):
            raise UsageError(f"-o needs a variable name; {args.output!r} is not one")
        if args.output is not None and hasattr(builtins, args.output):
            raise UsageError(
                f"-o {args.output} would hide Python's built-in {args.output}; pick another name"
            )
        if args.temperature is not None and not 0 <= args.temperature <= 2:
            raise UsageError(f"-t (temperature) must be between 0 and 2; got {args.temperature}")
        if args.max_tokens is not None and args.max_tokens < 1:
            raise UsageError(f"--max-tokens must be a positive number; got {args.max_tokens}")
        if args.var and not args.template:
            raise UsageError(
                "--var gives a value to a template variable: use it with --template NAME "
                "(%llm templates lists them); in a plain cell write {name} in the prompt"
            )
        return args

    def _cell(self, line: str, cell: str) -> None:
        from .cell import CellRun

        __tracebackhide__ = True
        CellRun(self, self._parse(line), cell).run()

    # --- recent errors, for {Err[-1]} ----------------------------------------------------

    def _after_cell(self, result: Any) -> None:
        exc = result.error_in_exec or result.error_before_exec
        if exc is None:
            return
        from .._chat.interpolation import ErrorRecord

        info = getattr(result, "info", None)
        self.errors.record(
            ErrorRecord.from_exception(
                exc, result.execution_count, getattr(info, "raw_cell", "") or ""
            )
        )

    # --- line commands -------------------------------------------------------------------

    def _line(self, line: str) -> None:
        from .commands import run_command

        try:
            argv = shlex.split(line, posix=True)
        except ValueError as exc:
            raise UsageError(f"cannot read the %llm line ({exc}): check the quotes") from None
        if not argv or argv in (["help"], ["-h"], ["--help"]):
            print(self.usage_text)
            return
        run_command(self, argv[0], argv[1:])


@functools.cache
def _full_help() -> str:
    """The help of the magic with every line command's usage, generated from their parsers
    on first read (so %load_ext does not build twelve parsers)."""
    from .commands import commands_help

    return (LLMMagics.llm.__doc__ or "").replace(_SEE_HELP, commands_help())


# IPython's `%%llm?` asks an object for getdoc() before reading __doc__.
LLMMagics.llm.getdoc = _full_help


_loaded: weakref.WeakKeyDictionary[Any, LLMMagics] = weakref.WeakKeyDictionary()


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%llm`` / ``%llm`` and the error recorder behind ``{Err[-1]}``."""
    if ipython in _loaded:
        return
    magics = LLMMagics(shell=ipython)
    ipython.register_magics(magics)
    ipython.events.register("post_run_cell", magics._after_cell)
    _loaded[ipython] = magics


def unload_ipython_extension(ipython: Any) -> None:
    magics = _loaded.pop(ipython, None)
    if magics is None:
        return
    ipython.events.unregister("post_run_cell", magics._after_cell)
    if magics in ipython.configurables:
        ipython.configurables.remove(magics)
    manager = ipython.magics_manager
    for kind in ("line", "cell"):
        manager.magics[kind].pop("llm", None)
    manager.registry.pop(type(magics).__name__, None)

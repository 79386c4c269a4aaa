"""What a notebook user sees when something goes wrong: one line, not a traceback through
this package. Mistakes of the user (a bad option, an unknown name in a prompt, a missing key)
are IPython ``UsageError``s; a failed request is its own error, shown as one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from IPython.core.error import UsageError

from .._core.errors import ConfigError, LLMError

__all__ = ["short_error", "user_errors"]


def short_error(exc: BaseException, text: str | None = None) -> BaseException:
    """Make IPython render ``exc`` as one line instead of a traceback through this package."""
    line = f"\x1b[0;31m{type(exc).__name__}\x1b[0m: {text or exc}"
    exc._render_traceback_ = lambda: [line]  # type: ignore[attr-defined]
    return exc


@contextmanager
def user_errors() -> Iterator[None]:
    """Map llm_magics errors to what a notebook user should see (see the module docstring)."""
    from .._chat.interpolation import PromptError

    __tracebackhide__ = True
    try:
        yield
    except UsageError:
        raise
    except PromptError as exc:
        raise UsageError(str(exc)) from None
    except ConfigError as exc:  # also UnknownModelError / ModelNotFoundError
        raise UsageError(str(exc)) from None
    except LLMError as exc:
        if not hasattr(exc, "_render_traceback_"):
            short_error(exc)
        raise

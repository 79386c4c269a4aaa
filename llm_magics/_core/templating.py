"""What ``chat`` recognises as a prompt template, without knowing the template class.

``c.chat(t, code="...", language="Go")``: the client (``_client/``) sits below the template
engine (``_chat/templates/``), so it cannot import :class:`llm_magics.Template`. It
recognises any object shaped like this protocol instead: a ``name``, the ``variables`` it
takes, and ``render(**values)`` returning what ``chat`` accepts as a prompt (message dicts,
:class:`~llm_magics._core.types.Message` objects, or text). Keyword arguments of the call
that are variables of the template fill it; the others stay request options.

A template variable may therefore never be named like an option of ``chat``
(:data:`RESERVED_VARIABLES`): ``{system}`` or ``{temperature}`` would be ambiguous.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .options import CHAT_OPTIONS

__all__ = ["RESERVED_VARIABLES", "PromptTemplate", "is_prompt_template"]

#: Names a template variable cannot have: the options of ``chat`` / ``stream`` and the
#: names of their positional parameters.
RESERVED_VARIABLES = CHAT_OPTIONS | {"prompt", "self"}


@runtime_checkable
class PromptTemplate(Protocol):
    """A prompt with named holes: ``render(**values)`` fills them."""

    @property
    def name(self) -> str: ...

    @property
    def variables(self) -> tuple[str, ...]: ...

    def render(self, **values: Any) -> Any: ...


def is_prompt_template(value: Any) -> bool:
    """Whether ``value`` is a prompt template (cheap: plain prompts answer at once)."""
    if isinstance(value, str | Sequence | Mapping):
        return False
    return callable(getattr(value, "render", None)) and isinstance(
        getattr(value, "variables", None), tuple
    )

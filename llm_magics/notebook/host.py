"""What a cell run and the line commands read of the magics object.

:class:`~llm_magics.notebook.magics.LLMMagics` implements it; naming the contract here keeps
the cell and command modules below the magics module instead of importing it back.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["MagicsHost"]


class MagicsHost(Protocol):
    """The settings (traitlets of ``LLMMagics``) and state a cell run or a command uses."""

    default_model: Any
    default_format: Any
    default_system: Any
    temperature: Any
    max_tokens: Any
    stream: Any
    update_interval: Any
    max_history: Any
    show_usage: Any
    last_view: Any

    @property
    def _shell(self) -> Any: ...

    @property
    def sessions(self) -> Any: ...

    @property
    def errors(self) -> Any: ...

    @property
    def usage_text(self) -> str:
        """The help of ``%llm``."""
        ...

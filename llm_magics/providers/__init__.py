"""Providers: the extension point. A provider is a small class with capability flags and one
required method (:class:`Provider`); one module per wire protocol implements it.

Providers never import each other, and nothing above the runtime layer.
"""

from .base import Provider

__all__ = ["Provider"]

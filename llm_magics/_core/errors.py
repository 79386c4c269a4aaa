"""The one exception tree of llm_magics.

Every failure a user can meet is an :class:`LLMError`. Provider failures are translated from
HTTP status codes, provider error bodies and transport exceptions at one boundary
(:mod:`llm_magics._runtime.http_errors`), always ``from`` the original exception, so the cause stays
visible in tracebacks::

    LLMError
     ├── ConfigError                  something to fix in settings: missing key, bad option
     │    └── UnknownModelError       a model id that resolves to nothing
     ├── OutputParseError             the answer did not parse into the requested schema; .text
     ├── BudgetExceededError          refused before sending: it would pass lm.budget / max_cost
     └── ProviderError                the provider (or the path to it) failed; .status_code
          ├── AuthenticationError     401 / 403: the key is missing, wrong or not allowed
          ├── RateLimitError          429: .retry_after in seconds when the provider said
          ├── BadRequestError         400 / 404 / 413 / 422: the request itself is wrong
          │    ├── ContextLengthError the prompt does not fit the model's context window
          │    └── ModelNotFoundError the provider does not know the model (also UnknownModelError)
          ├── TimeoutError            connect / read / whole-request timeout (also builtins.TimeoutError)
          ├── APIConnectionError      connection refused, reset, DNS failure
          └── StreamInterruptedError  a stream broke after text had arrived; .partial_text kept

Errors carry ``request`` and ``response`` (httpx2 objects) when there was one, plus
``provider`` and ``model``. No message, repr or attribute ever contains an API key: every
message is scrubbed of every key the package knows (a proxy may echo one), the request and
response kept are copies with credential headers masked, and key identifiers show their last
four characters only (see :mod:`llm_magics._core.secrets`).
"""

from __future__ import annotations

import builtins
from typing import Any

from .secrets import masked_request, masked_response, scrub

__all__ = [
    "APIConnectionError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ConfigError",
    "ContextLengthError",
    "LLMError",
    "ModelNotFoundError",
    "OutputParseError",
    "ProviderError",
    "RateLimitError",
    "StreamInterruptedError",
    "TimeoutError",
    "UnknownModelError",
]


class LLMError(Exception):
    """Base class of every error llm_magics raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        request: Any = None,
        response: Any = None,
    ) -> None:
        # The one place every message passes: a provider (or a proxy) may have echoed a key.
        message = scrub(message)
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.request = masked_request(request)
        self.response = masked_response(response)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(LLMError):
    """A setting is missing or wrong: the message names the env var, file or option to fix."""


class UnknownModelError(ConfigError):
    """A model id, alias or provider name that resolves to nothing known."""


class EmptyPromptError(ConfigError):
    """The prompt has no text, media or tool result: a problem of this prompt alone (one row
    of a DataFrame map), not of the settings every other prompt shares."""


class OutputParseError(LLMError):
    """The model answered, but not with JSON matching the requested schema.

    ``text`` is the raw answer; ``response`` the full :class:`~llm_magics.Response`.
    """

    def __init__(self, message: str, *, text: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.text = text


class BudgetExceededError(LLMError):
    """A call (or a DataFrame map) was refused before anything was sent: it would push spend
    past the kernel's budget (``lm.budget``) or the run's ``max_cost=``, or its price is
    unknown while a limit is set. ``limit`` and ``spent`` are in USD; ``estimate`` is what
    the refused work was expected to cost (None when unknown)."""

    def __init__(
        self,
        message: str,
        *,
        limit: float | None = None,
        spent: float | None = None,
        estimate: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.limit = limit
        self.spent = spent
        self.estimate = estimate


class ProviderError(LLMError):
    """The provider answered with an error, or could not be reached.

    ``status_code`` is the HTTP status when there was a response, else None.
    """

    def __init__(self, message: str, *, status_code: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code


class AuthenticationError(ProviderError):
    """401/403: the key was rejected. The message names the environment variable to set."""


class RateLimitError(ProviderError):
    """429: too many requests. ``retry_after`` is the wait in seconds the provider asked for."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BadRequestError(ProviderError):
    """The provider refused the request as malformed or impossible (400, 404, 413, 422)."""


class ContextLengthError(BadRequestError):
    """The prompt (plus max_tokens) is longer than the model's context window."""


class ModelNotFoundError(BadRequestError, UnknownModelError):
    """The provider says the model does not exist or is not available to this key."""


class TimeoutError(ProviderError, builtins.TimeoutError):
    """Connecting, reading, or the whole request took longer than its timeout."""


class APIConnectionError(ProviderError, builtins.ConnectionError):
    """The provider could not be reached: refused, reset, DNS or TLS failure."""


class StreamInterruptedError(ProviderError):
    """A stream broke after some text had arrived; ``partial_text`` holds what arrived."""

    def __init__(self, message: str, *, partial_text: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text

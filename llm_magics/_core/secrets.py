"""Keeping API keys out of everything a person, a log or a file can see.

Every key the package holds is remembered here when its :class:`~llm_magics._core.secrets.APIKey` is
made (pools from the environment, registered servers, ``api_key=``). :func:`scrub` replaces
each of them, and any value of a ``*_API_KEY(S)`` environment variable, with its last four
characters, wherever it stands in a text: the error boundary runs every provider message
through it, since a proxy may echo the ``Authorization`` header in its error body.
:func:`masked_request` and :func:`masked_response` are the copies of httpx2 objects that an
error keeps: credential headers masked, bodies scrubbed. :class:`SecretHeaders` is the header
mapping providers send: its repr (a verbose traceback's frame locals) shows masked values.

Thread safety: :func:`remember` and :func:`scrub` may be called from any thread (a lock
guards the set of secrets and the pattern built from it).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "APIKey",
    "SecretHeaders",
    "mask",
    "mask_exception",
    "masked_request",
    "masked_response",
    "remember",
    "scrub",
]

#: Shorter values are not treated as secrets when scrubbing text: placeholders such as
#: ``lm-studio`` or ``not-needed`` would mangle ordinary words, and no provider issues keys
#: this short. (Masking a key for display still shows its last four characters.)
MIN_SECRET = 16
CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key"}
)

_lock = threading.Lock()
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None
_pattern_for: frozenset[str] = frozenset()


def mask(secret: str) -> str:
    """``...abcd``: the last four characters, or ``****`` for a value under 8."""
    return f"...{secret[-4:]}" if len(secret) >= 8 else "****"


def remember(secret: str) -> None:
    """From now on, :func:`scrub` masks ``secret`` wherever it appears."""
    global _pattern
    if len(secret) < MIN_SECRET:
        return
    with _lock:
        if secret not in _known:
            _known.add(secret)
            _pattern = None


def _environment_secrets() -> set[str]:
    found: set[str] = set()
    for name, value in os.environ.items():
        if name.endswith(("_API_KEY", "_API_KEYS")):
            found.update(v.strip() for v in value.split(",") if len(v.strip()) >= MIN_SECRET)
    return found


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern, _pattern_for
    with _lock:
        secrets = frozenset(_known | _environment_secrets())
        if _pattern is None or secrets != _pattern_for:
            # Longest first, so a key that contains another is masked whole.
            ordered = sorted(secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
            _pattern_for = secrets
        return _pattern


def _scrubber() -> Callable[[str], str]:
    """:func:`scrub` with the secrets as they are now, for masking many texts in a row (the
    secrets are gathered, environment included, once rather than per text)."""
    pattern = _current_pattern()
    if pattern is None:
        return lambda text: text
    return lambda text: pattern.sub(lambda m: mask(m.group(0)), text) if text else text


def scrub(text: str) -> str:
    """``text`` with every known secret masked to its last four characters."""
    return _scrubber()(text) if text else text


def _masked_value(name: str, value: str, clean: Callable[[str], str]) -> str:
    if name.lower() in CREDENTIAL_HEADERS:
        scheme, _, secret = value.partition(" ")
        return f"{scheme} {mask(secret)}" if secret else mask(value)
    return clean(value)


def _masked_headers(items: Iterable[tuple[str, str]], clean: Callable[[str], str]) -> list[Any]:
    return [(k, _masked_value(k, v, clean)) for k, v in items]


class SecretHeaders(dict[str, str]):
    """The headers of a request; printing them shows credentials masked."""

    def __repr__(self) -> str:
        return repr(dict(_masked_headers(self.items(), _scrubber())))


def _scrub_bytes(content: bytes, clean: Callable[[str], str]) -> bytes:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return content
    cleaned = clean(text)
    return content if cleaned == text else cleaned.encode("utf-8")


def masked_request(request: Any) -> Any:
    """A copy of an httpx2 Request with credential headers masked and the body scrubbed."""
    if request is None or getattr(request, "_llm_magics_masked", False):
        return request
    import httpx2

    try:
        content = request.content
    except Exception:  # a streaming body that was never read
        content = b""
    clean = _scrubber()
    headers = _masked_headers(request.headers.multi_items(), clean)
    copy = httpx2.Request(
        request.method, request.url, headers=headers, content=_scrub_bytes(content, clean)
    )
    copy._llm_magics_masked = True  # type: ignore[attr-defined]
    return copy


def masked_response(response: Any) -> Any:
    """A copy of an httpx2 Response: masked request, scrubbed body, masked headers."""
    if response is None or getattr(response, "_llm_magics_masked", False):
        return response
    import httpx2

    if not isinstance(response, httpx2.Response):
        return response
    try:
        content = response.content
    except Exception:  # a stream that was never read
        content = b""
    clean = _scrubber()
    # The body is stored decoded, so the copy must not claim a compression it lacks.
    kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() != "content-encoding"]
    copy = httpx2.Response(
        response.status_code,
        headers=_masked_headers(kept, clean),
        content=_scrub_bytes(content, clean),
        request=masked_request(_request_of(response)),
    )
    copy._llm_magics_masked = True  # type: ignore[attr-defined]
    return copy


def _request_of(response: Any) -> Any:
    try:
        return response.request
    except RuntimeError:  # httpx2 raises when a Response has no request
        return None


def mask_exception(exc: BaseException) -> None:
    """Scrub a foreign exception (an httpx2 error that becomes a ``__cause__``) in place:
    its message, its request, and the locals of its finished frames."""
    import traceback

    clean = _scrubber()
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # down the whole chain
        seen.add(id(current))
        current.args = tuple(clean(a) if isinstance(a, str) else a for a in current.args)
        request = getattr(current, "_request", None)
        if request is not None and hasattr(request, "headers"):
            current._request = masked_request(request)  # type: ignore[attr-defined]
        if current.__traceback__ is not None:
            # Frames inside the HTTP libraries hold the raw header bytes as locals.
            traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


class APIKey:
    """A secret that prints as its last four characters."""

    __slots__ = ("_secret", "env")

    def __init__(self, secret: str, env: str | None = None) -> None:
        self._secret = secret
        self.env = env
        remember(secret)  # so the error boundary masks it wherever a server echoes it

    def reveal(self) -> str:
        """The secret itself: only for building a request header."""
        return self._secret

    @property
    def hint(self) -> str:
        return mask(self._secret).removeprefix("...")

    @property
    def fingerprint(self) -> str:
        """A stable name of this key that reveals nothing of it (a prefix of a salted
        SHA-256): a persisted batch job records with it which key made the job."""
        import hashlib

        digest = hashlib.sha256(b"llm-magics-key\x00" + self._secret.encode("utf-8"))
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        return f"APIKey('...{self.hint}')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> Any:
        raise TypeError("APIKey objects are not picklable: keys never leave the process")

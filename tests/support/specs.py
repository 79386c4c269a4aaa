"""Wire-conformance helpers: validate HTTP traffic against the providers' own API specs.

The provider OpenAPI files are test data of the project and live in ``tests/specs/`` (see
``SOURCES.md`` there for their origin and ``SHA256SUMS`` for their checksums), so a clone of
the repository alone runs every conformance test; ``LLM_MAGICS_SPECS_DIR`` points elsewhere.  This module loads them once per process, rewrites the OpenAPI 3.0-isms
they contain into plain JSON Schema (Draft 2020-12), and validates with ``jsonschema`` +
``referencing`` (one ``Registry`` holding the whole spec document, so every
``#/components/schemas/X`` reference resolves).

Public API (other test modules code against exactly these names)::

    SPECS_DIR, requires_specs, SpecViolation, load_spec(provider) -> Spec,
    Spec.operation / validate_request / validate_response / validate_stream_event /
    validate_component, SpecTransport (an ``httpx2.MockTransport`` that validates).

Conversions applied while loading (each one is needed by at least one of the six files):

* ``nullable: true`` -> ``type: [T, "null"]`` (plus ``null`` in a sibling ``enum``) when the
  schema has a plain ``type``; otherwise ``anyOf: [<schema>, {"type": "null"}]``.
  ``nullable: false`` is dropped.
* duplicate ``enum`` members (``null`` listed twice) are de-duplicated.
* OpenAPI 3.0 boolean ``exclusiveMinimum``/``exclusiveMaximum`` become the numeric 2020-12 form.
* ``$recursiveRef: "#"`` (OpenAI's ``CompoundFilter``; unknown to Draft 2020-12, where it would
  silently accept anything) becomes a ``$ref`` to the enclosing component.
* a property listed in ``required`` whose schema says ``default: null`` is made optional.  Only
  the Anthropic file has these (85): it is generated from Pydantic models where
  ``Optional[X] = None`` fields are emitted as required, but the real API omits them (a text
  block without ``citations``, a message without ``container``/``stop_details``, a stream
  ``error`` event without ``request_id``).  A default makes "required" meaningless anyway.
* ``discriminator``, ``example(s)``, ``x-*`` are left alone (unknown keywords, ignored).
* ``format`` is not asserted (OpenAPI formats such as ``binary``/``unixtime``/``int32`` are
  annotations here), so a multipart file part only has to be a string.
* ``readOnly``/``writeOnly`` do not occur in any of the six files, so they need no handling.

A few spec errata are patched (see ``_ERRATA``); every patch is listed with its reason.

Stream event schemas (what ``validate_stream_event`` checks one SSE ``data:`` / NDJSON line
against): the success response's own ``text/event-stream`` or ``application/x-ndjson`` schema
when the spec gives a real one, which covers OpenAI (chat ->
``CreateChatCompletionStreamResponse``, also Responses/transcription streams) and Ollama
(``/api/chat`` -> ``ChatStreamEvent``, ``/api/generate`` -> ``GenerateStreamEvent``,
``/api/pull`` -> ``StatusEvent``).  Otherwise the fallback table ``_STREAM_EVENT_FALLBACK``:
Anthropic ``/v1/messages`` -> ``MessageStreamEvent`` (the union incl. ``Ping``), Gemini
``:streamGenerateContent`` -> ``GenerateContentResponse`` (the file only says
``{type: string}``), Groq chat -> ``CreateChatCompletionStreamResponse``, Cerebras chat ->
``ChatChunkResponse``.  An event carrying a top-level ``error`` is checked against the
provider's error schema instead (``_STREAM_ERROR_SCHEMA``).  Ollama's stream schemas require
no field at all, so they catch wrong types but not missing fields.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import difflib
import json
import os
import re
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx2
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "BUNDLED_SPECS_DIR",
    "PROVIDERS",
    "SPECS_DIR",
    "FormFile",
    "Operation",
    "Spec",
    "SpecTransport",
    "SpecViolation",
    "UnknownOperation",
    "load_spec",
    "parse_multipart",
    "parse_sse",
]

# --------------------------------------------------------------------------------------------
# Where the specs are


#: The copy kept in the repository.
BUNDLED_SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"


def _find_specs_dir() -> Path:
    env = os.environ.get("LLM_MAGICS_SPECS_DIR")
    return Path(env).expanduser() if env else BUNDLED_SPECS_DIR


SPECS_DIR: Path = _find_specs_dir()

SPEC_FILES: dict[str, str] = {
    "openai": "openai.openapi.yaml",
    "anthropic": "anthropic.openapi.tryagi.json",
    "gemini": "gemini-native.openapi.whit3rabbit.json",
    "groq": "groq.openapi.tryagi.yaml",
    "cerebras": "cerebras.openapi.apievangelist-original.yml",
    "ollama": "ollama.openapi.yaml",
}
PROVIDERS: tuple[str, ...] = tuple(SPEC_FILES)

# Version prefixes a client may put in front of a spec path (or a spec may have in its paths
# while the caller left it out).  Server base paths from each spec's ``servers`` are added.
_KNOWN_PREFIXES: tuple[str, ...] = ("/openai/v1", "/v1beta", "/v1", "/openai", "/api")

# Stream event schemas for operations whose spec does not describe the stream with a usable
# schema (the Gemini file says ``text/event-stream: {type: string}``; Anthropic, Groq and
# Cerebras describe only the JSON body).  Keyed by (provider, spec path template).
_STREAM_EVENT_FALLBACK: dict[tuple[str, str], str] = {
    ("anthropic", "/v1/messages"): "MessageStreamEvent",
    ("anthropic", "/v1/messages?beta=true"): "BetaMessageStreamEvent",
    ("gemini", "/v1beta/models/{model}:streamGenerateContent"): "GenerateContentResponse",
    ("gemini", "/v1beta/models/{model}:generateContent"): "GenerateContentResponse",
    ("groq", "/openai/v1/chat/completions"): "CreateChatCompletionStreamResponse",
    ("cerebras", "/v1/chat/completions"): "ChatChunkResponse",
    ("cerebras", "/v1/completions"): "CreateCompletionResponse",
}

# A streamed event that carries an error (``{"type": "error", "error": {...}}`` from Anthropic,
# ``{"error": {...}, "status_code": 500}`` from Cerebras, ``{"error": {...}}`` from OpenAI-style
# servers) is validated against the provider's error schema instead of the chunk schema.
_STREAM_ERROR_SCHEMA: dict[str, str] = {
    "openai": "ErrorResponse",
    "anthropic": "ErrorResponse",
    "groq": "ErrorResponse",
    "cerebras": "ErrorChunkResponse",
    "ollama": "ErrorResponse",
}

_STREAM_MEDIA_TYPES = ("text/event-stream", "application/x-ndjson", "application/jsonl")


def _patch_gemini(doc: dict[str, Any]) -> list[str]:
    schemas = doc["components"]["schemas"]
    notes = []
    embed = schemas.get("EmbedContentRequest", {})
    props = embed.get("properties")
    if isinstance(props, dict) and "model" not in props:
        # The real API documents EmbedContentRequest.model ("models/{model}") and REQUIRES it
        # for every item of batchEmbedContents.requests; the third-party file omits it while
        # setting additionalProperties: false, so every correct batch request would fail.
        props["model"] = {"type": "string"}
        notes.append(
            "gemini: added EmbedContentRequest.properties.model (real API requires it in batchEmbedContents)"
        )
    item = schemas.get("BatchGenerateRequest", {}).get("properties", {})
    if isinstance(item.get("request"), dict) and "$ref" not in item["request"]:
        # The real API takes a whole GenerateContentRequest per inline request of a batch
        # (systemInstruction, tools, safetySettings...: ai.google.dev/gemini-api/docs/batch-mode);
        # the file lists three of its fields with additionalProperties: false, which would
        # refuse every request with a system prompt.
        item["request"] = {"$ref": "#/components/schemas/GenerateContentRequest"}
        notes.append("gemini: BatchGenerateRequest.request is a GenerateContentRequest")
    return notes


# Per-provider patches for places where a spec is provably wrong (stricter than the real API).
_ERRATA: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "gemini": _patch_gemini,
}


# --------------------------------------------------------------------------------------------
# Errors


class SpecViolation(AssertionError):
    """A body does not match the provider's published schema.

    The message names the provider, the operation, the JSON path inside the body and what was
    wrong; the same facts are available as attributes.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        operation: str = "",
        where: str = "",
        json_path: str = "$",
        errors: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.operation = operation
        self.where = where
        self.json_path = json_path
        self.errors: list[str] = list(errors)

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "spec_violation",
            "message": self.message,
            "provider": self.provider,
            "operation": self.operation,
            "where": self.where,
            "json_path": self.json_path,
            "errors": self.errors,
        }


class UnknownOperation(KeyError):
    """No operation in the spec matches a method + path (message lists near matches)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown operation"


# --------------------------------------------------------------------------------------------
# Loading and converting the documents


def _yaml_loader() -> Any:
    """libyaml's C loader when available: ~10x faster on the 3 MB OpenAI file."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_document(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = yaml.load(text, Loader=_yaml_loader())
    else:
        doc = yaml.load(text, Loader=_yaml_loader())
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not an OpenAPI document")
    return doc


def _jsonable(node: Any) -> Any:
    """YAML may produce int keys (``200:``) and dates; make the tree plain JSON."""
    if isinstance(node, dict):
        return {str(k): _jsonable(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_jsonable(v) for v in node]
    if isinstance(node, (_dt.date, _dt.datetime)):
        return node.isoformat()
    return node


_SCHEMA_MAP_KEYS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_ONE_KEYS = frozenset(
    {
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedItems",
        "unevaluatedProperties",
        "additionalItems",
        "contentSchema",
        "items",
    }
)
_SCHEMA_LIST_KEYS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
_COMPOSITE_KEYS = ("$ref", "allOf", "anyOf", "oneOf", "not", "const")


@dataclass
class _ConvertStats:
    nullable: int = 0
    enum_dedup: int = 0
    exclusive_bool: int = 0
    recursive_ref: int = 0
    default_null_required: int = 0


class _Converter:
    """OpenAPI 3.0/3.1 schema dialect -> JSON Schema Draft 2020-12 (in place where possible)."""

    def __init__(self) -> None:
        self.stats = _ConvertStats()

    def document(self, doc: dict[str, Any]) -> dict[str, Any]:
        out = self._non_schema(doc, None)
        assert isinstance(out, dict)
        return out

    def _non_schema(self, node: Any, component: str | None) -> Any:
        if isinstance(node, list):
            return [self._non_schema(v, component) for v in node]
        if not isinstance(node, dict):
            return node
        for key in list(node):
            value = node[key]
            if key.startswith("x-") or key in ("example", "examples"):
                continue
            if key == "schema":
                node[key] = self.schema(value, component)
            elif key in ("schemas", "definitions") and isinstance(value, dict):
                for name in list(value):
                    value[name] = self.schema(
                        value[name],
                        f"#/components/schemas/{_escape(name)}"
                        if key == "schemas"
                        else f"#/definitions/{_escape(name)}",
                    )
            else:
                node[key] = self._non_schema(value, component)
        return node

    def schema(self, node: Any, component: str | None) -> Any:
        if not isinstance(node, dict):
            return node
        for key in list(node):
            value = node[key]
            if key in _SCHEMA_MAP_KEYS and isinstance(value, dict):
                for name in list(value):
                    value[name] = self.schema(value[name], component)
            elif key in _SCHEMA_LIST_KEYS and isinstance(value, list):
                node[key] = [self.schema(v, component) for v in value]
            elif key in _SCHEMA_ONE_KEYS and isinstance(value, dict):
                node[key] = self.schema(value, component)
        if "enum" in node and isinstance(node["enum"], list):
            deduped: list[Any] = []
            seen: set[str] = set()
            for member in node["enum"]:
                marker = json.dumps(member, sort_keys=True)
                if marker not in seen:
                    seen.add(marker)
                    deduped.append(member)
            if len(deduped) != len(node["enum"]):
                self.stats.enum_dedup += 1
                node["enum"] = deduped
        for keyword, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(node.get(keyword), bool):
                self.stats.exclusive_bool += 1
                if node.pop(keyword) and bound in node:
                    node[keyword] = node.pop(bound)
        required, properties = node.get("required"), node.get("properties")
        if isinstance(required, list) and isinstance(properties, dict):
            optional = {
                name
                for name in required
                if isinstance(properties.get(name), dict)
                and "default" in properties[name]
                and properties[name]["default"] is None
            }
            if optional:
                self.stats.default_null_required += len(optional)
                node["required"] = [name for name in required if name not in optional]
        if "$recursiveRef" in node:
            self.stats.recursive_ref += 1
            target = node.pop("$recursiveRef")
            node["$ref"] = component if (target == "#" and component) else target
        node.pop("$recursiveAnchor", None)
        if "nullable" in node:
            nullable = node.pop("nullable")
            if nullable is True:
                self.stats.nullable += 1
                return self._make_nullable(node)
        return node

    @staticmethod
    def _make_nullable(node: dict[str, Any]) -> dict[str, Any]:
        kind = node.get("type")
        if isinstance(kind, (str, list)) and not any(k in node for k in _COMPOSITE_KEYS):
            kinds = [kind] if isinstance(kind, str) else list(kind)
            if "null" not in kinds:
                kinds.append("null")
            node["type"] = kinds
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
            return node
        wrapped: dict[str, Any] = {"anyOf": [node, {"type": "null"}]}
        for annotation in ("title", "description"):
            if annotation in node:
                wrapped[annotation] = node[annotation]
        return wrapped


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(*tokens: str) -> str:
    return "".join("/" + _escape(t) for t in tokens)


# --------------------------------------------------------------------------------------------
# Multipart and stream parsing


class FormFile(str):
    """A multipart file part, standing in for the file in the validated form dict.

    It *is* a ``str`` (``"<file name.wav: 1234 bytes, audio/wav>"``) so that a schema's
    ``type: string, format: binary`` accepts it; the real bytes are in ``.content``.
    """

    filename: str
    content_type: str
    content: bytes

    def __new__(
        cls, filename: str, content: bytes, content_type: str = "application/octet-stream"
    ) -> FormFile:
        self = super().__new__(cls, f"<file {filename}: {len(content)} bytes, {content_type}>")
        self.filename = filename
        self.content_type = content_type
        self.content = content
        return self


_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _header_params(value: str) -> tuple[str, dict[str, str]]:
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(";" + rest):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key.endswith("*"):  # RFC 5987: filename*=utf-8''name
            key = key[:-1]
            _, _, encoded = raw.partition("''")
            raw = unquote(encoded or raw)
        params[key] = raw
    return main.strip().lower(), params


def parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str | FormFile]]:
    """Parse a multipart/form-data body into ``[(name, value), ...]`` in wire order."""
    _, params = _header_params(content_type)
    boundary = params.get("boundary")
    if not boundary:
        raise ValueError(f"multipart content type without boundary: {content_type!r}")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 2:
        raise ValueError("multipart body does not contain its boundary")
    fields: list[tuple[str, str | FormFile]] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = chunk.partition(b"\n\n")
        if payload.endswith(b"\r\n"):
            payload = payload[:-2]
        elif payload.endswith(b"\n"):
            payload = payload[:-1]
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").splitlines():
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        _, disposition = _header_params(headers.get("content-disposition", ""))
        field_name = disposition.get("name")
        if field_name is None:
            raise ValueError(f"multipart part without a name: headers {headers}")
        if "filename" in disposition:
            part_type = headers.get("content-type", "application/octet-stream")
            fields.append((field_name, FormFile(disposition["filename"], payload, part_type)))
        else:
            fields.append((field_name, payload.decode("utf-8")))
    return fields


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str


def parse_sse(text: str) -> Iterator[SSEEvent]:
    """Split a complete text/event-stream body into events (comments and ids ignored)."""
    event: str | None = None
    data: list[str] = []
    for raw in re.split(r"\r\n|\r|\n", text):
        if raw == "":
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = None, []
            continue
        if raw.startswith(":"):
            continue
        name, _, value = raw.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEEvent(event, "\n".join(data))


# --------------------------------------------------------------------------------------------
# Operations and specs


@dataclass(frozen=True)
class _Template:
    key: str  # the spec's path key, e.g. "/v1/messages?beta=true"
    path: str  # "/v1/messages"
    query: dict[str, str]
    regex: re.Pattern[str]
    params: tuple[str, ...]
    literal_len: int
    stripped: str | None  # path with a known/base prefix removed (for callers that omit it)
    stripped_regex: re.Pattern[str] | None


def _compile_template(path: str) -> tuple[re.Pattern[str], tuple[str, ...], int]:
    parts = re.split(r"(\{[^}/]+\})", path)
    regex = ""
    params: list[str] = []
    literal = 0
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            params.append(name)
            regex += f"(?P<p{len(params) - 1}>[^/]+)"
        else:
            regex += re.escape(part)
            literal += len(part)
    return re.compile(regex + r"/?\Z"), tuple(params), literal


@dataclass(frozen=True, eq=False)
class Operation:
    """One (method, path template) of a spec, with JSON pointers to its schemas."""

    spec: Spec
    method: str
    path_template: str
    path_params: Mapping[str, str]
    definition: Mapping[str, Any]
    pointer: str  # JSON pointer of the operation object inside the document

    @property
    def provider(self) -> str:
        return self.spec.provider

    @property
    def operation_id(self) -> str | None:
        value = self.definition.get("operationId")
        return str(value) if value is not None else None

    def describe(self) -> str:
        op_id = f" ({self.operation_id})" if self.operation_id else ""
        return f"{self.method} {self.path_template}{op_id}"

    # -- request ---------------------------------------------------------------------------

    def request_body(self) -> tuple[str, dict[str, Any]] | None:
        body = self.definition.get("requestBody")
        if body is None:
            return None
        return self.spec._follow(self.pointer + "/requestBody")

    def request_media_types(self) -> list[str]:
        found = self.request_body()
        if found is None:
            return []
        return list((found[1].get("content") or {}).keys())

    def request_schema_pointer(self, content_type: str = "application/json") -> str | None:
        found = self.request_body()
        if found is None:
            return None
        pointer, body = found
        media = _pick_media(body.get("content") or {}, content_type)
        if media is None or "schema" not in body["content"][media]:
            return None
        return pointer + _pointer("content", media, "schema")

    # -- responses -------------------------------------------------------------------------

    def response(self, status: int) -> tuple[str, dict[str, Any]] | None:
        responses = self.definition.get("responses") or {}
        code = str(status)
        for key in (code, code[0] + "XX", code[0] + "xx", "default"):
            if key in responses:
                return self.spec._follow(self.pointer + _pointer("responses", key))
        return None

    def response_schema_pointer(
        self, status: int, content_type: str = "application/json"
    ) -> str | None:
        found = self.response(status)
        if found is None:
            return None
        pointer, response = found
        content = response.get("content") or {}
        media = _pick_media(content, content_type)
        if media is None or "schema" not in content[media]:
            return None
        return pointer + _pointer("content", media, "schema")

    def stream_event_schema_pointer(self) -> str | None:
        """Schema for one streamed event of this operation (SSE ``data:`` / NDJSON line).

        Order: the spec's own ``text/event-stream`` / ``application/x-ndjson`` schema of the
        success response when it is a real schema (not ``{type: string}``); else the
        documented fallback in ``_STREAM_EVENT_FALLBACK``; else None.
        """
        found = self.response(200)
        if found is not None:
            pointer, response = found
            content = response.get("content") or {}
            for media in _STREAM_MEDIA_TYPES:
                schema = (content.get(media) or {}).get("schema")
                if isinstance(schema, dict) and _is_structural(schema):
                    return pointer + _pointer("content", media, "schema")
        name = _STREAM_EVENT_FALLBACK.get((self.provider, self.path_template))
        if name is not None and self.spec.has_component(name):
            return self.spec.component_pointer(name)
        return None

    # -- validation ------------------------------------------------------------------------

    def validate_request(self, body: Any, content_type: str = "application/json") -> Any:
        """Validate a request body; returns the parsed body (form dict for multipart)."""
        media_type = content_type.split(";", 1)[0].strip().lower() or "application/json"
        found = self.request_body()
        if found is None:
            if body in (None, b"", "", {}):
                return body
            raise self._violation(
                "request body",
                "$",
                f"the spec defines no request body for this operation, got {_short(body)}",
            )
        _, request_body = found
        if body is None or body == b"":
            if request_body.get("required"):
                raise self._violation(
                    "request body", "$", "the request body is required but was empty"
                )
            return body
        content = request_body.get("content") or {}
        media = _pick_media(content, media_type)
        if media is None:
            raise self._violation(
                "request body",
                "$",
                f"content type {media_type!r} is not accepted; the spec allows {sorted(content)}",
            )
        schema_pointer = self.request_schema_pointer(media)
        if media_type == "multipart/form-data" or media == "multipart/form-data":
            if isinstance(body, (bytes, bytearray)):
                try:
                    pairs = parse_multipart(bytes(body), content_type)
                except ValueError as exc:
                    raise self._violation(
                        "request body", "$", f"malformed multipart body: {exc}"
                    ) from None
            elif isinstance(body, Mapping):
                pairs = list(body.items())
            else:
                raise self._violation(
                    "request body",
                    "$",
                    f"multipart body must be bytes or a dict, got {type(body).__name__}",
                )
            body = self.spec._form_to_dict(pairs, schema_pointer)
        elif isinstance(body, (bytes, bytearray, str)) and _is_json_media(media_type):
            try:
                body = json.loads(body)
            except ValueError as exc:
                raise self._violation("request body", "$", f"not valid JSON: {exc}") from None
        if schema_pointer is not None:
            self.spec._validate(schema_pointer, body, where="request body", operation=self)
        return body

    def validate_response(
        self, status: int, body: Any, content_type: str = "application/json"
    ) -> None:
        media_type = content_type.split(";", 1)[0].strip().lower() or "application/json"
        if media_type in _STREAM_MEDIA_TYPES:
            text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
            if isinstance(text, str):
                self.validate_stream_text(text, media_type)
                return
        if isinstance(body, (bytes, bytearray, str)) and _is_json_media(media_type):
            try:
                body = json.loads(body)
            except ValueError as exc:
                raise self._violation(
                    f"response body ({status})", "$", f"not valid JSON: {exc}"
                ) from None
        pointer = self.response_schema_pointer(status, media_type)
        if pointer is None:
            stream_pointer = self.stream_event_schema_pointer()
            if (
                _is_json_media(media_type)
                and 200 <= status < 300
                and isinstance(body, list)
                and stream_pointer is not None
                and self.path_template.endswith(":streamGenerateContent")
            ):
                # Gemini streamGenerateContent without ?alt=sse answers one JSON array of chunks.
                for i, item in enumerate(body):
                    self.validate_stream_event(item, where=f"response body ({status}) item [{i}]")
            return
        self.spec._validate(
            pointer, body, where=f"response body ({status} {media_type})", operation=self
        )

    def validate_stream_event(
        self, event: Any, *, where: str = "stream event", sse_event: str | None = None
    ) -> None:
        if isinstance(event, (bytes, bytearray, str)):
            try:
                event = json.loads(event)
            except ValueError as exc:
                raise self._violation(
                    where, "$", f"stream event is not valid JSON: {exc}"
                ) from None
        error_schema = _STREAM_ERROR_SCHEMA.get(self.provider)
        is_error = (
            isinstance(event, dict)
            and "error" in event
            and "choices" not in event
            and "candidates" not in event
        )
        if is_error and error_schema and self.spec.has_component(error_schema):
            pointer: str | None = self.spec.component_pointer(error_schema)
        else:
            pointer = self.stream_event_schema_pointer()
        if pointer is None:
            raise self._violation(
                where,
                "$",
                "the spec describes no stream event schema for this operation "
                "(add one to _STREAM_EVENT_FALLBACK in tests/support/specs.py if the operation streams)",
            )
        if (
            sse_event is not None
            and self.provider == "anthropic"
            and isinstance(event, dict)
            and event.get("type", sse_event) != sse_event
        ):
            raise self._violation(
                where, "$.type", f"SSE 'event: {sse_event}' carries data of type {event['type']!r}"
            )
        self.spec._validate(pointer, event, where=where, operation=self)

    def validate_stream_text(self, text: str, media_type: str = "text/event-stream") -> int:
        """Validate every event of a complete stream body; returns how many were checked."""
        count = 0
        if media_type == "text/event-stream":
            for n, sse in enumerate(parse_sse(text)):
                if sse.data.strip() == "[DONE]":
                    continue
                self.validate_stream_event(
                    sse.data, where=f"stream event #{n}", sse_event=sse.event
                )
                count += 1
        else:
            for n, line in enumerate(text.splitlines()):
                if line.strip():
                    self.validate_stream_event(line, where=f"stream line #{n}")
                    count += 1
        return count

    def _violation(self, where: str, json_path: str, problem: str) -> SpecViolation:
        return self.spec._make_violation(self, where, json_path, problem, [])


def _is_json_media(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _is_structural(schema: Mapping[str, Any]) -> bool:
    """False for placeholder schemas such as ``{type: string}`` on an event stream."""
    if "$ref" in schema or any(k in schema for k in ("properties", "oneOf", "anyOf", "allOf")):
        return True
    return schema.get("type") not in (None, "string")


def _pick_media(content: Mapping[str, Any], media_type: str) -> str | None:
    media_type = media_type.split(";", 1)[0].strip().lower()
    if media_type in content:
        return media_type
    for key in content:
        if key.split(";", 1)[0].strip().lower() == media_type:
            return key
    major = media_type.split("/", 1)[0]
    for candidate in (f"{major}/*", "*/*"):
        if candidate in content:
            return candidate
    if media_type == "application/json" and len(content) == 1:
        only = next(iter(content))
        if _is_json_media(only.split(";", 1)[0]):
            return only
    return None


def _short(value: Any, limit: int = 160) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _error_line(error: ValidationError, limit: int = 300) -> str:
    message = error.message
    if len(message) > limit:
        message = message[: limit - 3] + "..."
    return f"at {error.json_path}: {message}"


class Spec:
    """One provider's spec document, converted to JSON Schema 2020-12, with a Registry."""

    def __init__(
        self, provider: str, path: Path, document: dict[str, Any], *, load_seconds: float = 0.0
    ) -> None:
        self.provider = provider
        self.path = path
        self.load_seconds = load_seconds
        converter = _Converter()
        self.document: dict[str, Any] = converter.document(_jsonable(document))
        self.conversion = converter.stats
        patch = _ERRATA.get(provider)
        self.errata: list[str] = patch(self.document) if patch else []
        self.uri = f"https://llm-magics.invalid/specs/{provider}.json"
        resource: Resource[Any] = DRAFT202012.create_resource(self.document)
        self.registry: Registry[Any] = Registry().with_resource(self.uri, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        self._operations: dict[tuple[str, str], Operation] = {}
        self._lock = threading.Lock()
        self.base_paths: tuple[str, ...] = self._server_base_paths()
        self._templates: list[_Template] = self._compile_templates()

    def __repr__(self) -> str:
        return f"<Spec {self.provider} {self.path.name} ({len(self._templates)} paths)>"

    # -- document access -------------------------------------------------------------------

    def _resolve_pointer(self, pointer: str) -> Any:
        node: Any = self.document
        for token in pointer.split("/")[1:]:
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node

    def _follow(self, pointer: str) -> tuple[str, dict[str, Any]]:
        """Resolve a (non-schema) object, following ``$ref`` like ``#/components/responses/X``."""
        node = self._resolve_pointer(pointer)
        for _ in range(16):
            if not (
                isinstance(node, dict)
                and isinstance(node.get("$ref"), str)
                and node["$ref"].startswith("#")
            ):
                break
            pointer = node["$ref"][1:]
            node = self._resolve_pointer(pointer)
        return pointer, node

    def _schemas(self) -> dict[str, Any]:
        if "components" in self.document:
            return self.document["components"].get("schemas") or {}
        return self.document.get("definitions") or {}

    def has_component(self, name: str) -> bool:
        return name in self._schemas()

    def component_pointer(self, name: str) -> str:
        if name not in self._schemas():
            near = difflib.get_close_matches(name, list(self._schemas()), n=5, cutoff=0.5)
            raise KeyError(f"{self.provider}: no schema {name!r} in {self.path.name}; near: {near}")
        base = "components/schemas" if "components" in self.document else "definitions"
        return "/" + base + "/" + _escape(name)

    # -- path matching ---------------------------------------------------------------------

    def _server_base_paths(self) -> tuple[str, ...]:
        found: list[str] = []
        for server in self.document.get("servers") or []:
            url = server.get("url", "") if isinstance(server, dict) else ""
            path = urlsplit(url).path.rstrip("/")
            if path and path not in found:
                found.append(path)
        base_path = self.document.get("basePath")  # Swagger 2
        if (
            isinstance(base_path, str)
            and base_path.rstrip("/")
            and base_path.rstrip("/") not in found
        ):
            found.append(base_path.rstrip("/"))
        return tuple(found)

    def _compile_templates(self) -> list[_Template]:
        prefixes = tuple(dict.fromkeys((*self.base_paths, *_KNOWN_PREFIXES)))
        templates = []
        for key in self.document.get("paths") or {}:
            path, _, query = key.partition("?")
            regex, params, literal = _compile_template(path)
            stripped = None
            stripped_regex = None
            for prefix in prefixes:
                if path.startswith(prefix + "/"):
                    stripped = path[len(prefix) :]
                    stripped_regex = _compile_template(stripped)[0]
                    break
            templates.append(
                _Template(
                    key=key,
                    path=path,
                    query={k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()},
                    regex=regex,
                    params=params,
                    literal_len=literal,
                    stripped=stripped,
                    stripped_regex=stripped_regex,
                )
            )
        return templates

    def _match(
        self, path: str, query: Mapping[str, list[str]]
    ) -> list[tuple[tuple[int, int, int, int], _Template, dict[str, str]]]:
        actual_forms: list[tuple[int, str]] = [(0, path)]
        for tier, group in ((1, self.base_paths), (2, _KNOWN_PREFIXES)):
            for prefix in group:
                if path.startswith(prefix + "/"):
                    actual_forms.append((tier, path[len(prefix) :]))
        matches = []
        for template in self._templates:
            if any(query.get(k, [None])[0] != v for k, v in template.query.items()):
                continue
            best: tuple[int, dict[str, str]] | None = None
            for tier, form in actual_forms:
                for t_tier, regex in ((0, template.regex), (3, template.stripped_regex)):
                    if regex is None:
                        continue
                    m = regex.match(form)
                    if m and (best is None or tier + t_tier < best[0]):
                        values = [unquote(v) for v in m.groups()]
                        best = (tier + t_tier, dict(zip(template.params, values, strict=True)))
            if best is not None:
                rank = (best[0], -len(template.query), len(template.params), -template.literal_len)
                matches.append((rank, template, best[1]))
        matches.sort(key=lambda item: item[0])
        return matches

    def operation(self, method: str, path: str) -> Operation:
        """Find the operation for an ACTUAL request (method + URL path, query allowed)."""
        method = method.upper()
        key = (method, path)
        cached = self._operations.get(key)
        if cached is not None:
            return cached
        split = urlsplit(path)
        raw_path = split.path or "/"
        query = parse_qs(split.query, keep_blank_values=True)
        matches = self._match(raw_path, query)
        paths = self.document.get("paths") or {}
        for _, template, params in matches:
            item = paths[template.key]
            if not isinstance(item, dict):
                continue
            definition = item.get(method.lower())
            if isinstance(definition, dict):
                op = Operation(
                    spec=self,
                    method=method,
                    path_template=template.key,
                    path_params=params,
                    definition=definition,
                    pointer=_pointer("paths", template.key, method.lower()),
                )
                with self._lock:
                    self._operations[key] = op
                return op
        if matches:
            allowed = sorted(
                {
                    m.upper()
                    for _, t, _ in matches
                    for m in (paths[t.key] or {})
                    if m in _HTTP_METHODS
                }
            )
            raise UnknownOperation(
                f"{self.provider}: {method} {raw_path} matches path {matches[0][1].key!r} in {self.path.name}, "
                f"but that path has no {method} operation (it has: {', '.join(allowed) or 'none'})"
            )
        near = difflib.get_close_matches(
            raw_path, [t.key for t in self._templates], n=6, cutoff=0.3
        )
        if not near:
            tail = raw_path.rstrip("/").rsplit("/", 1)[-1]
            near = [t.key for t in self._templates if tail and tail.split(":")[0] in t.key][:6]
        raise UnknownOperation(
            f"{self.provider}: no operation matches {method} {raw_path} in {self.path.name} "
            f"(server base paths {list(self.base_paths) or ['/']}); near matches: {near or 'none'}"
        )

    # -- validation ------------------------------------------------------------------------

    def _validator(self, pointer: str) -> Draft202012Validator:
        validator = self._validators.get(pointer)
        if validator is None:
            schema = {"$ref": self.uri + "#" + quote(pointer, safe="/~:@!$&'()*+,;=-._")}
            validator = Draft202012Validator(schema, registry=self.registry)
            with self._lock:
                self._validators[pointer] = validator
        return validator

    def _schema_label(self, pointer: str) -> str:
        node = self._resolve_pointer(pointer)
        if isinstance(node, dict) and isinstance(node.get("$ref"), str) and len(node) == 1:
            return str(node["$ref"]).rsplit("/", 1)[-1]
        if pointer.startswith("/components/schemas/") or pointer.startswith("/definitions/"):
            return pointer.rsplit("/", 1)[-1].replace("~1", "/").replace("~0", "~")
        return "#" + pointer

    def _validate(
        self, pointer: str, instance: Any, *, where: str, operation: Operation | None
    ) -> None:
        errors = list(self._validator(pointer).iter_errors(instance))
        if not errors:
            return
        best = best_match(errors)
        assert best is not None
        lines = _explain(best)
        for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path]):
            if error is best or best in _walk_context(error):
                continue
            detail = best_match([error]) or error
            line = _error_line(detail)
            if line not in lines:
                lines.append(line)
            if len(lines) >= 12:
                break
        problem = f"{where} does not match schema {self._schema_label(pointer)!r}"
        raise self._make_violation(operation, where, best.json_path, problem, lines)

    def _make_violation(
        self,
        operation: Operation | None,
        where: str,
        json_path: str,
        problem: str,
        lines: list[str],
    ) -> SpecViolation:
        op_text = operation.describe() if operation is not None else "-"
        head = f"[{self.provider}] {op_text}: {problem}"
        if not lines and json_path != "$":
            head += f" (at {json_path})"
        message = head + "".join(f"\n  {line}" for line in lines)
        return SpecViolation(
            message,
            provider=self.provider,
            operation=op_text,
            where=where,
            json_path=json_path,
            errors=lines,
        )

    def operation_or_violation(self, method: str, path: str) -> Operation:
        try:
            return self.operation(method, path)
        except UnknownOperation as exc:
            raise SpecViolation(
                str(exc), provider=self.provider, operation=f"{method.upper()} {path}", where="path"
            ) from None

    def validate_request(
        self, method: str, path: str, body: Any, content_type: str = "application/json"
    ) -> None:
        self.operation_or_violation(method, path).validate_request(body, content_type)

    def validate_response(
        self, method: str, path: str, status: int, body: Any, content_type: str = "application/json"
    ) -> None:
        self.operation_or_violation(method, path).validate_response(status, body, content_type)

    def validate_stream_event(self, method: str, path: str, event: dict[str, Any]) -> None:
        self.operation_or_violation(method, path).validate_stream_event(event)

    def validate_component(self, name: str, instance: Any) -> None:
        pointer = self.component_pointer(name)
        self._validate(pointer, instance, where=f"component {name}", operation=None)

    # -- multipart ---------------------------------------------------------------------------

    def _property_schemas(self, pointer: str | None) -> dict[str, list[str]]:
        """Pointers of every schema that may describe each top-level form field."""
        found: dict[str, list[str]] = {}
        if pointer is None:
            return found
        seen: set[str] = set()

        def walk(ptr: str) -> None:
            if ptr in seen or len(seen) > 200:
                return
            seen.add(ptr)
            node = self._resolve_pointer(ptr)
            if not isinstance(node, dict):
                return
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#"):
                walk(unquote(ref[1:]))
            for name in node.get("properties") or {}:
                found.setdefault(name, []).append(ptr + _pointer("properties", name))
            for combinator in ("allOf", "anyOf", "oneOf"):
                for i, _ in enumerate(node.get(combinator) or []):
                    walk(ptr + _pointer(combinator, str(i)))

        walk(pointer)
        return found

    def _form_to_dict(self, pairs: list[tuple[str, Any]], pointer: str | None) -> dict[str, Any]:
        """Group form pairs (``a[]``/repeated names -> lists) and coerce text to schema types."""
        properties = self._property_schemas(pointer)
        grouped: dict[str, Any] = {}
        listy: set[str] = set()
        for name, value in pairs:
            key = name
            if name.endswith("[]") and name not in properties:
                key = name[:-2]
                listy.add(key)
            if key in grouped:
                if key not in listy:
                    grouped[key] = [grouped[key]]
                    listy.add(key)
                grouped[key].append(value)
            else:
                grouped[key] = [value] if key in listy else value
        result: dict[str, Any] = {}
        for key, value in grouped.items():
            result[key] = self._coerce_form_value(value, properties.get(key, []))
        return result

    def _coerce_form_value(self, value: Any, pointers: list[str]) -> Any:
        if not pointers or isinstance(value, FormFile):
            return value
        candidates: list[Any] = [value]
        if isinstance(value, list):
            for convert in (_to_int, _to_float, _to_bool, _to_json):
                converted = [
                    convert(v) if isinstance(v, str) and not isinstance(v, FormFile) else v
                    for v in value
                ]
                candidates.append(converted)
        elif isinstance(value, str):
            candidates += [_to_int(value), _to_float(value), _to_bool(value), _to_json(value)]
        for candidate in candidates:
            if candidate is _NO and not isinstance(candidate, list):
                continue
            if isinstance(candidate, list) and any(c is _NO for c in candidate):
                continue
            if any(self._validator(p).is_valid(candidate) for p in pointers):
                return candidate
        return value


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


class _Missing:
    def __repr__(self) -> str:
        return "<not convertible>"


_NO: Any = _Missing()


def _to_int(text: str) -> Any:
    return int(text) if re.fullmatch(r"[+-]?\d+", text.strip()) else _NO


def _to_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return _NO


def _to_bool(text: str) -> Any:
    lowered = text.strip().lower()
    return {"true": True, "false": False}.get(lowered, _NO)


def _to_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return _NO


def _explain(error: ValidationError, depth: int = 0) -> list[str]:
    """The error, and for a failed oneOf/anyOf the closest miss of each branch (indented)."""
    lines = [("  " * depth) + _error_line(error)]
    if error.validator not in ("oneOf", "anyOf") or not error.context or depth >= 2:
        return lines
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context:
        index = sub.relative_schema_path[0] if sub.relative_schema_path else -1
        branches.setdefault(int(index), []).append(sub)
    alternatives = error.validator_value if isinstance(error.validator_value, list) else []
    for index, subs in list(branches.items())[:8]:
        branch = alternatives[index] if 0 <= index < len(alternatives) else {}
        name = branch.get("$ref", "").rsplit("/", 1)[-1] if isinstance(branch, dict) else ""
        name = name or (branch.get("title", "") if isinstance(branch, dict) else "") or f"#{index}"
        closest = best_match(subs)
        if closest is None:
            continue
        sub_lines = _explain(closest, depth + 1)
        sub_lines[0] = ("  " * (depth + 1)) + f"branch {name}: " + sub_lines[0].lstrip()
        lines.extend(sub_lines)
    return lines


def _walk_context(error: ValidationError) -> Iterator[ValidationError]:
    for child in error.context or ():
        yield child
        yield from _walk_context(child)


# --------------------------------------------------------------------------------------------
# Loading (once per process)

_SPECS: dict[str, Spec] = {}
_SPECS_LOCK = threading.Lock()


def load_spec(provider: str) -> Spec:
    """The converted spec for ``provider``; parsed once per process and cached."""
    spec = _SPECS.get(provider)
    if spec is not None:
        return spec
    if provider not in SPEC_FILES:
        raise KeyError(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}")
    with _SPECS_LOCK:
        spec = _SPECS.get(provider)
        if spec is None:
            path = SPECS_DIR / SPEC_FILES[provider]
            started = time.perf_counter()
            document = _read_document(path)
            spec = Spec(provider, path, document)
            spec.load_seconds = time.perf_counter() - started
            _SPECS[provider] = spec
    return spec


# --------------------------------------------------------------------------------------------
# The transport


def _request_body(request: httpx2.Request) -> tuple[Any, str]:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    raw = request.content
    if not raw:
        return None, content_type
    if media_type == "multipart/form-data":
        return raw, content_type
    if _is_json_media(media_type) or (not media_type and raw[:1] in (b"{", b"[")):
        try:
            return json.loads(raw), content_type or "application/json"
        except ValueError:
            return raw, content_type
    if media_type == "application/x-www-form-urlencoded":
        return {
            k: v if len(v) > 1 else v[0] for k, v in parse_qs(raw.decode()).items()
        }, content_type
    return raw, content_type


class _ValidatingStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Passes a streamed response body through, validating each complete event on the way."""

    def __init__(
        self, inner: Any, check_line: Callable[[str], None], on_close: Callable[[], None]
    ) -> None:
        self._inner = inner
        self._check_line = check_line
        self._on_close = on_close
        self._buffer = ""
        self._decoder = _Utf8()

    def _feed(self, chunk: bytes) -> None:
        self._buffer += self._decoder.decode(chunk)
        *lines, self._buffer = re.split(r"\r\n|\r(?!$)|\n", self._buffer)
        for line in lines:
            self._check_line(line)

    def _finish(self) -> None:
        self._buffer += self._decoder.decode(b"", final=True)
        if self._buffer:
            self._check_line(self._buffer)
            self._buffer = ""
        self._check_line("")  # end of stream flushes a pending SSE event
        self._on_close()

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._feed(chunk)
            yield chunk
        self._finish()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._feed(chunk)
            yield chunk
        self._finish()

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if callable(close):
            close()

    async def aclose(self) -> None:
        aclose = getattr(self._inner, "aclose", None)
        if callable(aclose):
            await aclose()


class _Utf8:
    def __init__(self) -> None:
        import codecs

        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")

    def decode(self, data: bytes, final: bool = False) -> str:
        return self._decoder.decode(data, final)


class SpecTransport(httpx2.MockTransport):
    """Validates every request body against `spec` and every JSON response the handler returns
    (status 2xx/4xx/5xx if the spec has a schema for it), records them.

    * A request that matches no operation, or whose body violates the schema, is recorded in
      ``violations``; the handler is NOT called and the transport answers 599 with a JSON body
      ``{"error": {"type": "spec_violation", "message": ..., ...}}``.
    * A complete (non-streamed) response is validated: JSON against the response schema for its
      status, ``text/event-stream`` event by event (``[DONE]`` skipped), ``application/x-ndjson``
      line by line.  A violation is recorded and the response is replaced by the 599.
    * A response whose body is a generator (a real stream) is passed through unchanged and each
      event is validated as it goes by; a violation is recorded and raised (``SpecViolation``)
      from the stream iteration, since status and headers have already been delivered.

    Works for ``httpx2.Client`` and ``httpx2.AsyncClient``; the handler may be async.
    Call ``assert_clean()`` at the end of a test to re-raise the first violation.
    """

    def __init__(
        self,
        provider: str,
        handler: Callable[[httpx2.Request], Any],
        *,
        validate_responses: bool = True,
    ) -> None:
        super().__init__(handler)
        self.provider = provider
        self.spec = load_spec(provider)
        self.validate_responses = validate_responses
        self.requests: list[httpx2.Request] = []
        self.bodies: list[Any] = []
        self.violations: list[SpecViolation] = []
        self.stream_events: list[Any] = []

    # -- helpers ---------------------------------------------------------------------------

    def assert_clean(self) -> None:
        if self.violations:
            raise self.violations[0]

    def _violation_response(
        self, request: httpx2.Request, violation: SpecViolation
    ) -> httpx2.Response:
        self.violations.append(violation)
        return httpx2.Response(
            599,
            json={"error": violation.to_json()},
            headers={"x-spec-violation": "1"},
            request=request,
        )

    def _path(self, request: httpx2.Request) -> str:
        url = request.url
        path = url.path
        query = url.query.decode() if isinstance(url.query, bytes) else str(url.query)
        return f"{path}?{query}" if query else path

    def _before(self, request: httpx2.Request) -> tuple[Operation | None, httpx2.Response | None]:
        self.requests.append(request)
        body, content_type = _request_body(request)
        self.bodies.append(body)
        try:
            operation = self.spec.operation_or_violation(request.method, self._path(request))
            parsed = operation.validate_request(body, content_type or "application/json")
        except SpecViolation as violation:
            if isinstance(body, bytes) and content_type.lower().startswith("multipart/form-data"):
                with contextlib.suppress(ValueError):  # record the rejected form as a dict too
                    self.bodies[-1] = dict(parse_multipart(body, content_type))
            return None, self._violation_response(request, violation)
        self.bodies[-1] = parsed
        return operation, None

    def _after(
        self, request: httpx2.Request, operation: Operation, response: httpx2.Response
    ) -> httpx2.Response:
        if not self.validate_responses:
            return response
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            body = response.content
        except httpx2.ResponseNotRead:
            if media_type in _STREAM_MEDIA_TYPES:
                return self._wrap_stream(operation, response, media_type)
            return response
        if not body:
            return response
        if media_type not in _STREAM_MEDIA_TYPES and not _is_json_media(media_type):
            return response
        try:
            operation.validate_response(response.status_code, body, media_type)
        except SpecViolation as violation:
            return self._violation_response(request, violation)
        return response

    def _wrap_stream(
        self, operation: Operation, response: httpx2.Response, media_type: str
    ) -> httpx2.Response:
        data_lines: list[str] = []
        event_name: list[str | None] = [None]
        counter = [0]

        def check(payload: str, sse_event: str | None) -> None:
            n = counter[0]
            counter[0] += 1
            try:
                operation.validate_stream_event(
                    payload, where=f"stream event #{n}", sse_event=sse_event
                )
            except SpecViolation as violation:
                self.violations.append(violation)
                raise
            self.stream_events.append(payload)

        def check_sse_line(line: str) -> None:
            if line == "":
                if data_lines:
                    payload = "\n".join(data_lines)
                    data_lines.clear()
                    name = event_name[0]
                    event_name[0] = None
                    if payload.strip() != "[DONE]":
                        check(payload, name)
                return
            if line.startswith(":"):
                return
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data_lines.append(value)
            elif field == "event":
                event_name[0] = value

        def check_ndjson_line(line: str) -> None:
            if line.strip():
                check(line, None)

        checker = check_sse_line if media_type == "text/event-stream" else check_ndjson_line
        stream = _ValidatingStream(response.stream, checker, lambda: None)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=stream,
            request=response.request if _has_request(response) else None,
            extensions=response.extensions,
        )

    # -- transport API -----------------------------------------------------------------------

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        operation, failed = self._before(request)
        if failed is not None:
            return failed
        assert operation is not None
        response = self.handler(request)
        if not isinstance(response, httpx2.Response):
            raise TypeError("Cannot use an async handler in a sync Client")
        return self._after(request, operation, response)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        operation, failed = self._before(request)
        if failed is not None:
            return failed
        assert operation is not None
        response = self.handler(request)
        if not isinstance(response, httpx2.Response):
            response = await response
        return self._after(request, operation, response)


def _has_request(response: httpx2.Response) -> bool:
    try:
        response.request  # noqa: B018 - raises RuntimeError when unset
    except RuntimeError:
        return False
    return True


# One module object whatever name it is imported under: pytest imports this package as
# ``support`` (tests/ has no __init__.py) while other code may say ``tests.support.specs``.
# Two copies would mean two spec caches (the OpenAI file parsed twice) and two SpecViolation
# classes (``pytest.raises(SpecViolation)`` missing the other copy's exceptions).
for _alias in ("tests.support.specs", "support.specs"):
    sys.modules.setdefault(_alias, sys.modules[__name__])

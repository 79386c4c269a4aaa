"""The prompt-cache hint of many requests that share their beginning (a DataFrame map).

Providers bill cached input at a fraction of the input price (OpenAI 50-90 % off, Anthropic
reads at 0.1x, Gemini 2.5 implicitly) when a request starts with a prefix byte-identical to an
earlier one. In a map that prefix is everything the rows share: tools and schema, the system
prompt (instructions, the label list), and the text every rendered prompt starts with. The
request builders already send them first and unchanged; :func:`prompt_cache_for` names the
rest for the provider (:class:`~llm_magics._core.types.PromptCache`):

* ``key``: one per map, from the model and the shared part (OpenAI's ``prompt_cache_key``
  routes requests with the same key to the same cache);
* ``prefix``: the longest start the rows' prompts share, cut back to a word boundary;
* ``breakpoint``: the shared part reaches the shortest prefix the vendor caches (its
  catalog entry, or the model's profile), so where caching needs a marker (Anthropic's
  ``cache_control``), one is worth sending.

Thread safety: a pure function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from .._core.types import OutputSchema, PromptCache
from .pricing import profile_for
from .usage import count_tokens

__all__ = ["prompt_cache_for", "shared_prefix"]


def shared_prefix(texts: Sequence[str]) -> str:
    """The longest start all of ``texts`` share, ending at whitespace (or "" when they are
    fewer than two or share no whole word)."""
    if len(set(texts)) < 2:
        return ""
    # The prefix all of them share is the one the smallest and the largest share.
    low, high = min(texts), max(texts)
    n = next((i for i, (a, b) in enumerate(zip(low, high, strict=False)) if a != b), len(low))
    common = low[:n]
    cut = max(common.rfind(c) for c in " \n\t")
    return common[: cut + 1] if cut >= 0 else ""


def _first_text(prompt: Any) -> str | None:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, tuple) and prompt and isinstance(prompt[0], str):
        return prompt[0]
    return None


def prompt_cache_for(
    client: Any, prompts: Sequence[Any], opts: dict[str, Any]
) -> PromptCache | None:
    """The hint for ``prompts`` sent through ``client`` with the chat options ``opts``; None
    when the vendor has no prompt cache."""
    vendor = getattr(client.provider, "vendor", None)
    policy = getattr(vendor, "prompt_cache", None)
    if policy is None:
        return None
    texts = [t for t in (_first_text(p) for p in prompts) if t is not None]
    prefix = shared_prefix(texts) if len(texts) == len(prompts) else ""
    system = opts.get("system") or ""
    schema = opts.get("schema")
    schema_text = ""
    if schema is not None:
        schema_text = json.dumps(OutputSchema.from_user(schema).json_schema, sort_keys=True)
    shared = "\x00".join([client.model_id, system, schema_text, prefix])
    key = "llm-magics-" + hashlib.sha256(shared.encode()).hexdigest()[:24]
    profile = profile_for(client.provider.name, client.model)
    minimum = (profile.cache_min_tokens if profile else None) or policy.min_tokens
    tokens = count_tokens(system + schema_text + prefix, client.model_id)
    return PromptCache(key, prefix, policy.mode == "explicit" and tokens >= minimum)

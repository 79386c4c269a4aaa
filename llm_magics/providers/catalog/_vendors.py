"""The built-in vendors: one :class:`Vendor` entry each, holding every fact about it.

An entry says which env vars hold its keys and base URL, its documented base URL and a
sensible default model, which wire protocol it speaks (a module of :mod:`llm_magics.providers`),
how it departs from that protocol (:class:`Quirks`), what media it takes inline
(:class:`MediaPolicy`) and what its models cost (:class:`ModelProfile` rows). Adding a vendor is
adding an entry here.

Prices: USD per 1M tokens, standard tier, from the vendors' pricing and model pages (OpenAI
platform pricing, Anthropic pricing, Google AI for developers pricing, GroqCloud pricing,
Cerebras pricing). A model ships a profile only for a price we are sure of. Batch API jobs
bill half of every price at OpenAI, Anthropic, Gemini and Groq (the ``batch`` policy's
``price_factor``); cached input is the ``cached`` column.

Thread safety: entries are frozen; the table is read-only.
"""

from __future__ import annotations

from ._entry import (
    IMAGES,
    MB,
    PNG_JPEG,
    BatchPolicy,
    MediaPolicy,
    PromptCaching,
    Quirks,
    Vendor,
    normalise_ollama_host,
)
from ._profile import model

__all__ = ["DEFAULT_POLICY", "VENDORS"]

_K = 1_000

#: Any other server (llama.cpp, vLLM, LM Studio, ``local``): PNG/JPEG bytes, nothing remote.
DEFAULT_POLICY = MediaPolicy("this server", source="conservative default")

_OPENAI = Vendor(
    name="openai",
    display_name="OpenAI",
    protocol="openai_compat",
    key_envs=("OPENAI_API_KEY",),
    keys_env="OPENAI_API_KEYS",
    base_url_env="OPENAI_BASE_URL",
    default_base_url="https://api.openai.com/v1",
    default_model="gpt-4o-mini",
    quirks=Quirks(
        max_tokens_field="max_completion_tokens",
        embed_encoding="base64",
        default_embed_model="text-embedding-3-small",
        media_kinds=frozenset({"image", "audio", "document"}),
        prompt_cache_key_field="prompt_cache_key",
    ),
    quirks_host="api.openai.com",
    # /v1/files + /v1/batches: 50,000 requests and 200 MB per input file, half price.
    batch=BatchPolicy(50_000, 200 * MB, source="platform.openai.com/docs/guides/batch"),
    # Prompts of 1,024 tokens or more are cached by prefix, in steps of 128 tokens.
    prompt_cache=PromptCaching(
        "automatic", 1024, source="platform.openai.com/docs/guides/prompt-caching"
    ),
    media=MediaPolicy(
        "OpenAI",
        image_mimes=IMAGES,
        # High-detail images are scaled to fit 2048x2048 server-side: more pixels are wasted
        # bytes. 20 MB per image; PNG, JPEG, WebP, non-animated GIF; input_audio: wav, mp3.
        max_side=2048,
        max_image_bytes=20 * MB,
        image_urls=True,
        max_audio_bytes=20 * MB,
        # PDFs: 32 MB of file content per request.
        max_document_bytes=32 * MB,
        source="platform.openai.com/docs/guides/images-vision, /docs/guides/pdf-files",
    ),
    models=(
        model("gpt-4o", 128 * _K, 16_384, 2.50, 10.00, 1.25),
        model("gpt-4o-2024-05-13", 128 * _K, 4_096, 5.00, 15.00),
        model("gpt-4o-mini", 128 * _K, 16_384, 0.15, 0.60, 0.075),
        model("gpt-4.1", 1_047_576, 32_768, 2.00, 8.00, 0.50),
        model("gpt-4.1-mini", 1_047_576, 32_768, 0.40, 1.60, 0.10),
        model("gpt-4.1-nano", 1_047_576, 32_768, 0.10, 0.40, 0.025),
        model("o1", 200 * _K, 100 * _K, 15.00, 60.00, 7.50),
        model("o3", 200 * _K, 100 * _K, 2.00, 8.00, 0.50),
        model("o3-mini", 200 * _K, 100 * _K, 1.10, 4.40, 0.55),
        model("o4-mini", 200 * _K, 100 * _K, 1.10, 4.40, 0.275),
        model("gpt-5", 400 * _K, 128 * _K, 1.25, 10.00, 0.125),
        model("gpt-5-mini", 400 * _K, 128 * _K, 0.25, 2.00, 0.025),
        model("gpt-5-nano", 400 * _K, 128 * _K, 0.05, 0.40, 0.005),
        model("text-embedding-3-small", 8_191, None, 0.02, 0.0),
        model("text-embedding-3-large", 8_191, None, 0.13, 0.0),
        model("text-embedding-ada-002", 8_191, None, 0.10, 0.0),
    ),
)

_SONNET_4 = {  # prompts over 200k tokens (the 1M-token context beta) cost more
    "long_context_threshold": 200 * _K,
    "long_input": 6.00,
    "long_output": 22.50,
    "long_cached_input": 0.60,
    "cache_write": 3.75,
}
_ANTHROPIC = Vendor(
    name="anthropic",
    display_name="Anthropic",
    protocol="anthropic",
    key_envs=("ANTHROPIC_API_KEY",),
    keys_env="ANTHROPIC_API_KEYS",
    base_url_env="ANTHROPIC_BASE_URL",
    default_base_url="https://api.anthropic.com",
    default_model="claude-haiku-4-5",
    media=MediaPolicy(
        "Anthropic",
        image_mimes=IMAGES,
        # The Messages API fetches URL image sources itself (URLImageSource in its spec).
        image_urls=True,
        # Images over 1568 px on the long side are resized server-side (slower, no better);
        # the API rejects a base64 string over 5 MB (= 3.75 MB raw) and sides over 8000 px.
        max_side=1568,
        max_image_bytes=3_750_000,
        audio_mimes=frozenset(),
        document_mimes=frozenset({"application/pdf", "text/plain"}),
        max_document_bytes=24 * MB,  # 32 MB per request, base64-encoded
        source="docs.anthropic.com/en/docs/build-with-claude/vision",
    ),
    # /v1/messages/batches: 100,000 requests or 256 MB per batch, half price.
    batch=BatchPolicy(
        100_000, 256 * MB, source="docs.claude.com/en/docs/build-with-claude/batch-processing"
    ),
    # Only a prefix ending in a cache_control breakpoint is cached; the shortest one stored
    # is 1,024 tokens (Sonnet, Opus 4-4.1), 2,048 (Haiku 3.5), 4,096 (Opus 4.5, Haiku 4.5).
    prompt_cache=PromptCaching(
        "explicit", 1024, source="docs.claude.com/en/docs/build-with-claude/prompt-caching"
    ),
    # cache_write is the 5-minute cache write (1.25x input).
    models=(
        model(
            "claude-opus-4-5",
            200 * _K,
            64_000,
            5.00,
            25.00,
            0.50,
            cache_write=6.25,
            cache_min_tokens=4096,
        ),
        model("claude-opus-4-1", 200 * _K, 32_000, 15.00, 75.00, 1.50, cache_write=18.75),
        model("claude-opus-4-0", 200 * _K, 32_000, 15.00, 75.00, 1.50, cache_write=18.75),
        model("claude-opus-4", 200 * _K, 32_000, 15.00, 75.00, 1.50, cache_write=18.75),
        model("claude-sonnet-4-5", 200 * _K, 64_000, 3.00, 15.00, 0.30, **_SONNET_4),
        model("claude-sonnet-4-0", 200 * _K, 64_000, 3.00, 15.00, 0.30, **_SONNET_4),
        model("claude-sonnet-4", 200 * _K, 64_000, 3.00, 15.00, 0.30, **_SONNET_4),
        model("claude-3-7-sonnet", 200 * _K, 64_000, 3.00, 15.00, 0.30, cache_write=3.75),
        model(
            "claude-haiku-4-5",
            200 * _K,
            64_000,
            1.00,
            5.00,
            0.10,
            cache_write=1.25,
            cache_min_tokens=4096,
        ),
        model(
            "claude-3-5-haiku",
            200 * _K,
            8_192,
            0.80,
            4.00,
            0.08,
            cache_write=1.00,
            cache_min_tokens=2048,
        ),
    ),
)

_GEMINI = Vendor(
    name="gemini",
    display_name="Gemini",
    protocol="gemini",
    key_envs=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    keys_env="GEMINI_API_KEYS",
    base_url_env="GEMINI_BASE_URL",
    default_base_url="https://generativelanguage.googleapis.com",
    default_model="gemini-2.5-flash",
    media=MediaPolicy(
        "Gemini",
        image_mimes=frozenset(
            {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
        ),
        # Larger images are scaled down to fit 3072x3072; inline data may make up 20 MB of
        # request (base64), so 15 MB raw for one part. URLs go as fileData.fileUri, which
        # Gemini fetches itself.
        max_side=3072,
        image_urls=True,
        max_image_bytes=15 * MB,
        audio_mimes=frozenset(
            {"audio/wav", "audio/mpeg", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac"}
        ),
        max_audio_bytes=15 * MB,
        max_document_bytes=15 * MB,
        source="ai.google.dev/gemini-api/docs/image-understanding, /docs/audio",
    ),
    # Batch mode (batchGenerateContent): half price. Implicit caching (2.5 models and
    # 2.0 Flash) bills cached text at the cached price shown, with no storage fee.
    batch=BatchPolicy(
        100_000, 20 * MB, source="ai.google.dev/gemini-api/docs/batch-mode (inline requests)"
    ),
    prompt_cache=PromptCaching(
        "automatic", 1024, source="ai.google.dev/gemini-api/docs/caching (implicit caching)"
    ),
    # Text/image/video input price; audio input has its own.
    models=(
        model(
            "gemini-2.5-pro",
            1_048_576,
            65_536,
            1.25,
            10.00,
            0.125,
            long_context_threshold=200 * _K,
            long_input=2.50,
            long_output=15.00,
            long_cached_input=0.25,
            cache_min_tokens=4096,
        ),
        model("gemini-2.5-flash", 1_048_576, 65_536, 0.30, 2.50, 0.03, audio_input=1.00),
        model("gemini-2.5-flash-lite", 1_048_576, 65_536, 0.10, 0.40, 0.01, audio_input=0.30),
        model("gemini-2.0-flash", 1_048_576, 8_192, 0.10, 0.40, 0.025, audio_input=0.70),
        model("gemini-2.0-flash-lite", 1_048_576, 8_192, 0.075, 0.30),
        model("gemini-embedding-001", 2_048, None, 0.15, 0.0),
    ),
)

_GROQ = Vendor(
    name="groq",
    display_name="Groq",
    protocol="openai_compat",
    key_envs=("GROQ_API_KEY",),
    keys_env="GROQ_API_KEYS",
    base_url_env="GROQ_BASE_URL",
    default_base_url="https://api.groq.com/openai/v1",
    default_model="llama-3.3-70b-versatile",
    quirks=Quirks(stream_usage_option=False, default_transcribe_model="whisper-large-v3-turbo"),
    # /openai/v1/files + /openai/v1/batches (OpenAI's shape): 50,000 lines, 200 MB, half price.
    batch=BatchPolicy(50_000, 200 * MB, source="console.groq.com/docs/batch"),
    media=MediaPolicy(
        "Groq",
        image_mimes=IMAGES,
        # A request with a base64 image may be 4 MB (413 above), 33,177,600 pixels per image;
        # URL images up to 20 MB. The long side is our choice, as for OpenAI.
        max_side=2048,
        max_pixels=33_177_600,
        max_image_bytes=2_900_000,
        image_urls=True,
        source="console.groq.com/docs/vision",
    ),
    models=(
        model("llama-3.3-70b-versatile", 131_072, 32_768, 0.59, 0.79),
        model("llama-3.1-8b-instant", 131_072, 131_072, 0.05, 0.08),
        model("meta-llama/llama-4-scout-17b-16e-instruct", 131_072, 8_192, 0.11, 0.34),
        model("meta-llama/llama-4-maverick-17b-128e-instruct", 131_072, 8_192, 0.20, 0.60),
    ),
)

_CEREBRAS = Vendor(
    name="cerebras",
    display_name="Cerebras",
    protocol="openai_compat",
    key_envs=("CEREBRAS_API_KEY",),
    keys_env="CEREBRAS_API_KEYS",
    base_url_env="CEREBRAS_BASE_URL",
    default_base_url="https://api.cerebras.ai/v1",
    default_model="llama3.1-8b",
    # Text only, and no audio endpoints.
    quirks=Quirks(media_kinds=frozenset(), transcribe=False),
    # Context windows depend on the plan, so they are left unknown.
    models=(
        model("llama3.1-8b", None, None, 0.10, 0.10),
        model("llama-3.3-70b", None, None, 0.85, 1.20),
    ),
)

_OLLAMA = Vendor(
    name="ollama",
    display_name="Ollama",
    protocol="ollama",
    key_envs=(),
    keys_env=None,
    base_url_env="OLLAMA_HOST",
    default_base_url="http://127.0.0.1:11434",
    default_model="llama3.2",
    needs_key=False,
    normalise_url=normalise_ollama_host,
    media=MediaPolicy(
        "Ollama",
        # Ollama's vision models decode PNG and JPEG; the limits are ours (no documented
        # limit; its models shrink images to a few hundred px anyway).
        image_mimes=PNG_JPEG,
        max_side=2048,
        max_image_bytes=20 * MB,
        audio_mimes=frozenset(),
        document_mimes=frozenset(),
        source="github.com/ollama/ollama/blob/main/docs/api.md (images: base64 list)",
    ),
    models=(model("*", None, None, 0.0, 0.0),),  # runs on this machine: free
)

_LOCAL = Vendor(
    name="local",
    display_name="local (embedded SmolLM2)",
    protocol="local",
    key_envs=(),
    keys_env=None,
    base_url_env=None,
    default_base_url="",
    default_model="smollm2-135m",
    needs_key=False,
    models=(model("*", None, None, 0.0, 0.0),),
)

VENDORS: dict[str, Vendor] = {
    v.name: v for v in (_OPENAI, _ANTHROPIC, _GEMINI, _GROQ, _CEREBRAS, _OLLAMA, _LOCAL)
}  # fmt: skip

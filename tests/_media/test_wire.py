"""Media on the wire, per provider: every request goes through SpecTransport, which validates
the body against the provider's published spec; the handlers then decode the image or audio
they received, so the tests assert what a provider would really see."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest

import llm_magics as lm
from llm_magics._media.objects import as_media_part
from tests.media_support import (
    answer_body,
    client_for,
    decode_image,
    encoded_audio,
    from_data_url,
    image_bytes,
    serve,
    wav_of,
)
from tests.support.specs import SpecViolation, load_spec, parse_multipart


@pytest.fixture(scope="module")
def photo_20mp() -> bytes:
    return image_bytes(5472, 3648, "JPEG")


def openai_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    content = body["messages"][-1]["content"]
    assert isinstance(content, list)
    return content


# --- OpenAI -----------------------------------------------------------------------------------


def test_chat_with_a_list_of_text_and_an_image_file_sends_an_image_url_data_url(
    tmp_path: Path,
) -> None:
    cat = tmp_path / "cat.png"
    cat.write_bytes(image_bytes(64, 48))
    c, transport = client_for("openai")
    r = c.chat(["What is in this picture?", lm.Image(str(cat))])
    transport.assert_clean()
    assert r.text == "A picture."
    text, image = openai_parts(transport.bodies[0])
    assert text == {"type": "text", "text": "What is in this picture?"}
    assert image["type"] == "image_url"
    assert from_data_url(image["image_url"]["url"]) == ("image/png", cat.read_bytes())


def test_an_https_image_url_goes_to_openai_as_the_url_itself() -> None:
    c, transport = client_for("openai")
    c.chat(["Describe", lm.Image("https://example.org/cat.jpg")])
    transport.assert_clean()
    assert openai_parts(transport.bodies[0])[1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.org/cat.jpg"},
    }


def test_a_20_megapixel_photo_reaches_openai_as_a_2048_px_jpeg(photo_20mp: bytes) -> None:
    c, transport = client_for("openai")
    c.chat(["What camera took this?", lm.Image(photo_20mp)])
    transport.assert_clean()
    mime, data = from_data_url(openai_parts(transport.bodies[0])[1]["image_url"]["url"])
    assert (mime, decode_image(data).size) == ("image/jpeg", (2048, 1365))


def test_a_matplotlib_figure_arrives_with_the_pixel_size_the_figure_reports() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def handler(request: httpx2.Request) -> httpx2.Response:
        url = openai_parts(json.loads(request.content))[1]["image_url"]["url"]
        width, height = decode_image(from_data_url(url)[1]).size
        return httpx2.Response(200, json=answer_body("openai", f"{width}x{height}"))

    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    try:
        ax.bar(["a", "b", "c"], [3, 1, 2])
        reported = tuple(int(v) for v in (fig.get_size_inches() * fig.dpi).round())
        c, transport = client_for("openai", handler)
        r = c.chat(["Describe this chart", fig])  # a bare Figure works as a part too
    finally:
        plt.close(fig)
    transport.assert_clean()
    assert r.text == f"{reported[0]}x{reported[1]}" == "640x360"


def test_a_stereo_48khz_array_reaches_openai_as_input_audio_wav_with_every_frame() -> None:
    samples = np.random.default_rng(1).uniform(-0.5, 0.5, (24_000, 2)).astype(np.float32)
    c, transport = client_for("openai")
    c.chat(["What do you hear?", lm.Audio(samples, rate=48_000)])
    transport.assert_clean()
    audio = openai_parts(transport.bodies[0])[1]
    assert (audio["type"], audio["input_audio"]["format"]) == ("input_audio", "wav")
    channels, rate, frames, pcm = wav_of(base64.b64decode(audio["input_audio"]["data"]))
    assert (channels, rate, frames) == (2, 48_000, 24_000)
    assert np.array_equal(pcm, np.round(samples * 32767).astype(np.int16))


def test_flac_is_converted_to_wav_for_openai_input_audio() -> None:
    pytest.importorskip("soundfile")
    c, transport = client_for("openai")
    c.chat(["Transcribe", lm.Audio(encoded_audio("FLAC", seconds=0.25, rate=16_000))])
    transport.assert_clean()
    audio = openai_parts(transport.bodies[0])[1]["input_audio"]
    assert audio["format"] == "wav"
    assert wav_of(base64.b64decode(audio["data"]))[:3] == (1, 16_000, 4000)


def test_a_pdf_goes_to_openai_as_a_file_part_with_its_name(tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n")
    c, transport = client_for("openai")
    c.chat(["Summarise", as_media_part(pdf)])
    transport.assert_clean()
    part = openai_parts(transport.bodies[0])[1]
    assert part["type"] == "file" and part["file"]["filename"] == "paper.pdf"
    assert from_data_url(part["file"]["file_data"]) == ("application/pdf", pdf.read_bytes())


def test_a_streamed_answer_gets_the_same_prepared_media(photo_20mp: bytes) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        url = openai_parts(body)[1]["image_url"]["url"]
        size = "x".join(map(str, decode_image(from_data_url(url)[1]).size))
        chunk = {
            "id": "c1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": size}, "finish_reason": "stop"}],
        }
        sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=sse)

    c, transport = client_for("openai", handler)
    assert "".join(c.stream(["size?", lm.Image(photo_20mp)])) == "2048x1365"
    transport.assert_clean()


# --- Groq and Cerebras --------------------------------------------------------------------------


def test_groq_gets_an_image_url_part_that_its_spec_accepts() -> None:
    c, transport = client_for("groq")
    c.chat(["What is it?", lm.Image(np.full((40, 30, 3), 90, np.uint8))])
    transport.assert_clean()
    mime, data = from_data_url(openai_parts(transport.bodies[0])[1]["image_url"]["url"])
    assert (mime, decode_image(data).size) == ("image/png", (30, 40))


@pytest.mark.parametrize(
    ("provider", "part", "message"),
    [
        (
            "cerebras",
            lm.Image(image_bytes(8, 8)),
            r"cerebras does not support image input.*text only",
        ),
        ("groq", lm.Audio(np.zeros(800), rate=8000), r"groq does not support audio input.*image"),
        ("anthropic", lm.Audio(np.zeros(800), rate=8000), r"anthropic does not support audio"),
        ("ollama", lm.Audio(np.zeros(800), rate=8000), r"ollama does not support audio"),
    ],
)
def test_media_a_provider_cannot_take_is_refused_before_any_request(
    provider: str, part: Any, message: str
) -> None:
    c, transport = client_for(provider)
    with pytest.raises(lm.ConfigError, match=message):
        c.chat(["look", part])
    assert transport.requests == []


def test_the_local_model_refuses_images_before_loading_anything() -> None:
    pytest.importorskip("llm_magics.providers.local", reason="the local provider is not installed")
    with pytest.raises(lm.ConfigError, match=r"local.*image"):
        lm.client("local").chat(["What is this?", lm.Image(image_bytes(8, 8))])


# --- Anthropic --------------------------------------------------------------------------------


def anthropic_blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = body["messages"][-1]["content"]
    assert isinstance(blocks, list)
    return blocks


def test_anthropic_gets_a_base64_image_block_downscaled_to_1568_px(photo_20mp: bytes) -> None:
    c, transport = client_for("anthropic")
    c.chat(["What is this?", lm.Image(photo_20mp)])
    transport.assert_clean()
    source = anthropic_blocks(transport.bodies[0])[1]["source"]
    assert (source["type"], source["media_type"]) == ("base64", "image/jpeg")
    data = base64.b64decode(source["data"])
    assert decode_image(data).size == (1568, 1045) and len(source["data"]) <= 5 * 1024 * 1024


def test_anthropic_gets_bmp_as_png_and_a_pdf_as_a_document_block() -> None:
    c, transport = client_for("anthropic")
    pdf = b"%PDF-1.4\n%%EOF\n"
    c.chat(["Compare", lm.Image(image_bytes(20, 10, "BMP")), as_media_part(pdf)])
    transport.assert_clean()
    image, document = anthropic_blocks(transport.bodies[0])[1:]
    assert image["source"]["media_type"] == "image/png"
    assert decode_image(base64.b64decode(image["source"]["data"])).size == (20, 10)
    assert document == {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(pdf).decode(),
        },
    }


def test_anthropic_gets_a_url_image_as_a_url_source() -> None:
    c, transport = client_for("anthropic")
    c.chat(["What is this?", lm.Image("https://example.org/cat.jpg")])
    transport.assert_clean()
    assert anthropic_blocks(transport.bodies[0])[1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.org/cat.jpg"},
    }


# --- Gemini -----------------------------------------------------------------------------------


def gemini_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    parts = body["contents"][-1]["parts"]
    assert isinstance(parts, list)
    return parts


def test_gemini_gets_inline_data_for_webp_heic_and_ogg_as_they_are() -> None:
    pytest.importorskip("soundfile")
    webp, ogg = image_bytes(30, 20, "WEBP"), encoded_audio("OGG")
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    c, transport = client_for("gemini")
    c.chat(["Describe", lm.Image(webp), as_media_part(heic), lm.Audio(ogg)])
    transport.assert_clean()
    inline = [p["inlineData"] for p in gemini_parts(transport.bodies[0])[1:]]
    assert [(d["mimeType"], base64.b64decode(d["data"])) for d in inline] == [
        ("image/webp", webp),
        ("image/heic", heic),
        ("audio/ogg", ogg),
    ]


def test_gemini_gets_m4a_as_wav_and_large_images_at_3072_px(photo_20mp: bytes) -> None:
    c, transport = client_for("gemini")
    c.chat(["Describe", lm.Image(photo_20mp), lm.Audio(encoded_audio("M4A"))])
    transport.assert_clean()
    image, audio = (p["inlineData"] for p in gemini_parts(transport.bodies[0])[1:])
    assert image["mimeType"] == "image/jpeg"
    assert decode_image(base64.b64decode(image["data"])).size == (3072, 2048)
    assert audio["mimeType"] == "audio/wav"
    assert wav_of(base64.b64decode(audio["data"]))[:2] == (1, 16_000)


# --- Ollama -----------------------------------------------------------------------------------


def test_ollama_gets_base64_images_with_webp_converted_to_png() -> None:
    c, transport = client_for("ollama")
    c.chat(["Describe", lm.Image(image_bytes(30, 20, "WEBP")), lm.Image(image_bytes(9, 9))])
    transport.assert_clean()
    message = transport.bodies[0]["messages"][-1]
    assert message["content"] == "Describe"
    decoded = [decode_image(base64.b64decode(i)) for i in message["images"]]
    assert [(i.format, i.size) for i in decoded] == [("PNG", (30, 20)), ("PNG", (9, 9))]


def test_ollama_gets_a_url_image_downloaded_from_the_server_and_inlined() -> None:
    png = image_bytes(25, 15)
    with serve({"/photos/cat.png": (200, png, "image/png")}) as server:
        c, transport = client_for("ollama")
        c.chat(["Describe", lm.Image(f"{server.base}/photos/cat.png")])
        assert server.hits == ["/photos/cat.png"]
    transport.assert_clean()
    assert transport.bodies[0]["messages"][-1]["images"] == [base64.b64encode(png).decode()]


# --- transcription (OpenAI and Groq Whisper endpoints) ----------------------------------------


def transcription_handler(answer: dict[str, Any]) -> Any:
    return lambda request: httpx2.Response(200, json=answer)


VERBOSE = {
    "language": "english",
    "duration": 1.5,
    "text": " Hello there. ",
    "words": [
        {"word": "Hello", "start": 0.0, "end": 0.4},
        {"word": "there", "start": 0.5, "end": 0.9},
    ],
    "segments": [
        {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": 1.0,
            "text": " Hello there.",
            "tokens": [50364, 2425],
            "temperature": 0.0,
            "avg_logprob": -0.2,
            "compression_ratio": 0.9,
            "no_speech_prob": 0.01,
        }
    ],
}


@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "whisper-1"), ("groq", "whisper-large-v3-turbo")]
)
def test_transcribe_posts_the_wav_as_multipart_that_the_spec_accepts(
    provider: str, model: str
) -> None:
    samples = np.sin(np.arange(8000) / 8000 * 2 * np.pi * 300) * 0.3
    c, transport = client_for(provider, transcription_handler({"text": " hello world "}))
    text = c.transcribe(lm.Audio(samples, rate=8000), language="en")
    transport.assert_clean()
    assert text == "hello world"
    request = transport.requests[0]
    assert request.url.path.endswith("/audio/transcriptions")
    form = transport.bodies[0]
    assert (form["model"], form["response_format"], form["language"]) == (model, "json", "en")
    upload = form["file"]
    assert (upload.filename, upload.content_type) == ("audio.wav", "audio/wav")
    assert wav_of(upload.content)[:3] == (1, 8000, 8000)


def test_timestamps_ask_for_verbose_json_and_fill_segments_words_language_duration() -> None:
    spec = load_spec("openai")
    # The spec's 200 response is oneOf(Json, Diarized, VerboseJson), and Json allows extra
    # fields, so every real verbose_json answer matches two branches and oneOf rejects it.
    # Validate the answer against the branch it is, and the request through the transport.
    spec.validate_component("CreateTranscriptionResponseJson", VERBOSE)
    spec.validate_component("CreateTranscriptionResponseVerboseJson", VERBOSE)
    c, transport = client_for("openai", transcription_handler(VERBOSE), validate_responses=False)
    t = c.transcribe(lm.Audio(np.zeros(1600), rate=16_000), timestamps=True, prompt="greetings")
    transport.assert_clean()
    form = transport.bodies[0]
    assert form["response_format"] == "verbose_json" and form["prompt"] == "greetings"
    assert sorted(form["timestamp_granularities"]) == ["segment", "word"]  # as the spec names it
    request = transport.requests[0]
    wire = parse_multipart(request.content, request.headers["content-type"])
    assert [v for k, v in wire if k == "timestamp_granularities[]"] == ["segment", "word"]
    assert isinstance(t, lm.Transcript) and t == "Hello there."
    assert [w["word"] for w in t.words] == ["Hello", "there"]
    assert [(s["start"], s["end"]) for s in t.segments] == [(0.0, 1.0)]
    assert (t.language, t.duration) == ("english", 1.5)


def test_translate_posts_to_the_translations_endpoint_without_a_language() -> None:
    for provider in ("openai", "groq"):
        c, transport = client_for(provider, transcription_handler({"text": "Good morning"}))
        assert c.transcribe(encoded_audio("FLAC"), translate=True, language="de") == "Good morning"
        transport.assert_clean()
        assert transport.requests[0].url.path.endswith("/audio/translations")
        form = transport.bodies[0]
        assert "language" not in form
        assert (form["file"].filename, form["file"].content_type) == ("audio.flac", "audio/flac")


def test_a_misnamed_file_is_uploaded_under_its_real_type(tmp_path: Path) -> None:
    path = tmp_path / "memo.mp3"
    path.write_bytes(lm.Audio(np.zeros(800), rate=8000).data)
    c, transport = client_for("openai", transcription_handler({"text": "ok"}))
    c.transcribe(str(path))
    transport.assert_clean()
    upload = transport.bodies[0]["file"]
    assert (upload.filename, upload.content_type) == ("memo.mp3", "audio/wav")


@pytest.mark.model
def test_local_whisper_transcribes_espeak_speech_given_as_a_numpy_array(tmp_path: Path) -> None:
    import shutil
    import subprocess

    pytest.importorskip("llm_magics.providers.local", reason="the local provider is not installed")
    pytest.importorskip("faster_whisper", reason="the [local] extra is not installed")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    wav = tmp_path / "speech.wav"
    # Slowed down: espeak's voice at its default speed trips Whisper tiny on some words.
    subprocess.run(
        ["espeak-ng", "-s", "120", "-w", str(wav), "please send the report today"], check=True
    )
    channels, rate, _, pcm = wav_of(wav.read_bytes())
    samples = pcm[:, 0].astype(np.float32) / 32768.0  # as a notebook would hold it
    text = lm.client("local").transcribe(lm.Audio(samples, rate=rate))
    assert channels == 1
    assert all(word in text.lower() for word in ("please", "send", "report")), text


@pytest.mark.parametrize(
    ("provider", "path", "body"),
    [
        (
            "anthropic",
            "/v1/messages",
            {
                "model": "claude-haiku-4-5",
                "max_tokens": 10,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "AA==",
                                },
                            }
                        ],
                    }
                ],
            },
        ),
        (
            "openai",
            "/v1/chat/completions",
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "input_audio",
                                "input_audio": {"data": "AA==", "format": "flac"},
                            }
                        ],
                    }
                ],
            },
        ),
    ],
)
def test_the_specs_reject_the_formats_that_are_converted_so_the_passes_above_mean_something(
    provider: str, path: str, body: dict[str, Any]
) -> None:
    with pytest.raises(SpecViolation, match=r"image/bmp|'flac'"):
        load_spec(provider).validate_request("POST", path, body)

"""lm.Image: every source the issue names becomes checked PNG/JPEG bytes (or a URL), the type
comes from the content, broken files fail with their name, and notebooks get a thumbnail."""

from __future__ import annotations

import base64
import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import llm_magics as lm
from llm_magics._media.objects import as_media_part, sniff_mime
from tests.media_support import decode_image, image_bytes

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture
def cat_png(tmp_path: Path) -> Path:
    path = tmp_path / "cat.png"
    path.write_bytes(image_bytes(64, 48))
    return path


def test_import_llm_magics_and_touching_image_audio_loads_no_imaging_library() -> None:
    code = (
        "import sys, llm_magics as lm; lm.Image; lm.Audio; "
        "print(sorted(m for m in ('PIL', 'numpy', 'httpx2', 'IPython', 'matplotlib') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- sources --------------------------------------------------------------------------------


def test_a_path_is_read_on_first_use_and_typed_from_its_content(cat_png: Path) -> None:
    img = lm.Image(str(cat_png))
    cat_png.write_bytes(image_bytes(32, 16))  # changed before first use: the new bytes count
    part = img.to_media_part()
    assert (part.kind, part.mime_type, part.filename) == ("image", "image/png", "cat.png")
    assert part.data == cat_png.read_bytes()
    assert img.size == (32, 16)
    assert lm.Image(cat_png).to_media_part() == part  # pathlib.Path too


def test_a_jpeg_named_png_is_sent_as_the_jpeg_it_is(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(image_bytes(40, 30, "JPEG"))
    assert lm.Image(path).to_media_part().mime_type == "image/jpeg"


def test_a_text_file_named_png_is_refused_with_its_name_and_what_it_starts_with(
    tmp_path: Path,
) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(lm.ConfigError) as info:
        lm.Image(path).to_media_part()
    message = str(info.value)
    assert "notes.png" in message and "not an image" in message
    assert "b'hello, I am not '" in message and "not the file name" in message
    with pytest.raises(lm.ConfigError, match=r"notes\.png"):
        as_media_part(str(path))


@pytest.mark.parametrize(("fmt", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg")])
def test_a_truncated_file_is_refused_as_truncated_before_anything_is_sent(
    tmp_path: Path, fmt: str, mime: str
) -> None:
    whole = image_bytes(300, 200, fmt, noise=True)
    path = tmp_path / "half.img"
    path.write_bytes(whole[: len(whole) // 2])
    assert sniff_mime(path.read_bytes()) == mime  # the header alone looks fine
    with pytest.raises(lm.ConfigError, match=rf"half\.img.*not a valid {mime} image.*truncated"):
        lm.Image(path).to_media_part()
    with pytest.raises(lm.ConfigError, match="truncated"):
        lm.client("openai:gpt-4o-mini", api_key="sk-test").build_request(["look", lm.Image(path)])


def test_a_missing_file_is_refused_when_wrapped_naming_the_working_directory() -> None:
    with pytest.raises(lm.ConfigError, match=r"image file 'nope\.png' not found \(relative to"):
        lm.Image("nope.png")


def test_bytes_bytearray_and_data_urls_are_accepted() -> None:
    png = image_bytes(10, 10)
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    for source in (png, bytearray(png), memoryview(png), url):
        part = lm.Image(source).to_media_part()
        assert (part.mime_type, part.data) == ("image/png", png)


def test_a_pil_image_is_png_unless_it_was_opened_from_a_jpeg() -> None:
    drawn = PILImage.new("RGBA", (30, 20), (255, 0, 0, 128))
    part = lm.Image(drawn).to_media_part()
    assert part.mime_type == "image/png"
    back = decode_image(part.data or b"")
    assert (back.size, back.mode, back.getpixel((0, 0))) == ((30, 20), "RGBA", (255, 0, 0, 128))
    photo = PILImage.open(io.BytesIO(image_bytes(30, 20, "JPEG")))
    assert lm.Image(photo).to_media_part().mime_type == "image/jpeg"
    palette = drawn.convert("P")
    assert decode_image(lm.Image(palette).data).size == (30, 20)


def test_an_ipython_image_gives_its_bytes_or_its_url() -> None:
    from IPython.display import Image as IPyImage

    png = image_bytes(12, 8)
    assert lm.Image(IPyImage(data=png)).data == png
    remote = lm.Image(IPyImage(url="https://example.org/cat.jpg"))
    part = remote.to_media_part()
    assert (part.url, part.data) == ("https://example.org/cat.jpg", None)


@pytest.mark.parametrize(
    ("array", "mode", "pixel"),
    [
        (np.full((4, 6), 200, np.uint8), "L", 200),
        (np.full((4, 6, 1), 7, np.uint8), "L", 7),
        (np.full((4, 6, 3), (1, 2, 3), np.uint8), "RGB", (1, 2, 3)),
        (np.full((4, 6, 4), (9, 8, 7, 6), np.uint8), "RGBA", (9, 8, 7, 6)),
        (np.full((4, 6, 3), 0.5), "RGB", (128, 128, 128)),
        (np.full((4, 6), 1.0, np.float32), "L", 255),
        (np.ones((4, 6), bool), "L", 255),
        (np.full((4, 6), 100, np.int64), "L", 100),
    ],
)
def test_numpy_arrays_become_pngs_of_the_same_size_and_values(
    array: np.ndarray, mode: str, pixel: object
) -> None:
    part = lm.Image(array).to_media_part()
    img = decode_image(part.data or b"")
    assert (part.mime_type, img.size, img.mode, img.getpixel((5, 3))) == (
        "image/png",
        (6, 4),
        mode,
        pixel,
    )


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((4, 6, 5), np.uint8), r"HxW.*got shape \(4, 6, 5\)"),
        (np.zeros((2, 3, 4, 5), np.uint8), r"got shape \(2, 3, 4, 5\)"),
        (np.full((4, 6), 255.0), r"values in \[0, 1\].*\[255, 255\].*arr / 255"),
        (np.full((4, 6), np.nan), "NaN"),
        (np.full((4, 6), -3, np.int16), r"0-255.*\[-3, -3\]"),
        (np.zeros((4, 6), complex), "dtype complex128"),
        (np.zeros((0, 6), np.uint8), "empty"),
    ],
)
def test_arrays_that_are_not_images_are_refused_saying_what_is_wrong(
    array: np.ndarray, match: str
) -> None:
    with pytest.raises(lm.ConfigError, match=match):
        lm.Image(array)


def test_a_figure_becomes_a_png_of_exactly_the_size_it_reports_captured_when_wrapped() -> None:
    fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
    try:
        ax.plot([0, 1, 2], [2, 0, 1])
        img = lm.Image(fig)
        before = img.to_media_part()
        ax.set_title("changed later")
        assert lm.Image(fig).content_hash != before.content_hash
        assert img.to_media_part() is before
        width, height = (fig.get_size_inches() * fig.dpi).round().astype(int)
        assert decode_image(before.data or b"").size == (width, height) == (320, 240)
        assert lm.Image(ax).to_media_part().mime_type == "image/png"  # an Axes means its figure
    finally:
        plt.close(fig)


def test_images_and_audio_survive_pickle_and_deepcopy_as_a_dataframe_would_need() -> None:
    import copy
    import pickle

    img = lm.Image(np.zeros((4, 4), np.uint8))
    clip = lm.Audio(np.zeros(80), rate=8000)
    for original in (img, clip):
        for clone in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original)):
            assert type(clone) is type(original)
            assert clone.content_hash == original.content_hash


def test_other_objects_are_refused_naming_what_is_accepted() -> None:
    with pytest.raises(lm.ConfigError, match=r"lm.Image cannot use a dict.*file path.*Figure"):
        lm.Image({"not": "an image"})
    with pytest.raises(lm.ConfigError, match="SVG"):
        lm.Image(
            b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>'
        ).to_media_part()


# --- identity and preview ---------------------------------------------------------------------


def test_the_content_hash_is_the_sha256_of_the_bytes_and_of_the_url_for_urls(
    cat_png: Path,
) -> None:
    assert lm.Image(cat_png).content_hash == hashlib.sha256(cat_png.read_bytes()).hexdigest()
    assert lm.Image(cat_png.read_bytes()).content_hash == lm.Image(cat_png).content_hash
    url = "https://example.org/cat.jpg"
    assert lm.Image(url).content_hash == hashlib.sha256(url.encode()).hexdigest()


def test_the_notebook_preview_is_a_small_thumbnail_with_type_size_and_name(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    path.write_bytes(image_bytes(640, 480))
    html = lm.Image(path)._repr_html_()
    src = re.search(r'<img src="data:image/png;base64,([^"]+)"', html)
    assert src is not None
    assert max(decode_image(base64.b64decode(src.group(1))).size) == 192
    assert "image/png · 640×480 px" in html and "wide.png" in html


def test_a_url_preview_points_at_the_url_without_downloading_it() -> None:
    html = lm.Image("https://example.org/a&b.png")._repr_html_()
    assert '<img src="https://example.org/a&amp;b.png"' in html and "fetched when sent" in html


def test_a_broken_image_preview_shows_the_error_instead_of_raising(tmp_path: Path) -> None:
    path = tmp_path / "fake.png"
    path.write_text("plain text")
    assert "not an image" in lm.Image(path)._repr_html_()


# --- as_media_part, used by the magics and the DataFrame accessor -----------------------------


def test_as_media_part_takes_pil_images_figures_and_image_arrays() -> None:
    fig = plt.figure(figsize=(2, 1), dpi=50)
    try:
        parts = [
            as_media_part(PILImage.new("RGB", (5, 5))),
            as_media_part(fig),
            as_media_part(np.zeros((8, 8, 3), np.uint8)),
        ]
    finally:
        plt.close(fig)
    assert [(p.kind, p.mime_type) for p in parts] == [("image", "image/png")] * 3
    assert decode_image(parts[1].data or b"").size == (100, 50)


@pytest.mark.parametrize("shape", [(16000,), (48000, 2), (2, 48000)])
def test_as_media_part_refuses_arrays_that_look_like_audio_and_says_to_give_a_rate(
    shape: tuple[int, ...],
) -> None:
    with pytest.raises(lm.ConfigError, match=r"looks like audio.*lm.Audio\(samples, rate="):
        as_media_part(np.zeros(shape, np.float32))


def test_as_media_part_with_kind_image_takes_paths_bytes_and_urls(cat_png: Path) -> None:
    png = cat_png.read_bytes()
    assert as_media_part(str(cat_png), kind="image").data == png
    assert as_media_part(png, kind="image").data == png
    url_part = as_media_part("https://example.org/x.png", kind="image")
    assert (url_part.kind, url_part.url, url_part.data) == (
        "image",
        "https://example.org/x.png",
        None,
    )


def test_as_media_part_with_the_wrong_kind_says_what_the_content_is(tmp_path: Path) -> None:
    wav = tmp_path / "clip.wav"
    wav.write_bytes(lm.Audio(np.zeros(100), rate=8000).data)
    with pytest.raises(lm.ConfigError, match=r"clip\.wav.*should be an image.*audio/wav"):
        as_media_part(str(wav), kind="image")
    with pytest.raises(lm.ConfigError, match=r"expected audio, got an image"):
        as_media_part(lm.Image(np.zeros((3, 3), np.uint8)), kind="audio")


def test_a_pdf_path_is_a_document_part(tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n")
    part = as_media_part(pdf, kind="document")
    assert (part.kind, part.mime_type, part.filename) == (
        "document",
        "application/pdf",
        "paper.pdf",
    )


def test_without_pillow_arrays_fail_naming_the_extra_but_plain_files_still_work(
    monkeypatch: pytest.MonkeyPatch, cat_png: Path
) -> None:
    for name in [m for m in sys.modules if m == "PIL" or m.startswith("PIL.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import PIL now raises ImportError
    with pytest.raises(lm.ConfigError, match=r"needs Pillow.*pip install 'llm-magics\[media\]'"):
        lm.Image(np.zeros((4, 4), np.uint8))
    part = lm.Image(cat_png).to_media_part()
    assert (part.mime_type, lm.Image(cat_png).size) == ("image/png", (64, 48))

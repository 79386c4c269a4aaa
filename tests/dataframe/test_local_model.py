"""df.llm on the real embedded model (SmolLM2-135M through llama.cpp): no fakes at all."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.model

POSITIVE = [
    "I love this phone, it works perfectly.",
    "Absolutely wonderful service, highly recommended!",
    "The food was delicious and the staff were friendly.",
    "Great movie, I enjoyed every minute.",
    "Fantastic quality, I am very happy with it.",
    "Best purchase I have made this year.",
    "The hotel was clean, quiet and comfortable.",
    "Excellent book, beautifully written.",
    "Super fast delivery and great price.",
    "My kids adore this toy, it is brilliant.",
]
NEGATIVE = [
    "Terrible product, it broke after one day.",
    "The worst service I have ever had.",
    "The food was cold and tasted awful.",
    "Boring movie, a complete waste of time.",
    "Poor quality, I want my money back.",
    "I regret buying this, it is useless.",
    "The room was dirty and the staff were rude.",
    "Awful book, I could not finish it.",
    "Delivery was late and the box was damaged.",
    "This toy is cheap junk and fell apart.",
]


@pytest.fixture(scope="module")
def local_model() -> None:
    pytest.importorskip("llama_cpp", reason="the [local] extra is not installed")


def test_the_local_model_classifies_short_reviews_mostly_right(local_model: None) -> None:
    frame = pd.DataFrame(
        {"review": POSITIVE + NEGATIVE, "truth": ["positive"] * 10 + ["negative"] * 10}
    ).sample(frac=1, random_state=3)
    out = frame.llm.classify(
        "What is the sentiment of this review? {review}",
        labels=["positive", "negative"],
        model="local",
        max_tokens=16,
        progress=False,
    )
    assert out.index.equals(frame.index)
    # Every row has a label from the set: the grammar-constrained enum guarantees it.
    assert out["label_error"].isna().all(), out["label_error"].dropna()
    assert set(out["label"]) <= {"positive", "negative"}
    right = int((out["label"].astype(object) == out["truth"]).sum())
    # Measured 20/20 with this prompt (18/20 with a terser one); the floor leaves room for
    # llama.cpp builds that sample slightly differently.
    assert right >= 15, out[["review", "label"]]


def test_the_local_model_maps_and_a_rerun_comes_from_the_cache(local_model: None) -> None:
    frame = pd.DataFrame({"city": ["Paris", "Rome", "Paris"]})
    first = frame.llm.map(
        "What country is {city} in? One word.", model="local", temperature=0, max_tokens=8,
        progress=False,
    )  # fmt: skip
    assert first["llm_error"].isna().all() and first["llm"].str.len().gt(0).all()
    assert first["llm"].iloc[0] == first["llm"].iloc[2]
    estimate = frame.llm.estimate(
        "What country is {city} in? One word.", model="local", temperature=0, max_tokens=8
    )
    assert (estimate.unique_prompts, estimate.cached, estimate.calls) == (2, 2, 0)

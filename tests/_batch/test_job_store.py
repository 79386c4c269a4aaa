"""Persisted batch-job records: named by what a call asks (not in which order), written
owner-only and whole, read back as written; a record that cannot be read is ignored with a
warning instead of failing the call."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from llm_magics._batch.job_store import JobRecord, JobStore, call_digest


def test_a_calls_digest_is_what_it_asks_not_the_order() -> None:
    one = call_digest("openai", "https://api.openai.com/v1", "gpt-4o-mini", ["ka", "kb"])
    assert one == call_digest("openai", "https://api.openai.com/v1/", "gpt-4o-mini", ["kb", "ka"])
    assert one != call_digest("openai", "https://api.openai.com/v1", "gpt-4o", ["ka", "kb"])
    assert one != call_digest("openai", "https://api.openai.com/v1", "gpt-4o-mini", ["ka"])


def test_a_record_reads_back_as_it_was_written_owner_only(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    record = JobRecord("d" * 64, "openai", "https://x.test/v1", "gpt-4o-mini", key="f" * 16)
    record.jobs.append({"id": "batch_1", "custom_ids": ["ka", "kb"]})
    store.save(record)
    again = store.load("d" * 64)
    assert again == record and again.submitted() == {"ka", "kb"} and again.job_ids == ["batch_1"]
    (path,) = (tmp_path / "jobs").glob("*.json")
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "jobs").stat().st_mode & 0o777 == 0o700
    store.delete("d" * 64)
    assert store.load("d" * 64) is None and store.records() == []


def test_an_unreadable_record_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = JobStore(tmp_path)
    (tmp_path / f"{'e' * 40}.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="llm_magics._batch.job_store"):
        assert store.load("e" * 64) is None
    assert "unreadable batch job record" in caplog.text

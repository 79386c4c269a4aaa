"""Provider batch jobs remembered on disk (:class:`JobStore`), so that the same call after a
kernel restart waits on the jobs it already started instead of paying for new ones.

A record (:class:`JobRecord`) is one JSON file in ``batch-jobs/`` inside the response cache's
directory (``LLM_MAGICS_CACHE_DIR``), named by the call's digest: the SHA-256 of the provider,
its base URL, the model and the custom ids of every request of the call (each a prefix of
that request's response-cache key), so the same rows asked the same way find it. It holds the
provider's job ids with the custom ids each job answers, and the fingerprint of the key that
made them (:attr:`~llm_magics._core.secrets.APIKey.fingerprint`: a salted hash prefix, never the
key). Files are written atomically and owner-only; one that cannot be read is ignored (and
logged), never fatal: the call then starts new jobs.

Thread and process safety: a record is replaced as a whole (``os.replace``); two kernels
running the same call at the same moment may both start jobs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._cache.config import default_directory, private_directory

__all__ = ["JobRecord", "JobStore", "call_digest", "store_for"]

log = logging.getLogger("llm_magics._batch.job_store")

VERSION = 1


def call_digest(provider: str, base_url: str, model: str, custom_ids: Sequence[str]) -> str:
    """The name of a call's record: what it asks, not in which order."""
    payload = json.dumps([VERSION, provider, base_url.rstrip("/"), model, sorted(custom_ids)])
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class JobRecord:
    """The jobs of one call: ``jobs`` is ``[{"id": job id, "custom_ids": [...]}, ...]``."""

    digest: str
    provider: str
    base_url: str
    model: str
    key: str | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    version: int = VERSION

    @property
    def job_ids(self) -> list[str]:
        return [str(job["id"]) for job in self.jobs]

    def submitted(self) -> set[str]:
        """The custom ids some job of this call answers."""
        return {str(cid) for job in self.jobs for cid in job.get("custom_ids", ())}


class JobStore:
    """The records in one directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"JobStore({str(self.directory)!r})"

    def _path(self, digest: str) -> Path:
        return self.directory / f"{digest[:40]}.json"

    def load(self, digest: str) -> JobRecord | None:
        path = self._path(digest)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            record = JobRecord(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring the unreadable batch job record %s (%s)", path, exc)
            return None
        if record.digest != digest or record.version != VERSION:
            return None
        return record

    def save(self, record: JobRecord) -> None:
        private_directory(self.directory)
        path = self._path(record.digest)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            json.dump(asdict(record), out)
        os.replace(temporary, path)

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    def records(self) -> list[JobRecord]:
        """Every readable record, oldest first."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                found.append(JobRecord(**json.loads(path.read_text(encoding="utf-8"))))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda r: r.created)


def store_for(cache: Any) -> JobStore:
    """The store beside ``cache`` (a response cache with a ``directory``), else beside the
    default cache directory."""
    directory = getattr(cache, "directory", None)
    base = Path(directory) if directory is not None else default_directory()
    return JobStore(base / "batch-jobs")

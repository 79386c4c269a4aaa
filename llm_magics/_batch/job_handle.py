"""The handle of a call's provider batch jobs (:class:`JobHandle`), what ``wait=False`` gives
back: ``status()`` asks the provider where the jobs are now (:class:`JobsStatus`), ``cancel()``
asks it to stop them (requests already answered keep their answers). The DataFrame handle adds
``result()`` (:class:`llm_magics.dataframe.batch.BatchHandle`).

Thread safety: the sync methods run on the package's loop thread; call them from one thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from .._client.client import Client
from .._core.batch import BatchJob
from .._core.fmt import markdown_table
from .._core.secrets import APIKey
from .._runtime import loop
from .._runtime.http import Timeouts
from .job_store import JobRecord
from .job_wire import JobWire

__all__ = ["JobHandle", "JobsStatus"]


@dataclass
class JobsStatus:
    """Where a call's jobs are: each job as its provider reported it just now."""

    model: str
    jobs: list[BatchJob]

    @property
    def ended(self) -> bool:
        return all(job.ended for job in self.jobs)

    @property
    def requests(self) -> int:
        return sum(job.requests for job in self.jobs)

    def _count(self, name: str) -> int:
        return sum(int(getattr(job, name)) for job in self.jobs)

    def __str__(self) -> str:
        states = ", ".join(sorted({job.status for job in self.jobs})) or "none"
        count = len(self.jobs)
        return (
            f"{self.model}: {count} batch job{'s' if count != 1 else ''} {states} · "
            f"{sum(j.finished for j in self.jobs):,}/{self.requests:,} requests done · "
            f"{self._count('failed'):,} failed · {self._count('expired'):,} expired · "
            f"{self._count('canceled'):,} canceled"
        )

    def _repr_markdown_(self) -> str:
        rows = [
            [job.id, job.status, f"{job.finished:,}/{job.requests:,}", str(job.failed)]
            for job in self.jobs
        ]
        return markdown_table(["job", "status", "done", "failed"], rows)


class JobHandle:
    """The jobs a call started (or resumed); see the module docstring."""

    def __init__(self, client: Client, record: JobRecord) -> None:
        self.client = client
        self.record = record

    def __repr__(self) -> str:
        ids = ", ".join(self.record.job_ids)
        count = len(self.record.submitted())
        return f"JobHandle({self.client.model_id}, jobs {ids}, {count:,} requests)"

    @property
    def job_ids(self) -> list[str]:
        return self.record.job_ids

    async def astatus(self) -> JobsStatus:
        wire = JobWire(self.client, self.record.key)
        provider = self.client.provider
        jobs = []
        for job_id in self.record.job_ids:

            async def look(
                key: APIKey | None, timeouts: Timeouts, job_id: str = job_id
            ) -> BatchJob:
                return await provider.batch_status(job_id, key, timeouts)

            jobs.append(await wire.call(look))
        return JobsStatus(self.client.model_id, jobs)

    def status(self) -> JobsStatus:
        """Where the jobs are, asked of the provider now."""
        return loop.run(self.astatus())

    async def acancel(self) -> JobsStatus:
        wire = JobWire(self.client, self.record.key)
        provider = self.client.provider
        jobs = []
        for job_id in self.record.job_ids:

            async def stop(
                key: APIKey | None, timeouts: Timeouts, job_id: str = job_id
            ) -> BatchJob:
                return await provider.batch_cancel(job_id, key, timeouts)

            jobs.append(await wire.call(stop))
        return JobsStatus(self.client.model_id, jobs)

    def cancel(self) -> JobsStatus:
        """Ask the provider to stop the jobs; answered requests keep their answers (the same
        call then collects them, and sends what was not answered in a new job)."""
        return loop.run(self.acancel())

"""A client as Ray workers receive it: a picklable description without a secret in it
(:class:`ClientSpec`), and how the secrets reach the workers (:class:`WorkerSecrets`).

Secrets never travel in task or actor arguments, and never in a runtime environment's
``env_vars`` either: Ray's runtime-env agent writes those into its log. (Nor does a job set a
runtime environment at all: one makes Ray start fresh worker processes for the job, seconds
of every job's start.) A worker finds the job's keys, in this order:

1. in the secrets file the driver wrote for the job (owner-only, deleted when the job
   ends; a driver killed outright leaves it until the next job on the machine deletes
   it), whose *path* is in the spec (:meth:`WorkerSecrets.locate`): this covers a cluster
   on the driver's machine, and keys given as ``api_key=``;
2. in its own environment, under the vendor's variables (``OPENAI_API_KEYS``,
   ``OPENAI_API_KEY``...): a cluster whose nodes were started with the keys set.

Either way it checks them against the driver's key fingerprints (salted hashes, in pool
order) and refuses to run with others. The Redis URL (which may hold a password) travels the
same way; a disk cache's directory, which is not secret, is in the spec. A
structured-output schema travels as its JSON schema (a pydantic model defined in a notebook
need not be importable on a worker); the driver parses answers into the model itself.

Thread safety: a ClientSpec is immutable; a WorkerSecrets belongs to one job.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._cache.redis_store import ENV_URL, RedisCache
from .._cache.store import ResponseCache as DiskCache
from .._cache.store import open_cache
from .._client.client import Client
from .._client.keys import KeyPool
from .._client.registry import build_provider
from .._core.errors import ConfigError
from .._core.types import OutputSchema
from .._runtime.http import Timeouts
from .._runtime.retry import RetryPolicy
from ..providers.catalog import Vendor, keys_from_env

__all__ = ["ClientSpec", "WorkerSecrets", "portable_options"]
_CACHE_DIR_ENV = "LLM_MAGICS_CACHE_DIR"


@dataclass(frozen=True)
class ClientSpec:
    """Everything a worker needs to rebuild a client, and nothing secret."""

    vendor: Vendor
    base_url: str
    model: str
    key_env: str | None
    #: The driver's keys as fingerprints (salted hashes), in pool order.
    key_fingerprints: tuple[str, ...]
    #: ``"none"``, ``"redis"`` or ``"disk"``: which cache the worker opens from its env.
    cache: str
    retry: RetryPolicy
    timeouts: Timeouts
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Where the driver's job secrets file is (on the driver's machine), "" for none.
    secrets_path: str = ""
    #: The driver's disk cache directory, "" for none.
    cache_dir: str = ""

    @classmethod
    def of(cls, client: Client) -> ClientSpec:
        provider = client.provider
        if provider.transport is not None:
            raise ConfigError(
                f"{client.model_id} was built with transport=, which cannot reach Ray workers; "
                "use a client without a custom transport for engine='ray'"
            )
        vendor = provider.vendor
        if vendor is None:
            raise ConfigError(f"{client.model_id} has no catalog entry to rebuild it on workers")
        cache = client.cache
        kind = "redis" if isinstance(cache, RedisCache) else "disk" if cache is not None else "none"
        if kind == "disk" and not isinstance(cache, DiskCache):
            kind = "none"  # a cache of the caller's own making stays with the driver
        pool = client.keys
        return cls(
            vendor=vendor,
            base_url=provider.base_url,
            model=client.model,
            key_env=pool.env if pool is not None else None,
            key_fingerprints=pool.fingerprints() if pool is not None else (),
            cache=kind,
            retry=client.retry,
            timeouts=client.timeouts,
            defaults=portable_options(client.defaults),
        )

    def build(self, keys: KeyPool | None = None) -> Client:
        """The client on a worker; ``keys`` replaces the pool read from :data:`KEYS_ENV`
        (the job's shared limiter wraps it)."""
        provider = build_provider(self.vendor, self.base_url)
        if keys is None:
            keys = self.key_pool()
        return Client(
            provider,
            self.model,
            keys=keys,
            cache=self._cache(),
            retry=self.retry,
            timeouts=self.timeouts,
            defaults=dict(self.defaults),
        )

    def key_pool(self) -> KeyPool | None:
        """The job's keys on this worker (see the module doc), in the driver's order."""
        if not self.key_fingerprints:
            return None
        for keys, where in (
            (self._secrets().get("keys") or [], "the job's secrets file"),
            (keys_from_env(self.vendor)[0], "this worker's environment"),
        ):
            if keys:
                pool = KeyPool(self.vendor.name, keys, env=self.key_env)
                if pool.fingerprints() == self.key_fingerprints:
                    return pool
                if where == "this worker's environment":
                    break
        names = ", ".join(n for n in (self.vendor.keys_env, *self.vendor.key_envs) if n)
        raise ConfigError(
            f"the Ray worker on {socket.gethostname()} cannot see the job's {self.vendor.name} "
            f"key(s): the driver's secrets file is not on this machine and its environment "
            f"holds other keys or none. Start the cluster's nodes with {names or 'the key'} "
            "set to the driver's keys."
        )

    def _cache(self) -> Any:
        if self.cache == "redis":
            url = str(self._secrets().get("cache_url") or os.environ.get(ENV_URL, "")).strip()
            if not url:
                raise ConfigError(
                    f"the Ray worker on {socket.gethostname()} cannot reach the job's Redis "
                    f"cache: start the cluster's nodes with {ENV_URL} set"
                )
            return open_cache(url)
        if self.cache == "disk":
            directory = self.cache_dir or os.environ.get(_CACHE_DIR_ENV, "").strip()
            return open_cache(directory) if directory else None
        return None

    def _secrets(self) -> dict[str, Any]:
        """The job's secrets file, when this worker can read it (same machine as the
        driver)."""
        if not self.secrets_path:
            return {}
        try:
            found = json.loads(Path(self.secrets_path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return found if isinstance(found, dict) else {}


_PREFIX = "llm_magics-ray-"


def _sweep_orphans() -> None:
    """Delete the secrets folders of drivers that died without deleting them (a killed
    kernel): a folder is named by its driver's pid."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
        pid = folder.name.removeprefix(_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or folder.stat().st_uid != os.getuid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except PermissionError:
            continue


class WorkerSecrets:
    """The secrets file of one job; a context manager that deletes it when the job ends."""

    def __init__(self, client: Client) -> None:
        self._path = ""
        self._cache_dir = ""
        self._folder: str | None = None
        secrets: dict[str, Any] = {}
        if client.keys is not None:
            secrets["keys"] = client.keys.secrets()
        cache = client.cache
        if isinstance(cache, RedisCache):
            secrets["cache_url"] = cache.secret_url
        elif isinstance(cache, DiskCache):
            self._cache_dir = str(cache.directory)
        if secrets:
            _sweep_orphans()
            # Owner-only (0o700); named by this process, so a later job can tell an orphan.
            self._folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
            path = Path(self._folder) / "secrets.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(secrets, out)
            self._path = str(path)

    def locate(self, spec: ClientSpec) -> ClientSpec:
        """``spec`` with where its workers find this job's secrets file and disk cache."""
        return replace(spec, secrets_path=self._path, cache_dir=self._cache_dir)

    def __enter__(self) -> WorkerSecrets:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def portable_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with a schema as its JSON schema (the pydantic model stays home)."""
    schema = options.get("schema")
    if schema is None:
        return dict(options)
    spec = OutputSchema.from_user(schema)
    return {**options, "schema": OutputSchema(spec.name, spec.json_schema)}

"""A real local Ray cluster for tests: ``ray start --head --num-cpus 2`` on a free port, in a
temp dir of its own, stopped with ``ray stop`` at the end (TESTING.md, section 7). The test
process connects as a driver with ``ray.init(address=...)``; a subprocess (a second kernel,
or a driver killed midway) connects to the same cluster the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.redis_server import free_port

__all__ = ["RayCluster", "ray_cluster"]


class RayCluster:
    def __init__(self, temp_dir: Path) -> None:
        ray_cli = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
        self.port = free_port()
        self.temp_dir = temp_dir
        self.address = f"127.0.0.1:{self.port}"
        self._cli = ray_cli
        self._env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
        subprocess.run(
            [
                ray_cli, "start", "--head", "--num-cpus", "2", "--port", str(self.port),
                "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
                "--temp-dir", str(temp_dir), "--disable-usage-stats",
            ],
            check=True, env=self._env, capture_output=True, timeout=180,
        )  # fmt: skip

    @property
    def logs(self) -> Path:
        return self.temp_dir

    def stop(self) -> None:
        subprocess.run(
            [self._cli, "stop", "--force"], env=self._env, capture_output=True, timeout=120
        )


@contextmanager
def ray_cluster(temp_dir: Path) -> Iterator[RayCluster]:
    cluster = RayCluster(temp_dir)
    try:
        yield cluster
    finally:
        cluster.stop()

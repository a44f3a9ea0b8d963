"""A replicated Redis with Sentinel, for tests: real `redis-server` processes on free ports
(a primary, a replica, and sentinels run as `redis-server <conf> --sentinel`), each in a
folder of its own under the test's temp dir, optionally all on TLS with a CA made at test
time. Nothing here touches 127.0.0.1:6379.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.support import free_port, wait_until

SERVICE = "outdial-test"
# A primary that does not answer for this long is down for a sentinel (a production default
# is 30 s; 1 s keeps a test's failover to a few seconds).
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@dataclass(frozen=True)
class TlsFiles:
    """A CA and a certificate it signed for 127.0.0.1 and localhost (server and client)."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, folder: Path) -> TlsFiles:
        folder.mkdir(parents=True, exist_ok=True)
        ca, ca_key = folder / "ca.crt", folder / "ca.key"
        cert, key, request = folder / "redis.crt", folder / "redis.key", folder / "redis.csr"
        extensions = folder / "san.ext"
        extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        commands = [
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=outdial-test-ca", "-keyout", ca_key, "-out", ca],
            ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", key, "-out", request],
            ["openssl", "x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key,
             "-CAcreateserial", "-days", "1", "-extfile", extensions, "-out", cert],
        ]  # fmt: skip
        for command in commands:
            subprocess.run([str(part) for part in command], check=True, capture_output=True)
        return cls(ca=ca, cert=cert, key=key)

    def server_lines(self) -> list[str]:
        return [
            f"tls-cert-file {self.cert}",
            f"tls-key-file {self.key}",
            f"tls-ca-cert-file {self.ca}",
            "tls-auth-clients no",
            "tls-replication yes",
        ]

    def client_options(self) -> dict[str, Any]:
        return {"ssl": True, "ssl_ca_certs": str(self.ca)}


class RedisNode:
    """One redis-server (data node or sentinel) with its config file in its own folder."""

    def __init__(
        self, folder: Path, lines: list[str], *, sentinel: bool = False, password: str = ""
    ) -> None:
        # What a client must AUTH with (`requirepass`, written into the config).
        self.password = password
        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.config = folder / "redis.conf"
        self.lines = lines
        self.sentinel = sentinel
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, tls: TlsFiles | None) -> None:
        listen = ["port 0", f"tls-port {self.port}"] if tls else [f"port {self.port}"]
        common = ["bind 127.0.0.1", f"dir {self.folder}", f"logfile {self.folder / 'log'}"]
        storage = (
            [] if self.sentinel else ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]
        )
        tls_lines = tls.server_lines() if tls else []
        auth = [f"requirepass {self.password}"] if self.password else []
        lines = listen + common + storage + tls_lines + auth + self.lines
        self.config.write_text("\n".join(lines) + "\n")
        command = ["redis-server", str(self.config)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)

    def client(self, tls: TlsFiles | None, **options: Any) -> redis.Redis:
        tls_options = tls.client_options() if tls else {}
        auth = {"password": self.password} if self.password else {}
        return redis.Redis(
            "127.0.0.1", self.port, socket_timeout=2, **tls_options, **auth, **options
        )

    def kill(self) -> None:
        """SIGKILL: a primary that vanishes without a word, as a crashed host does."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class SentinelCluster:
    """A primary, one replica and `sentinels` sentinels watching them (quorum: a majority)."""

    def __init__(
        self,
        folder: Path,
        sentinels: int = 3,
        tls: TlsFiles | None = None,
        down_after_ms: int = DOWN_AFTER_MS,
        password: str = "",
        sentinel_password: str = "",
    ) -> None:
        self.tls = tls
        # The replica (and a demoted primary) authenticates to its primary with `masterauth`.
        data_auth = [f"masterauth {password}"] if password else []
        self.primary = RedisNode(folder / "primary", data_auth, password=password)
        self.replica = RedisNode(
            folder / "replica",
            [*data_auth, f"replicaof 127.0.0.1 {self.primary.port}"],
            password=password,
        )
        self.quorum = sentinels // 2 + 1
        # Sentinels authenticate to the data nodes, and to each other.
        sentinel_auth = [f"sentinel auth-pass {SERVICE} {password}"] if password else []
        if sentinel_password:
            sentinel_auth.append(f"sentinel sentinel-pass {sentinel_password}")
        self.sentinels = [
            RedisNode(
                folder / f"sentinel-{index}",
                [
                    f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} {self.quorum}",
                    f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}",
                    f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {SERVICE} 1",
                    *sentinel_auth,
                ],
                sentinel=True,
                password=sentinel_password,
            )
            for index in range(sentinels)
        ]

    @property
    def sentinels_text(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)

    @property
    def nodes(self) -> list[RedisNode]:
        return [self.primary, self.replica]

    def start(self) -> SentinelCluster:
        for node in [self.primary, self.replica, *self.sentinels]:
            node.start(self.tls)
        wait_until(self._replica_in_sync, timeout=20, what="the replica to sync")
        wait_until(self._sentinels_see_everything, timeout=30, what="the sentinels to agree")
        return self

    def stop(self) -> None:
        for node in [*self.sentinels, self.primary, self.replica]:
            node.stop()

    def sentinel_client(self, index: int = 0) -> redis.Redis:
        return self.sentinels[index].client(self.tls, decode_responses=True)

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel names it now (None: it names none)."""
        client = self.sentinel_client()
        try:
            address = client.sentinel_get_master_addr_by_name(SERVICE)
        except redis.RedisError:
            return None
        finally:
            client.close()
        return int(address[1]) if address else None

    def node_on(self, port: int) -> RedisNode:
        return next(node for node in self.nodes if node.port == port)

    def data_client(self, port: int, **options: Any) -> redis.Redis:
        return self.node_on(port).client(self.tls, **options)

    def wait_for_primary_other_than(self, port: int, timeout: float = 30) -> int:
        """The new primary's port, once every sentinel names it and it takes writes."""

        def moved() -> int | None:
            ports = set()
            for index in range(len(self.sentinels)):
                client = self.sentinel_client(index)
                try:
                    address = client.sentinel_get_master_addr_by_name(SERVICE)
                finally:
                    client.close()
                ports.add(int(address[1]) if address else None)
            (named,) = ports if len(ports) == 1 else (None,)
            if named is None or named == port:
                return None
            data = self.data_client(named, decode_responses=True)
            try:
                return named if data.info("replication")["role"] == "master" else None
            finally:
                data.close()

        found: int = wait_until(moved, timeout=timeout, interval=0.05, what="a new primary")
        return found

    def _replica_in_sync(self) -> bool:
        client = self.replica.client(self.tls, decode_responses=True)
        try:
            return client.info("replication").get("master_link_status") == "up"
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    def _sentinels_see_everything(self) -> bool:
        for index in range(len(self.sentinels)):
            client = self.sentinel_client(index)
            try:
                state = client.sentinel_master(SERVICE)
            except redis.RedisError:
                return False
            finally:
                client.close()
            if int(state["num-slaves"]) < 1:
                return False
            if int(state["num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
        return True

"""Test instruments for MQTT: Debian's mosquitto broker on a loopback port with a generated config
(anonymous, or a password file and an ACL, optionally TLS with a test CA made by openssl), and an
independent subscriber that records what the broker delivers."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from support.waiting import wait_for

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
MISSING = None if MOSQUITTO and MOSQUITTO_PASSWD else \
    "needs Debian's mosquitto broker and mosquitto-clients (./dev installs them: TEST_DEBS)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_test_ca(folder: Path, *, host: str = "127.0.0.1") -> TlsFiles:
    """A CA and a server certificate for `host` (an IP SAN), made with the openssl command."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.cnf"
    ext.write_text(f"subjectAltName=IP:{host}\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=nvr test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={host}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return TlsFiles(ca, cert, key)


class Broker:
    """One mosquitto process on 127.0.0.1:`port`; `stop()` and `start()` again keep the port and, with
    persistence, the sessions and retained messages. `nodelay`: mosquitto's `set_tcp_nodelay` (off by
    default: the broker then lets Nagle's algorithm hold a small message up to a delayed ACK)."""

    def __init__(self, folder: Path, *, users: dict[str, str] | None = None, acl: str | None = None,
                 tls: TlsFiles | None = None, port: int | None = None, nodelay: bool = False):
        self.folder, self.port, self.tls = folder, port or free_port(), tls
        folder.mkdir(parents=True, exist_ok=True)
        lines = [f"listener {self.port} 127.0.0.1", "user root", "persistence true",
                 f"persistence_location {folder}/", f"log_dest file {folder}/mosquitto.log", "log_type all",
                 f"allow_anonymous {'false' if users else 'true'}", f"set_tcp_nodelay {'true' if nodelay else 'false'}"]
        if users:
            passwords = folder / "passwords"
            passwords.write_text("")
            for name, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwords), name, password], check=True, capture_output=True)
            passwords.chmod(0o600)
            lines.append(f"password_file {passwords}")
        if acl is not None:
            (folder / "acl").write_text(acl)
            (folder / "acl").chmod(0o600)
            lines.append(f"acl_file {folder / 'acl'}")
        if tls is not None:
            lines += [f"cafile {tls.ca}", f"certfile {tls.cert}", f"keyfile {tls.key}"]
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        wait_for(self._listening, timeout_s=10, what=f"mosquitto to listen on {self.port}", details=self._log)
        return self

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"mosquitto exited: {self.process.stderr.read().decode(errors='replace')}\n{self._log()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def _log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def url(self, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    arrived_ns: int = field(default=0, compare=False)  # time.monotonic_ns() when paho handed it over (bench)

    def json(self) -> dict:
        return json.loads(self.payload)


class Subscriber:
    """An independent MQTT client that records every message of `topics` (QoS 1, persistent session:
    what arrives while the broker restarts is kept for it)."""

    def __init__(self, broker: Broker, topics: list[str], *, user: str | None = None, password: str | None = None,
                 client_id: str = "test-subscriber"):
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if user:
            self._client.username_pw_set(user, password)
        if broker.tls is not None:
            self._client.tls_set(ca_certs=str(broker.tls.ca))
        self._client.reconnect_delay_set(1, 1)
        self.connected = threading.Event()
        self._client.on_connect = lambda c, u, f, rc, p: (c.subscribe([(t, 1) for t in topics]), self.connected.set())
        self._client.on_message = self._message
        self._client.on_socket_open = lambda c, u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client.connect("127.0.0.1", broker.port, keepalive=30)
        self._client.loop_start()
        wait_for(self.connected.is_set, timeout_s=10, what="the test subscriber to connect")

    def _message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append(Received(message.topic, bytes(message.payload), bool(message.retain), time.monotonic_ns()))

    def on(self, topic: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Received | None:
        found = self.on(topic)
        return found[-1] if found else None

    def wait(self, topic: str, predicate=lambda m: True, *, timeout_s: float = 20, what: str | None = None) -> Received:
        return wait_for(lambda: next((m for m in reversed(self.on(topic)) if predicate(m)), None), timeout_s=timeout_s,
                        what=what or f"a message on {topic}", details=lambda: [m.topic for m in self.messages[-10:]])

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

"""Startup checks of the long-running commands, made before their banner says they run.

Each failure stops the command with one line naming the cause and the fix (`startup.refuse`): the TLS files
(readable, a certificate and its key, a CA), the listening socket (bound here, then handed to the server, so
"listening on" is true when printed), and Kafka (`detect` waits for it; `ingest` starts without it, answers
503 until it is there, and says so in one line; both create the topics, and a topic Kafka refuses to create is a
configuration error). The alert store is checked by `startup.open_store`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from auditwatch.startup import EXIT_FAILURE, refuse

log = logging.getLogger("auditwatch.startup")
KAFKA_PROBE_TIMEOUT_S = 5.0  # one attempt; a broker that is up answers in milliseconds
KAFKA_RETRY_CAP_S = 10.0


def bind_listener(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening TCP socket on host:port (as uvicorn would bind it), or a one-line refusal. `shared`: with
    SO_REUSEPORT, so that worker processes can listen on the same port (`auditwatch.workers`)."""
    where = f"{host}:{port}"
    try:
        # IPPROTO_TCP said, not left 0: asyncio sets TCP_NODELAY only on connections whose socket says it, and
        # without it a response's body waits behind its headers for the client's delayed ACK (~40 ms a request)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    except OSError as exc:
        refuse(f"cannot listen on {where}: {exc.strerror}", EXIT_FAILURE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except socket.gaierror:
        sock.close()
        refuse(f"cannot listen on {where}: {host!r} is not an address or a name this machine resolves: fix --host")
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            refuse(f"cannot listen on {where}: the port is in use (another auditwatch?): stop that process or "
                   "choose another --port", EXIT_FAILURE)  # fmt: skip
        if exc.errno == errno.EACCES:
            refuse(f"cannot listen on {where}: permission denied (a port below 1024 needs root or "
                   "CAP_NET_BIND_SERVICE): choose --port 1024 or above")  # fmt: skip
        if exc.errno == errno.EADDRNOTAVAIL:
            refuse(f"cannot listen on {where}: {host} is not an address of this machine: fix --host")
        refuse(f"cannot listen on {where}: {exc.strerror or exc}", EXIT_FAILURE)
    return sock


class _EncryptedKey(Exception):
    """The key file asks for a password: OpenSSL would prompt for it on the terminal."""


def _ask_no_password() -> str:
    raise _EncryptedKey


def check_tls(cert: str | None, key: str | None, client_ca: str | None) -> None:
    """The server certificate and its key load and match, and the client CA loads; else a one-line refusal."""
    if not cert or not key:
        return
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--tls-client-ca", client_ca)):
        if path:
            try:
                with open(path, "rb") as f:
                    f.read(1)
            except OSError as exc:
                refuse(f"cannot read {flag} {path}: {exc.strerror}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_verify_locations(cafile=cert)  # alone first: says whether the certificate is the problem
    except ssl.SSLError:
        refuse(f"--tls-cert {cert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        context.load_cert_chain(cert, key, password=_ask_no_password)
    except _EncryptedKey:
        refuse(f"--tls-key {key} is encrypted: give auditwatch the key unencrypted (openssl pkey -in KEY -out NEW)")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            refuse(f"--tls-key {key} is not the key of --tls-cert {cert}: give the certificate's own key")
        refuse(f"--tls-key {key} holds no PEM private key (-----BEGIN PRIVATE KEY-----)")
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except ssl.SSLError:
            refuse(f"--tls-client-ca {client_ca} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")


@contextmanager
def quiet_kafka_client() -> Iterator[None]:
    """Hold back aiokafka's own ERROR lines (one per connection attempt) while the caller says it in one line."""
    client_log = logging.getLogger("aiokafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client_log.setLevel(level)


async def kafka_attempt(probe: Callable[[float], Awaitable[Any]], timeout_s: float) -> str | None:
    """One try of `probe(timeout_s)` (e.g. creating the topics); None when Kafka answered, else the problem. A
    topic Kafka refuses to create (TopicRefused) is a configuration error: a one-line refusal, exit status 2."""
    from ingest.kafka import TopicRefused, kafka_problem

    with quiet_kafka_client():
        try:
            await asyncio.wait_for(probe(timeout_s), timeout_s + 1)
            return None
        except TopicRefused as exc:  # waiting would not change it
            refuse(str(exc))
        except Exception as exc:  # whatever the client raises, Kafka is not usable yet
            return kafka_problem(exc, timeout_s)


async def wait_for_kafka(probe: Callable[[float], Awaitable[Any]], bootstrap: str, wait_s: float) -> None:
    """Try `probe` until it works, with backoff and an INFO line per retry, for at most `wait_s` seconds;
    then a one-line refusal, exit status 1."""
    deadline = time.monotonic() + wait_s
    delay = 1.0
    while True:
        problem = await kafka_attempt(probe, min(KAFKA_PROBE_TIMEOUT_S, max(wait_s, 1.0)))
        if problem is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            refuse(f"Kafka at {bootstrap} is not reachable ({problem}) after waiting {wait_s:g} s: start it, fix "
                   "--kafka, or wait longer with --kafka-wait SECONDS", EXIT_FAILURE)  # fmt: skip
        pause = min(delay, left)
        log.info("Kafka at %s not reachable yet (%s): retrying in %.0f s, %.0f s left", bootstrap, problem, pause, left)
        await asyncio.sleep(pause)
        delay = min(delay * 2, KAFKA_RETRY_CAP_S)

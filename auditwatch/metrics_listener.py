"""detect's metrics listener: `GET /metrics` on a port of its own (`--metrics-port`), in a thread of its own.

`detect` serves nothing else over HTTP. The listener runs uvicorn on an event loop of its own thread, so a
scrape is answered while the consumer's loop is busy running a batch through the detectors. Its socket is
bound by the caller, so a port already taken fails at start, in the caller, with an OSError.
"""

from __future__ import annotations

import socket
import threading

import uvicorn

from auditwatch.metrics import Metrics
from auditwatch.server import create_metrics_app, protocol_options, ssl_options
from auditwatch.settings import Settings

STOP_TIMEOUT_S = 10.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when the host is an IPv6 address); OSError when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family)


class MetricsListener:
    """`listener` holds the listener's address in `host`/`port` (settings.metrics_listener) and its access rules."""

    def __init__(self, listener: Settings, metrics: Metrics) -> None:
        app = create_metrics_app(listener, metrics)  # with the Host check of auditwatch/hosts.py if it has no token
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off",
            **protocol_options(listener), **ssl_options(listener),
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.socket = bind(listener.host, listener.port)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name="metrics listener", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop serving (scrapes in flight finish first, within STOP_TIMEOUT_S)."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(STOP_TIMEOUT_S)
        self.socket.close()

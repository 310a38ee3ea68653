"""The HTTP apps: `serve` (webhook + detection + REST), `ingest` (webhook -> Kafka), `api` (REST only).

Clients (store, Kafka producer) are owned by each app's lifespan. Access control is applied here, the
same way for every app: read-only and read-write bearer tokens and/or TLS client certificates
(auditwatch/auth.py, `run_http`). Every app serves `GET /metrics` from a registry of its own
(auditwatch/metrics.py), kept at `app.state.metrics`. An app whose settings authenticate nobody checks each
request's Host (auditwatch/hosts.py) before anything else of its own, so that every way of serving it has the
check: `run_http`, detect's metrics listener, or a program that serves an app of these factories itself.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.problems import use_problem_details
from api.routes import answer_store_errors, not_ready, ready
from api.routes import router as api_router
from api.store import AlertStore
from api.triage_routes import router as triage_router
from auditwatch.auth import ClientCertProtocol, access_policy, add_access_control
from auditwatch.console.app import is_console_path, mount_console
from auditwatch.console.session import docs_credentials
from auditwatch.docs import docs_router
from auditwatch.embedded import EmbeddedSink
from auditwatch.head import HeadAsGet
from auditwatch.hosts import HostCheck
from auditwatch.http_protocols import ProblemHttpToolsProtocol
from auditwatch.live_exceptions import LiveExceptions
from auditwatch.metrics import Metrics
from auditwatch.metrics_http import add_metrics_route, count_webhook_responses
from auditwatch.notify.config import SinkConfig
from auditwatch.notify.sender import Sender, rule_descriptions, rule_responses
from auditwatch.preflight import quiet_kafka_client
from auditwatch.settings import Settings, authenticates
from auditwatch.startup import EXIT_FAILURE, package_version
from detectors.base import Detector
from detectors.loading.formats import LoadOptions
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.tuning.tuning import load_tuning
from ingest.kafka import KafkaSink, TopicMissing, TopicRefused, TopicSpec, ensure_topics
from ingest.webhook import WEBHOOK_PATHS, BatchSink, SinkUnavailable, webhook_router

ingest_log = logging.getLogger("auditwatch.ingest")  # what the ingest app says about Kafka


def _app(
    title: str, settings: Settings, lifespan: Any, metrics: Metrics, console: Sequence[Detector] | None = None
) -> FastAPI:
    """An app with what every listener has: errors as problem details (api/problems.py), /docs served from the
    package (auditwatch/docs.py), /version, access control, /metrics and HEAD wherever GET is served
    (auditwatch/head.py); the web console at `/` when `console` is given (the rules the process loaded: none for
    `api`); and, when the settings authenticate nobody, the Host check around all that (auditwatch/hosts.py)."""
    app = FastAPI(
        title=title, summary="Kubernetes audit webhook -> detectors -> alert store -> REST", lifespan=lifespan,
        version=package_version(), docs_url=None, redoc_url=None,
        description="Errors are RFC 9457 problem details (`application/problem+json`): `type` (about:blank), "
        "`title`, `status`, `detail`; a 422 adds `errors`.",
    )  # fmt: skip
    use_problem_details(app)
    app.include_router(docs_router(app))
    policy = access_policy(settings)
    if policy.enabled:
        if console is not None:
            add_access_control(app, policy, is_console_path, docs_credentials)
        else:
            add_access_control(app, policy, lambda _path: False)
    app.state.metrics = metrics
    add_metrics_route(app, metrics.registry)
    if console is not None:
        mount_console(app, policy, console)
    app.add_middleware(HeadAsGet)  # outside access control, which checks the GET it becomes: a read either way
    if not authenticates(settings):
        app.add_middleware(HostCheck, allowed=settings.allowed_hosts)
    return app


def _add_webhook(app: FastAPI, sink: BatchSink, settings: Settings, metrics: Metrics) -> None:
    """The webhook's routes, its batches observed and its responses counted (outside the access check)."""
    app.include_router(
        webhook_router(
            sink,
            max_body_bytes=settings.max_body_bytes,
            body_read_timeout_s=settings.body_read_timeout_s,
            body_budget_bytes=settings.body_budget_bytes,
            observer=metrics.events,
        )  # fmt: skip
    )
    count_webhook_responses(app, metrics.registry, WEBHOOK_PATHS)


def _add_rest(app: FastAPI) -> None:
    """The REST API, a store that fails answered with a generic 503 (api/routes.py)."""
    app.include_router(api_router)
    app.include_router(triage_router)
    answer_store_errors(app)


def _store_lifespan(store: AlertStore, sink: EmbeddedSink | None = None, sender: Sender | None = None) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store.migrate()
        app.state.store = store
        app.state.sender = sender
        if sink is not None:
            sink.restore()  # detector state and rule exceptions
        if sender is not None:
            sender.start()
        yield
        if sender is not None:
            await sender.stop()
        if sink is not None:
            sink.checkpoint()
        store.close()

    return lifespan


def create_serve_app(
    settings: Settings, *, pipeline: Pipeline | None = None, sinks: Sequence[SinkConfig] = ()
) -> FastAPI:
    """Embedded mode. Rules load before the server starts, so a broken file fails fast with file:line. With
    notification `sinks`, a sender task delivers what the webhook's batches queue for them."""
    if pipeline is None:
        learning_s = settings.baseline_learning_days * 86400
        options = LoadOptions(rule_matching=settings.rule_matching, baseline_learning_s=learning_s)
        detectors = load_rules(settings.rules, options)
        pipeline = Pipeline(detectors, load_tuning(settings.tuning, detectors) if settings.tuning else None)
    store = AlertStore(settings.db_url)
    exceptions = LiveExceptions(store, refresh_s=settings.exceptions_refresh_s)
    store.triage_hooks.exceptions_changed.append(exceptions.invalidate)  # created over our own API: apply at once
    sender = None
    if sinks:
        public_url = settings.public_url or base_url(settings)
        sender = Sender(
            store.engine,
            sinks,
            public_url=public_url,
            descriptions=rule_descriptions(pipeline.detectors),
            responses=rule_responses(pipeline.detectors),
        )
    metrics = Metrics.for_detection(pipeline, sender)
    sink = EmbeddedSink(
        pipeline,
        store,
        record_receipts=settings.record_receipts,
        receipts_retention_hours=settings.receipts_retention_hours,
        exceptions=exceptions,
        routes=sender.routes() if sender is not None else (),
        metrics=metrics.detection,
    )
    app = _app("auditwatch", settings, _store_lifespan(store, sink, sender), metrics, console=pipeline.detectors)
    _add_webhook(app, sink, settings, metrics)
    _add_rest(app)
    return app


def create_api_app(settings: Settings) -> FastAPI:
    """The REST API alone, over the store that `detect` writes."""
    app = _app("auditwatch api", settings, _store_lifespan(AlertStore(settings.db_url)), Metrics.for_api(), console=())
    _add_rest(app)
    return app


def kafka_sink(settings: Settings) -> KafkaSink:
    if not settings.kafka_bootstrap:
        raise ValueError("no Kafka bootstrap server: pass --kafka HOST:PORT or set AUDITWATCH_KAFKA_BOOTSTRAP")
    return KafkaSink(
        settings.kafka_bootstrap,
        topic=settings.topic,
        dead_letter_topic=settings.dead_letter_topic,
        send_timeout_s=settings.send_timeout_s,
        drop_request_received=settings.drop_request_received,
        recreate=topic_specs(settings),
    )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    return [
        TopicSpec(settings.topic, settings.partitions, settings.replication_factor),
        TopicSpec(settings.dead_letter_topic, 1, settings.replication_factor),
    ]


def create_ingest_app(settings: Settings, sink: KafkaSink | None = None, *, create_topics: bool = True) -> FastAPI:
    """Distributed mode's front door: the webhook, producing to Kafka. Its startup creates the topics unless
    `create_topics` is false (`auditwatch ingest` did, before its banner)."""
    sink = sink or kafka_sink(settings)
    bootstrap = settings.kafka_bootstrap or sink.bootstrap

    async def topics() -> None:
        try:
            await ensure_topics(bootstrap, topic_specs(settings), timeout_s=min(settings.send_timeout_s, 10))
        except TopicRefused as exc:  # the sink's start says the topic is missing
            ingest_log.warning("%s", exc)
        except Exception:  # Kafka may come later; batches get 503 until then
            pass

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        with quiet_kafka_client():  # one line says it when Kafka is not there yet (KafkaSink.start)
            if create_topics:
                await topics()
            await sink.start()
        yield
        await sink.close()

    metrics = Metrics.for_ingest()
    app = _app("auditwatch ingest", settings, lifespan, metrics)
    _add_webhook(app, sink, settings, metrics)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz(request: Request) -> Response:
        try:
            await sink.ready()
        except SinkUnavailable as exc:  # its text names the brokers: the log has it, the caller needs no access
            why = "topic missing" if isinstance(exc, TopicMissing) else "unreachable"
            return not_ready(request, f"Kafka unavailable: {why}", exc, ingest_log)
        return JSONResponse(ready(request))

    return app


def create_metrics_app(settings: Settings, metrics: Metrics) -> FastAPI:
    """detect's metrics listener: `/metrics`, with the access rules of every listener, and an open `/healthz` for
    the kubelet's probes (which carry no token). It answers from the listener's own thread, so it says that the
    process lives, not that its consumer progresses: auditwatch_kafka_consumer_lag says that."""
    app = _app("auditwatch detect", settings, None, metrics)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def protocol_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's HTTP protocol, its refusals (a malformed request, a head too large) as problems: h11 handing the
    app the client certificate's subject when access depends on it, else httptools (auditwatch/http_protocols.py)."""
    http = ClientCertProtocol if settings.write_client_cns else ProblemHttpToolsProtocol
    return {"http": http}


def ssl_options(settings: Settings) -> dict[str, Any]:
    """uvicorn TLS options: a server certificate, and client certificates verified against a CA if set."""
    if not settings.tls_cert_file:
        return {}
    options: dict[str, Any] = {"ssl_certfile": settings.tls_cert_file, "ssl_keyfile": settings.tls_key_file}
    if settings.tls_client_ca_file:
        options.update(ssl_ca_certs=settings.tls_client_ca_file, ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def base_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert_file else "http"
    host = settings.host
    if ":" in host and not host.startswith("["):  # an IPv6 literal: a URL brackets it (RFC 3986 3.2.2)
        host = f"[{host}]"
    return f"{scheme}://{host}:{settings.port}"


def run_http(app: FastAPI, settings: Settings, sock: socket.socket) -> int:
    """Serve `app` on the socket the command bound (auditwatch/preflight.py) until SIGINT or SIGTERM; the exit
    status. uvicorn logs through auditwatch's handler (auditwatch/logs.py), from WARNING, no access log."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level="warning",
        access_log=False,
        **protocol_options(settings),
        **ssl_options(settings),
    )
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except SystemExit:  # uvicorn's own exit when the app's startup failed: its log says why
        return EXIT_FAILURE
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0 if server.started else EXIT_FAILURE

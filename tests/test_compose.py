"""docker-compose.yml and Dockerfile, checked without Docker: services, ports, settings names, health,
least privilege, no committed secrets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from auditwatch.cli import build_parser
from auditwatch.settings import Settings
from tests.support.paths import ROOT

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
AUDITWATCH_SERVICES = ("ingest", "detect", "api")
HTTP_SERVICES = {"ingest": 8080, "api": 8081}
ENV_PREFIX = "AUDITWATCH_"
INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-?+][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs = compose["services"]
    assert isinstance(svcs, dict)
    return svcs


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", ...]
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def option(command: list[str], name: str) -> str:
    assert name in command, f"{name} missing from {command}"
    return command[command.index(name) + 1]


def container_port(mapping: str | int | dict[str, Any]) -> int:
    if isinstance(mapping, dict):
        return int(mapping["target"])
    return int(str(mapping).rsplit(":", 1)[-1].split("/")[0])


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def all_strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from all_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from all_strings(item)
    elif isinstance(node, str):
        yield node


def all_compose_env_names(services: dict[str, dict[str, Any]]) -> list[str]:
    return sorted({name for svc in services.values() for name in env_of(svc) if name.startswith(ENV_PREFIX)})


def test_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "postgres", "ingest", "detect", "api"} <= set(services)
    assert str(services["kafka"]["image"]).startswith("apache/kafka:4.")
    assert str(services["postgres"]["image"]) == "postgres:16"


def test_auditwatch_services_run_the_image_built_here(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name].get("image") for name in AUDITWATCH_SERVICES}
    assert len(images) == 1, images
    for name in AUDITWATCH_SERVICES:
        assert services[name].get("build") in (".", {"context": "."}), name


@pytest.mark.parametrize("name", AUDITWATCH_SERVICES)
def test_commands_are_valid_cli_invocations(services: dict[str, dict[str, Any]], name: str) -> None:
    command = services[name]["command"]
    assert isinstance(command, list) and command[0] == name
    args = build_parser().parse_args(command)  # an unknown option exits: the compose file must follow the CLI
    assert args.command == name


@pytest.mark.parametrize(("name", "port"), sorted(HTTP_SERVICES.items()))
def test_http_ports_are_consistent(services: dict[str, dict[str, Any]], name: str, port: int) -> None:
    svc = services[name]
    command = svc["command"]
    assert option(command, "--host") == "0.0.0.0"  # inside the container; exposure is decided by `ports`
    assert int(option(command, "--port")) == port
    assert [container_port(p) for p in svc["ports"]] == [port]
    assert f"127.0.0.1:{port}/healthz" in healthcheck_text(svc)


def test_published_ports_do_not_collide(services: dict[str, dict[str, Any]]) -> None:
    host_ports = [str(p).rsplit(":", 1)[0] for svc in services.values() for p in svc.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), host_ports


def test_kafka_address_is_consistent(services: dict[str, dict[str, Any]]) -> None:
    kafka_env = env_of(services["kafka"])
    advertised = kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert advertised == "PLAINTEXT://kafka:9092"
    assert "PLAINTEXT://:9092" in kafka_env["KAFKA_LISTENERS"].split(",")
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # auditwatch creates its topics
    assert option(services["ingest"]["command"], "--kafka") == "kafka:9092"
    for name in ("ingest", "detect"):
        assert env_of(services[name])["AUDITWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092", name
    for variable in ("AUDITWATCH_TOPIC", "AUDITWATCH_DEAD_LETTER_TOPIC"):  # detect creates both, ingest uses both
        topics = {env_of(services[name]).get(variable) for name in ("ingest", "detect")}
        assert len(topics) == 1, f"ingest and detect must agree on {variable}: {topics}"


def setup_database_url() -> sa.engine.URL:
    """The database URL the setup comment at the top of docker-compose.yml writes to secrets/db_url."""
    (template,) = re.findall(r"printf '(postgresql[^']*)\\n'", COMPOSE.read_text())
    return sa.engine.make_url(template.replace("%s", "PASSWORD"))


def test_database_url_is_consistent(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pg_env = env_of(services["postgres"])
    for name in ("detect", "api"):
        env = env_of(services[name])
        assert "AUDITWATCH_DB_URL" not in env, f"{name}: the URL (and its password) belongs in a secret file"
        assert env["AUDITWATCH_DB_URL_FILE"] == "/run/secrets/db_url" and "db_url" in services[name]["secrets"]
    assert set(compose["secrets"]["db_url"]) == {"file"}
    url = setup_database_url()
    assert url.drivername == "postgresql+psycopg"  # psycopg 3, as the project depends on
    assert (url.host, url.port) == ("postgres", 5432)
    assert url.username == pg_env["POSTGRES_USER"]
    assert url.database == pg_env["POSTGRES_DB"]
    assert "POSTGRES_PASSWORD" not in pg_env and pg_env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    assert services["postgres"]["secrets"] == ["db_password"] and set(compose["secrets"]["db_password"]) == {"file"}


def test_the_setup_keeps_secret_files_from_other_users(services: dict[str, dict[str, Any]]) -> None:
    """Compose mounts a file secret with its host owner and mode: readable by the container's user only."""
    setup = COMPOSE.read_text().split("\nname:", 1)[0]
    assert not re.search(r"chmod 0?6[46]4|chmod [ao]\+r", setup)
    assert "umask 077" in setup and "chmod 0640 secrets/api_token secrets/db_url" in setup
    user = str(services["ingest"]["user"])
    assert f"chgrp {user.split(':')[1]} secrets/api_token secrets/db_url" in setup
    dockerfile_user = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("USER ")][-1]
    assert dockerfile_user.split()[1] == user


def test_ingest_bodies_are_bounded(services: dict[str, dict[str, Any]]) -> None:
    command = services["ingest"]["command"]
    body, budget = int(option(command, "--max-body-bytes")), int(option(command, "--body-budget-bytes"))
    assert body <= 32 * 1024 * 1024 and body <= budget <= 2 * body


def test_compose_uses_auditwatch_env_vars() -> None:
    # guards the parametrized test below against silently checking nothing
    assert len(all_compose_env_names(yaml.safe_load(COMPOSE.read_text())["services"])) >= 3


@pytest.mark.parametrize("env_name", all_compose_env_names(yaml.safe_load(COMPOSE.read_text())["services"]))
def test_env_names_are_settings(env_name: str) -> None:
    field = env_name.removeprefix(ENV_PREFIX).lower()
    assert field in Settings.model_fields, f"{env_name} is no setting of auditwatch.settings.Settings"
    assert Settings.model_config.get("env_prefix") == ENV_PREFIX


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), name
        assert check.get("interval") and check.get("retries"), name
    assert "pg_isready" in healthcheck_text(services["postgres"])


def test_services_wait_for_healthy_dependencies(services: dict[str, dict[str, Any]]) -> None:
    needs = {"ingest": {"kafka"}, "detect": {"kafka", "postgres"}, "api": {"postgres"}}
    for name, deps in needs.items():
        depends_on = services[name]["depends_on"]
        assert set(depends_on) == deps, name
        for dep in deps:
            assert depends_on[dep]["condition"] == "service_healthy", (name, dep)


def test_kafka_and_postgres_run_without_capabilities(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "postgres"):
        assert services[name]["cap_drop"] == ["ALL"] and not services[name].get("cap_add"), name
        assert "no-new-privileges:true" in services[name]["security_opt"], name


def test_no_service_runs_as_root(services: dict[str, dict[str, Any]]) -> None:
    """Each service names its user (an image's default is not seen from this file), and none is root, by name or
    uid, whatever its group."""
    for name, svc in services.items():
        user = str(svc.get("user", "")).split(":")[0].strip()
        assert user not in ("", "0", "root"), f"{name}: user {user!r}: name a non-root user"
        assert not svc.get("privileged"), name
    assert services["kafka"]["user"] == "appuser"  # the apache/kafka image's USER
    assert services["postgres"]["user"] == "postgres"  # the image's own user, uid 999, who owns its data directory


def test_postgres_needs_no_root_to_start(compose: dict[str, Any], services: dict[str, dict[str, Any]]) -> None:
    """As postgres from the start, its entrypoint cannot chown: the data directory must be a named volume (made
    from the image's directory, owned by postgres), and nothing root-owned is mounted for it to run or read."""
    pg = services["postgres"]
    pgdata = env_of(pg).get("PGDATA", "/var/lib/postgresql/data")
    sources = {str(v).split(":")[1]: str(v).split(":")[0] for v in pg["volumes"]}
    assert sources[pgdata] in compose["volumes"], "the data directory must be a named volume"
    assert all(source in compose["volumes"] for source in sources.values()), sources  # no bind mount
    assert not any("docker-entrypoint-initdb.d" in target for target in sources), "no init scripts"
    setup = COMPOSE.read_text().split("\nname:", 1)[0]
    assert "sudo chown 999 secrets/db_password" in setup  # its password file, readable by postgres (uid 999) only


@pytest.mark.parametrize("name", AUDITWATCH_SERVICES)
def test_least_privilege(services: dict[str, dict[str, Any]], name: str) -> None:
    svc = services[name]
    assert svc.get("read_only") is True
    assert svc.get("cap_drop") == ["ALL"]
    assert not svc.get("cap_add")
    assert "no-new-privileges:true" in svc.get("security_opt", [])
    assert not svc.get("privileged")
    assert str(svc.get("user", "")).split(":")[0] not in ("", "0", "root")
    assert svc.get("network_mode") != "host" and svc.get("pid") != "host"


@pytest.mark.parametrize("name", sorted(HTTP_SERVICES))
def test_listeners_require_the_token_from_a_secret(compose: dict[str, Any], name: str) -> None:
    svc = compose["services"][name]
    token_file = option(svc["command"], "--token-file")
    secret = token_file.removeprefix("/run/secrets/")
    assert token_file.startswith("/run/secrets/") and secret in svc.get("secrets", [])
    assert set(compose["secrets"][secret]) <= {"file", "environment"}  # never inline content
    assert "--insecure" not in svc["command"]


SECRETISH_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|CREDENTIAL|PRIVATE_KEY|API_KEY", re.IGNORECASE)
URL_WITH_PASSWORD = re.compile(r"://[^/:@\s]+:([^@\s]+)@")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.")
LONG_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}")


def looks_like_token(text: str) -> bool:
    """A JWT, or a long run mixing digits with letters (hex, base64): what a generated secret looks like."""
    if JWT.search(text):
        return True
    return any(
        re.search(r"\d", run) and re.search(r"[a-zA-Z]", run) and len(set(run)) >= 12 for run in LONG_RUN.findall(text)
    )


def test_no_plaintext_secrets(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for key, value in env_of(svc).items():
            if SECRETISH_NAME.search(key) and not key.endswith("_FILE"):
                assert INTERPOLATION.fullmatch(value), f"{name}: {key} must come from .env or a secret file"
    for text in all_strings(compose):
        for password in URL_WITH_PASSWORD.findall(text):
            assert INTERPOLATION.fullmatch(password), f"plaintext password in {text!r}"
        assert not looks_like_token(INTERPOLATION.sub("", text)), f"looks like a committed secret: {text!r}"


def test_dockerfile_builds_a_non_root_image() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    assert any("pip install ." in line for line in lines)
    users = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    entrypoints = [line for line in lines if line.startswith("ENTRYPOINT")]
    assert entrypoints == ['ENTRYPOINT ["auditwatch"]']

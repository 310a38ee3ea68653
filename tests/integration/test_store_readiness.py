"""`/readyz` of a real `api` process says whether the store is usable by this version, not only that it answers:
a table dropped, the version table set back or ahead or gone, each give a 503 naming the fault and the remedy
(never the database's address, name, user or password), at the next probe; put back, it is ready again. On a
SQLite file and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.readiness import revisions
from tests.support.problems import problem_detail
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration
PASSWORD = "readyz-canary-pw-5e1d"
RESTART = "restart auditwatch serve, api or detect: each migrates the schema when it starts"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'readyz-store.db'}"
    given = sa.make_url(request.getfixturevalue("pg_url"))
    return given.set(password=PASSWORD).render_as_string(hide_password=False)  # the server trusts loopback


@pytest.fixture
def api(url: str, tmp_path: Path) -> Iterator[str]:
    """A real `api` over `url` (it migrates the schema when it starts): its /readyz URL."""
    port = free_port()
    proc = Proc(["api", "--port", str(port), "--db", url], tmp_path / "api.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}/readyz"
    finally:
        proc.stop()


def not_ready(readyz: str, url: str) -> str:
    resp = httpx.get(readyz, timeout=10)
    detail = problem_detail(resp, 503)
    given = sa.make_url(url)
    secrets = [PASSWORD, str(given.database), "127.0.0.1:5432", "readyz-store.db"]
    assert not any(secret in resp.text for secret in secrets), resp.text
    return detail


def run(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_a_migrated_store_is_ready(api: str) -> None:
    assert httpx.get(api, timeout=10).json()["status"] == "ok"


def test_a_dropped_table_is_named_at_the_next_probe(api: str, url: str) -> None:
    head, _ = revisions()
    run(url, "DROP TABLE triage_notes")
    detail = not_ready(api, url)
    assert detail == (
        f"alert store schema at revision {head} lacks the table(s) triage_notes: restore the database from a backup "
        "(restarting does not recreate them)"
    )


def test_a_schema_set_back_says_which_revision_it_needs_and_how_to_migrate(api: str, url: str) -> None:
    head, _ = revisions()
    run(url, "UPDATE alembic_version SET version_num = '0007'")
    assert not_ready(api, url) == f"alert store schema at revision 0007, this version needs {head}: {RESTART}"
    run(url, f"UPDATE alembic_version SET version_num = '{head}'")  # put back: ready again, nothing kept
    assert httpx.get(api, timeout=10).json()["status"] == "ok"


def test_a_schema_of_a_newer_version_says_so(api: str, url: str) -> None:
    head, _ = revisions()
    run(url, "UPDATE alembic_version SET version_num = '9999'")
    assert not_ready(api, url) == (
        f"alert store schema at revision '9999', unknown to this version, which needs {head}: a newer auditwatch "
        "migrated it; run that version, or restore the database from a backup taken before"
    )


def test_a_version_table_gone_or_emptied_is_a_damaged_schema(api: str, url: str) -> None:
    run(url, "DELETE FROM alembic_version")
    assert not_ready(api, url) == (
        "alert store schema damaged: its table alembic_version holds 0 revisions, not 1: restore the database from "
        "a backup"
    )
    run(url, "DROP TABLE alembic_version")
    assert not_ready(api, url) == (
        "alert store schema damaged: its table alembic_version is missing: restore the database from a backup"
    )

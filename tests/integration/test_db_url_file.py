"""--db-url-file / AUDITWATCH_DB_URL_FILE: the alert store's URL read from a file (a mounted Secret, a compose
secret), so that its password is in neither the command line nor the environment; refused when unreadable,
empty or given with --db, without ever showing the file's content. `api` runs as a real process here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.cli import RunCli
from tests.support.processes import Proc, free_port

pytestmark = pytest.mark.integration

USAGE = 2


def test_api_opens_the_store_named_in_the_file(tmp_path: Path) -> None:
    db = tmp_path / "from-file.db"
    url_file = tmp_path / "db-url"
    url_file.write_text(f"sqlite:///{db}\n")
    port = free_port()
    api = Proc(["api", "--port", str(port)], tmp_path / "api.log", {"AUDITWATCH_DB_URL_FILE": str(url_file)})
    try:
        api.wait_http(f"http://127.0.0.1:{port}/readyz")
    finally:
        api.stop()
    with sqlite3.connect(db) as conn:  # migrated by api: the URL came from the file
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
    assert not (tmp_path / "auditwatch.db").exists()


@pytest.mark.parametrize(
    "command", [("serve", "--port", "1"), ("detect", "--kafka", "127.0.0.1:1"), ("api", "--port", "1")]
)
def test_a_bad_url_file_is_refused_without_showing_it(
    tmp_path: Path, run_cli: RunCli, command: tuple[str, ...]
) -> None:
    secret = "postgresql+psycopg://auditwatch:s3cr3t-pw@db:5432/auditwatch"
    url_file = tmp_path / "db-url"
    url_file.write_text(secret)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    cases = {
        ("--db-url-file", str(tmp_path / "nope")): f"cannot read database URL file {tmp_path / 'nope'}: No such file",
        ("--db-url-file", str(empty)): f"database URL file {empty} is empty",
        ("--db-url-file", str(url_file), "--db", "sqlite:///x.db"): "--db (AUDITWATCH_DB_URL) and --db-url-file",
    }
    for args, reason in cases.items():
        out = run_cli(*command, *args)
        assert out.code == USAGE and reason in out.err and "s3cr3t" not in out.err + out.out, out.err

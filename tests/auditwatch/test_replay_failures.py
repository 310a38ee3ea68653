"""`auditwatch replay` with an event a detector fails on (quarantined, the replay goes on) and with a store that
fails under it (a one-line error, a non-zero exit, what was written before stays)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from sqlalchemy import text

from api.store import AlertStore
from tests.support.cli import CliRun
from tests.support.events import scenario_events
from tests.support.poison import AppLabelRule, poisoned_deployment


def write_lines(path: Path, events: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def test_an_event_a_detector_fails_on_is_quarantined_and_the_replay_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: Callable[..., CliRun]
) -> None:
    from detectors.rules import native

    monkeypatch.setitem(native.RULE_TYPES, "app-label", AppLabelRule.from_node)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "watched-app.yaml").write_text("id: watched-app\ntype: app-label\napps: [web]\n")
    events = scenario_events()
    log = write_lines(tmp_path / "audit.log", [*events[:30], poisoned_deployment(), *events[30:]])
    db = f"sqlite:///{tmp_path / 'alerts.db'}"
    run = run_cli("replay", str(log), "--db", db, "--rules", "builtin", "--rules", str(rules))
    assert run.code == 0, run.err
    assert f"{log}:31: detector watched-app raised TypeError: unhashable type: 'list'" in run.err
    assert "rejected: 1 (the first 100 per 50,000 events kept in the quarantine table)" in run.err
    store = AlertStore(db)
    try:
        (quarantined,) = store.quarantined()
        assert quarantined["origin"] == f"{log}:31" and "watched-app" in quarantined["reason"]
        assert store.count_alerts() == 6 + 1 + 2  # the scenario's, the user rule's, the poison's built-in ones
    finally:
        store.close()


def test_a_store_failing_mid_replay_ends_it_with_one_line_and_a_non_zero_exit(
    tmp_path: Path, run_cli: Callable[..., CliRun]
) -> None:
    db = f"sqlite:///{tmp_path / 'alerts.db'}"
    store = AlertStore(db)
    store.migrate()
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE alerts RENAME TO alerts_away"))  # a migration gone wrong
    store.close()
    log = write_lines(tmp_path / "audit.log", scenario_events())
    run = run_cli("replay", str(log), "--db", db)
    assert run.code == 1
    assert "Traceback" not in run.err
    (line,) = [x for x in run.err.splitlines() if x.strip()]
    assert line.startswith(f"auditwatch: replay stopped at {len(scenario_events())} events read: database error: ")
    assert "alerts" in line

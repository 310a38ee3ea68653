"""`--notify KIND=URL[,option=value...]`: every kind parses; every bad part is a one-line error that names it
and never shows a secret; filters pick the alerts a sink takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from auditwatch.notify.config import SinkSpecError, parse_sink, parse_sinks
from detectors.alerts import Severity
from tests.support.alerts import alerts
from tests.support.cli import RunCli

SLACK = "https://hooks.slack.com/services/T0000/B0000/XXXXsecretXXXX"


def test_each_kind_with_its_defaults() -> None:
    am = parse_sink("alertmanager=http://127.0.0.1:9093")
    assert (am.kind, am.name, am.url, am.resend_s, am.timeout_s) == (
        "alertmanager",
        "alertmanager:http://127.0.0.1:9093",
        "http://127.0.0.1:9093",
        60.0,
        10.0,
    )
    assert (am.min_severity, am.rate, am.max_pending, am.max_age_s, am.backoff_s, am.backoff_max_s) == (
        Severity.INFO,
        None,
        10_000,
        86_400.0,
        5.0,
        3600.0,
    )
    assert parse_sink("falcosidekick=http://falcosidekick:2801").name == "falcosidekick:http://falcosidekick:2801"
    assert parse_sink("webhook=https://[::1]:8443/hook?x=1").name == "webhook:https://[::1]:8443"
    assert parse_sink("webhook=http://Compose_Hook.example:80/x").name == "webhook:http://compose_hook.example:80"


def test_options_are_parsed(tmp_path: Path) -> None:
    secret = tmp_path / "hmac"
    secret.write_text("s3cr3t-key\n")
    sink = parse_sink(
        f"webhook=http://127.0.0.1:8000/hook,name=soc,min_severity=high,rules=pod-exec-*,rules=cluster-admin-binding,"
        f"exclude_rules=*-test,rate=20/min,timeout=2.5s,backoff=500ms,backoff_max=10m,max_age=2h,max_pending=50,"
        f"secret_file={secret}"
    )
    assert sink.name == "soc" and sink.min_severity is Severity.HIGH
    assert sink.rules == ("pod-exec-*", "cluster-admin-binding") and sink.exclude_rules == ("*-test",)
    assert sink.rate is not None and (sink.rate.count, sink.rate.per_s) == (20, 60.0)
    assert (sink.timeout_s, sink.backoff_s, sink.backoff_max_s, sink.max_age_s, sink.max_pending) == (
        2.5,
        0.5,
        600.0,
        7200.0,
        50,
    )
    assert sink.secret == b"s3cr3t-key"  # the trailing newline of the file is not part of it
    assert "s3cr3t" not in repr(sink) and "/hook" not in repr(sink)
    assert parse_sink("alertmanager=http://am:9093,resend=30s").resend_s == 30.0


def test_a_slack_url_is_a_secret_its_name_shows_only_the_host() -> None:
    sink = parse_sink(f"slack={SLACK}")
    assert sink.name == "slack:https://hooks.slack.com"
    assert "XXXXsecretXXXX" not in repr(sink)
    assert any("XXXXsecretXXXX" in s for s in sink.secrets())
    credentials = parse_sink("alertmanager=https://admin:hunter2@am.example:9443/prefix")
    assert credentials.name == "alertmanager:https://am.example:9443"


def test_mattermost_is_a_kind_of_its_own_its_url_a_secret() -> None:
    sink = parse_sink("mattermost=https://chat.example/hooks/xxxxsecretxxxx,min_severity=high,rate=20/min")
    assert (sink.kind, sink.name, sink.min_severity) == ("mattermost", "mattermost:https://chat.example", Severity.HIGH)
    assert "xxxxsecretxxxx" not in repr(sink) and any("xxxxsecretxxxx" in s for s in sink.secrets())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("pagerduty=http://x", "unknown kind 'pagerduty'"),
        (SLACK, "no KIND="),
        ("webhook", "webhook: no URL"),
        ("webhook=", "webhook: no URL"),
        ("webhook=ftp://host/x", "the URL must be http:// or https://"),
        ("webhook=http://", "the URL must be http:// or https://"),
        ("webhook=http://host:99999", "the URL must be http:// or https://"),
        ("webhook=http://host;alertmanager=http://am:9093", "the URL's host holds a ';': give each sink its own"),
        ("webhook=http://host:1;alertmanager=http://am:9093", "the URL's host holds a ';'"),
        ("alertmanager=http://alert manager:9093", "the URL's host is not a host name"),
        ("webhook=http://ho%00st/x", "the URL's host is not a host name"),
        ("webhook=http://-host/x", "the URL's host is not a host name"),
        ("webhook=http://host,timout=5s", "unknown option 'timout' for webhook"),
        ("webhook=http://host,resend=5s", "unknown option 'resend' for webhook"),
        ("alertmanager=http://host,rate=10/min", "unknown option 'rate' for alertmanager"),
        ("slack=http://host,secret=x", "unknown option 'secret' for slack"),
        ("webhook=http://host,timeout", "option 1 has no '='"),
        ("webhook=http://host,timeout=", "option 'timeout' needs a value"),
        ("webhook=http://host,timeout=5s,timeout=6s", "option 'timeout' given twice"),
        ("webhook=http://host,timeout=soon", "timeout='soon': want a duration"),
        ("webhook=http://host,timeout=0s", "timeout='0s': want a duration"),
        ("webhook=http://host,backoff=10m,backoff_max=1m", "backoff_max='1m': want a duration"),
        ("webhook=http://host,rate=10", "rate='10': want N/s, N/min or N/h"),
        ("webhook=http://host,rate=0/min", "rate='0/min'"),
        ("webhook=http://host,min_severity=urgent", "min_severity: severity 'urgent' is not one of"),
        ("webhook=http://host,max_pending=-1", "max_pending='-1'"),
        ("webhook=http://host,name=has space", "name='has space'"),
        ("webhook=http://host,secret=a,secret_file=/x", "give secret= or secret_file=, not both"),
        ("webhook=http://host,secret_file=/nonexistent/hmac", "cannot read secret_file /nonexistent/hmac"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_bad_part(spec: str, message: str) -> None:
    with pytest.raises(SinkSpecError) as caught:
        parse_sinks([spec])
    text = str(caught.value)
    assert text.startswith("--notify #1: ") and message in text, text
    assert "\n" not in text


def test_errors_never_show_a_secret() -> None:
    for spec in [SLACK, f"slack={SLACK},bogus=1", "webhook=http://h,secret=abc,def", "webhook=http://h,secret=a,b=c"]:
        with pytest.raises(SinkSpecError) as caught:
            parse_sinks([spec])
        text = str(caught.value)
        assert "XXXXsecretXXXX" not in text and "def" not in text.split("(")[0] and "'b'" not in text, text


def test_names_must_be_unique() -> None:
    with pytest.raises(SinkSpecError, match="two sinks are named 'webhook:http://h:1': give one a name= option"):
        parse_sinks(["webhook=http://h:1/a", "webhook=http://h:1/b"])
    assert [s.name for s in parse_sinks(["webhook=http://h:1/a", "webhook=http://h:1/b,name=b"])] == [
        "webhook:http://h:1",
        "b",
    ]


def test_filters_by_severity_and_rule_globs_on_id_or_name() -> None:
    sample = alerts(12)  # rule ids pod-exec-attach / other-rule, rule name "Exec", MEDIUM or HIGH
    high = parse_sink("webhook=http://h,min_severity=high")
    assert {a.severity for a in sample if high.accepts(a)} == {Severity.HIGH}
    by_id = parse_sink("webhook=http://h,rules=pod-exec-*")
    assert {a.rule_id for a in sample if by_id.accepts(a)} == {"pod-exec-attach"}
    by_name = parse_sink("webhook=http://h,rules=Ex?c")
    assert all(by_name.accepts(a) for a in sample)
    excluded = parse_sink("webhook=http://h,exclude_rules=other-*")
    assert {a.rule_id for a in sample if excluded.accepts(a)} == {"pod-exec-attach"}
    assert parse_sink("webhook=http://h,rules=[a-z]*-rule").accepts(sample[0])


def test_cli_refuses_a_bad_sink_with_one_line_and_exit_2(run_cli: RunCli, tmp_path: Path) -> None:
    run = run_cli("serve", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--notify", "webhook=http://h,timout=1s")
    assert run.code == 2
    assert run.err.strip().splitlines() == [
        "auditwatch: --notify #1: unknown option 'timout' for webhook (options: name, min_severity, rules, "
        "exclude_rules, timeout, backoff, backoff_max, max_age, max_pending, rate, secret, secret_file)"
    ]
    two_in_one = "alertmanager=http://127.0.0.1:9093;webhook=http://127.0.0.1:1"  # ';' joins them only in the env
    run = run_cli("serve", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--notify", two_in_one)
    assert run.code == 2 and run.err.count("\n") == 1 and "give each sink its own --notify" in run.err
    run = run_cli("detect", "--kafka", "127.0.0.1:1", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--notify", SLACK)
    assert run.code == 2 and run.err.count("\n") == 1 and "XXXXsecretXXXX" not in run.err


def test_several_sinks_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from auditwatch.startup import build_settings, notify_sinks

    monkeypatch.setenv("AUDITWATCH_NOTIFY", "alertmanager=http://am:9093;\nwebhook=http://h:1,min_severity=high\n")
    monkeypatch.setenv("AUDITWATCH_PUBLIC_URL", "https://auditwatch.example/")
    settings = build_settings()
    assert [s.name for s in notify_sinks(settings)] == ["alertmanager:http://am:9093", "webhook:http://h:1"]
    assert settings.public_url == "https://auditwatch.example"
    monkeypatch.setenv("AUDITWATCH_PUBLIC_URL", "auditwatch.example")
    with pytest.raises(SystemExit) as refused:
        build_settings()
    assert refused.value.code == 2  # a usage error, in one line
    assert "public_url: Value error, must be an http:// or https:// URL" in capsys.readouterr().err

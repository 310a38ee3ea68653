"""Rule patterns run in linear time (RE2): globs read as fnmatch reads them, backtracking patterns are refused
at load with file:line, and a catastrophic-backtracking pattern cannot stall the pipeline or the webhook."""

from __future__ import annotations

import fnmatch
import random
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from auditwatch.server import create_serve_app
from auditwatch.settings import Settings
from detectors.errors import RuleErrors
from detectors.events import AuditEvent
from detectors.patterns import Anchor, PatternError, glob, glob_to_regex, matcher
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.client import TestClient
from tests.support.events import lease_event

# ---- the engine ------------------------------------------------------------------------------------------


def test_glob_reads_like_fnmatch() -> None:
    """Random globs over the characters that mean something in a glob, against fnmatch (Python 3.11)."""
    rnd = random.Random(7)
    alphabet = "ab-![]^\\*?&~|:zA\n"
    for _ in range(3000):
        pattern = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 8)))
        for ignore_case in (False, True):
            ours = glob([pattern], ignore_case=ignore_case)
            python = re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0)
            for _ in range(6):
                text = "".join(rnd.choice(alphabet + "B") if c in "*?[]!" else c for c in pattern if rnd.random() < 0.9)
                assert ours(text) == (python.match(text) is not None), (pattern, text, glob_to_regex(pattern))


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("system:node:*", ["system:node:a", "system:node:"], ["system:nodes", "xsystem:node:a"]),
        ("?x", ["ax", "\nx"], ["x", "abx"]),
        ("[!a-c]*", ["d", "z-"], ["a", "c1", ""]),
        ("[]a]", ["]", "a"], ["b"]),
        ("[z-a]x", [], ["zx", "ax", "x"]),  # a reversed range matches nothing, as in fnmatch
        ("a[", ["a["], ["a"]),
        ("*.example.com", ["x.example.com", "a.b.example.com"], ["example.com", "x.example.co"]),
    ],
)
def test_glob_examples(pattern: str, matches: list[str], misses: list[str]) -> None:
    test = glob([pattern])
    assert [m for m in matches if not test(m)] == []
    assert [m for m in misses if test(m)] == []


@pytest.mark.parametrize(
    ("pattern", "anchor", "flags", "texts"),
    [
        ("b.", Anchor.SEARCH, 0, ["abc", "ab", "AB", "ab\n", "b\nc"]),
        ("b.", Anchor.START, 0, ["abc", "bc", "b\n"]),
        ("b.", Anchor.WHOLE, 0, ["bc", "bcd", "b\n"]),
        ("b.", Anchor.SEARCH, re.IGNORECASE | re.DOTALL, ["AB", "aB\n", "Bé"]),
        ("^x$", Anchor.SEARCH, re.MULTILINE, ["a\nx\nb", "xx\nx", "ax"]),
        ("[?&]dryRun=All(&|$)", Anchor.SEARCH, 0, ["/api?dryRun=All", "/api?a=1&dryRun=All&b=2", "/api?dryRun=Allx"]),
    ],
)
def test_anchors_and_flags_mean_what_python_means(pattern: str, anchor: Anchor, flags: int, texts: list[str]) -> None:
    ours = matcher(
        [pattern],
        anchor=anchor,
        ignore_case=bool(flags & re.IGNORECASE),
        dot_all=bool(flags & re.DOTALL),
        multi_line=bool(flags & re.MULTILINE),
    )
    python = re.compile(pattern, flags)
    find = {Anchor.SEARCH: python.search, Anchor.START: python.match, Anchor.WHOLE: python.fullmatch}[anchor]
    assert [ours(t) for t in texts] == [find(t) is not None for t in texts]


def test_text_that_is_not_valid_utf8_still_matches() -> None:
    assert matcher(["^a.b$"], dot_all=True)("a\udcffb")  # a lone surrogate, as json.loads can produce


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [
        ("(?=a)b", "lookahead"),
        ("^(?!registry\\.example\\.com/)", "negative lookahead"),
        ("(?<=a)b", "lookbehind"),
        ("(?<!a)b", "negative lookbehind"),
        ("(a)\\1", "a backreference"),
        ("(?P<x>a)(?P=x)", "a backreference"),
        ("(?>a+)b", "an atomic group"),
        ("a*+b", "a possessive quantifier"),
        ("(a)?(?(1)b|c)", "a conditional group"),
    ],
)
def test_backtracking_patterns_are_refused_saying_why(pattern: str, feature: str) -> None:
    with pytest.raises(PatternError) as info:
        matcher([pattern])
    assert str(info.value) == (
        f"regex {pattern!r} needs backtracking ({feature}), which is not allowed: patterns must run in linear time"
    )


def test_bad_and_huge_patterns_are_refused() -> None:
    with pytest.raises(PatternError, match=r"bad regex '\(': missing \)"):
        matcher(["("])
    with pytest.raises(PatternError, match="too large"):
        matcher(["(" + "|".join(f"word{i}[a-z]{{20}}" for i in range(300)) + ")"])


# ---- the guarantee, through the loader and the pipeline --------------------------------------------------

CATASTROPHIC = "^(a+)+$"  # Python's re needs ~2^n steps to fail on "aaa...a!"
ADVERSARIAL_URI = "a" * 10_000 + "!"
MATCHING_URI = "a" * 10_000

NATIVE = f"""\
id: user-redos
name: A user rule with a catastrophic regex
severity: low
description: Written by a tester.
mitre: T1609
match:
  requestURI: {{regex: '{CATASTROPHIC}'}}
"""
FALCO = f"""\
- rule: User ReDoS regex
  desc: a tester's rule
  condition: ka.uri regex "{CATASTROPHIC}"
  output: matched %ka.uri
  priority: WARNING
  source: k8s_audit
- rule: User ReDoS glob
  desc: a tester's rule
  condition: ka.uri glob "*a*a*a*a*a*a*a*a*b"
  output: matched %ka.uri
  priority: WARNING
  source: k8s_audit
"""
SIGMA = f"""\
title: User ReDoS
id: 6f2b1d0e-0000-4000-8000-0000000000aa
logsource:
  product: kubernetes
  service: audit
detection:
  regex:
    requestURI|re: '{CATASTROPHIC}'
  wildcards:
    requestURI: '*a*a*a*a*a*a*a*a*b'
  condition: regex or wildcards
"""


def user_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "user-redos.yaml").write_text(NATIVE)
    (rules / "falco.yaml").write_text(FALCO)
    (rules / "sigma.yml").write_text(SIGMA)
    return rules


def uri_event(uri: str, n: int) -> dict[str, Any]:
    event = lease_event()
    event["auditID"] = f"7e1c2a3b-0000-4000-8000-{n:012d}"
    event["requestURI"] = uri
    return event


def test_a_catastrophic_pattern_matches_in_linear_time_in_every_format(tmp_path: Path) -> None:
    pipeline = Pipeline(load_rules([str(user_rules(tmp_path))]))
    events = [AuditEvent(raw=uri_event(ADVERSARIAL_URI, n), origin="test") for n in range(20)]
    started = time.perf_counter()
    alerts = [a for e in events for a in pipeline.process(e)]
    per_event = (time.perf_counter() - started) / len(events)
    assert alerts == []
    assert per_event < 0.05, f"{per_event * 1000:.1f} ms per event"
    hits = pipeline.process(AuditEvent(raw=uri_event(MATCHING_URI, 99), origin="test"))
    assert sorted(a.rule_id for a in hits) == [
        "falco:user-redos-regex",
        "sigma:6f2b1d0e-0000-4000-8000-0000000000aa",
        "user-redos",
    ]


def test_the_webhook_answers_a_batch_of_adversarial_uris_quickly(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'alerts.db'}", rules=[str(user_rules(tmp_path))])
    items = [uri_event(ADVERSARIAL_URI, n) for n in range(50)] + [uri_event(MATCHING_URI, 50)]
    body = orjson.dumps({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items})
    with TestClient(create_serve_app(settings)) as client:
        started = time.perf_counter()
        resp = client.post("/audit/webhook", content=body, headers={"Content-Type": "application/json"})
        elapsed = time.perf_counter() - started
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"accepted": 51, "rejected": 0, "alerts": 3, "new_alerts": 3}
        assert elapsed < 5, f"{elapsed:.2f} s"
        served = client.get("/api/v1/alerts").json()["items"]
    assert {a["audit_id"] for a in served} == {items[-1]["auditID"]}


@pytest.mark.parametrize(
    ("name", "text", "line", "feature"),
    [
        ("native.yaml", NATIVE.replace(CATASTROPHIC, "(a)\\1"), 7, "a backreference"),
        ("native.yaml", NATIVE.replace(CATASTROPHIC, "^(?!/healthz)"), 7, "negative lookahead"),
        ("falco.yaml", FALCO.replace(CATASTROPHIC, "(?=/api).*"), 3, "lookahead"),
        ("sigma.yml", SIGMA.replace(CATASTROPHIC, "(?<=/api)/v1"), 8, "lookbehind"),
    ],
)
def test_backtracking_patterns_are_refused_at_load_with_file_and_line(
    tmp_path: Path, name: str, text: str, line: int, feature: str
) -> None:
    path = tmp_path / name
    path.write_text(text.replace("id: user-redos", "id: native"))
    with pytest.raises(RuleErrors) as info:
        load_rules([str(path)])
    (error,) = (str(e) for e in info.value.errors)
    assert error.startswith(f"{path}:{line}: "), error
    assert f"needs backtracking ({feature}), which is not allowed: patterns must run in linear time" in error

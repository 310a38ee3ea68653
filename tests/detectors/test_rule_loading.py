"""Rule files: strict loading with file:line errors, condition semantics, allowlists, messages."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.base import Described, SelfTested, Sourced, Stateful, Transactional, Warns
from detectors.errors import RuleError, RuleErrors
from detectors.events import AuditEvent
from detectors.falco import FalcoRuleset
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from detectors.rules.allowlist import ALLOWLIST_KEYS, Allowlist
from detectors.rules.baseline import Baselined
from detectors.rules.match import MatchRule
from detectors.rules.stateful import StatefulRule
from detectors.sigma import SigmaDetector
from tests.support.events import exec_event, find_event

HEADER = """\
id: {id}
name: Test rule
severity: high
description: A rule written by a test.
mitre: T1609
"""


def write_rule(tmp_path: Path, body: str, rule_id: str = "test-rule") -> Path:
    path = tmp_path / f"{rule_id}.yaml"
    path.write_text(HEADER.format(id=rule_id) + textwrap.dedent(body))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(RuleErrors) as info:
        load_rules([str(path)])
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("match:\n  verb: get\nverb: x\n", 8, "unknown key 'verb'"),
        ("match:\n  verb: get\n  verb: list\n", 8, "duplicate key 'verb'"),
        ("match:\n  objectRef..resource: pods\n", 7, "bad field path"),
        ("match:\n  verb: {startswth: g}\n", 7, "unknown operator 'startswth'"),
        ("match:\n  verb: {regex: '('}\n", 7, "bad regex"),
        ("match:\n  $nothing.x: 1\n", 7, "unknown virtual field $nothing"),
        ("match:\n  verb: [get\n", 8, "YAML syntax error"),
        ("stages: [Done]\nmatch:\n  verb: get\n", 6, "stages must be"),
        ("match:\n  any: []\n", 7, "'any' takes a non-empty list"),
        ("match:\n  verb: get\nmessage: '{user..name}'\n", 8, "message placeholder"),
        ("match:\n  verb: get\nmessage: '{user.username opened {objectRef.name}'\n", 8, "unmatched '{' at character 1"),
        ("match:\n  verb: get\nmessage: 'by {user.username}}'\n", 8, "unmatched '}' at character 19"),
        ("match:\n  verb: get\nmessage: 'by {}'\n", 8, "unmatched '{' at character 4"),
        ("match:\n  verb: get\ntests:\n  - name: t\n    expect: maybe\n    event: {}\n", 9, "expect must be"),
        ("response: ' '\nmatch:\n  verb: get\n", 6, "response must be a non-empty string"),
        ("response: [a]\nmatch:\n  verb: get\n", 6, "response must be a non-empty string"),
        ("match:\n  requestObject.rules: {some: {verb: {nope: 1}}}\n", 7, "unknown operator 'nope'"),
    ],
)
def test_errors_carry_file_and_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write_rule(tmp_path, body)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:{line}: "), error
    assert message in error


def test_header_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("id: bad\nname: x\nseverity: urgent\ndescription: d\nmitre: T1609\nmatch: {verb: get}\n")
    assert errors_of(path) == [f"{path}:3: severity 'urgent' is not one of info, low, medium, high, critical"]
    path.write_text("id: bad\nname: x\nseverity: low\ndescription: d\nmitre: X1\nmatch: {verb: get}\n")
    assert "is not an ATT&CK technique id" in errors_of(path)[0]
    path.write_text("id: other\nname: x\nseverity: low\ndescription: d\nmitre: T1609\nmatch: {verb: get}\n")
    assert errors_of(path) == [f"{path}:1: file name must be the rule id: other.yaml"]


def test_all_errors_of_a_directory_are_collected(tmp_path: Path) -> None:
    write_rule(tmp_path, "match:\n  verb: {nope: 1}\n", "rule-a")
    write_rule(tmp_path, "severity2: x\nmatch:\n  verb: get\n", "rule-b")
    (tmp_path / "rule-c.yaml").write_text("just a sentence\n")
    with pytest.raises(RuleErrors) as info:
        load_rules([str(tmp_path)])
    assert len(info.value.errors) == 3
    assert f"{tmp_path / 'rule-c.yaml'}:1: not a rule file of a known format" in str(info.value)


def test_every_independent_error_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    """Header keys, `match:`, `baseline:`, the file name, and each rule of a multi-rule file are checked apart."""
    one = tmp_path / "one.yaml"
    one.write_text(
        "id: other\nname: x\nseverity: urgent\ndescription: d\nmitre: X1\ncolour: red\nshade: dark\n"
        "match: {verb: {nope: 1}}\nmessage: '{x'\nbaseline: {kind: exec}\n"
    )
    assert_errors(one, [
        (1, "file name must be the rule id: other.yaml"),
        (3, "severity 'urgent' is not one of info, low, medium, high, critical"),
        (5, "mitre 'X1' is not an ATT&CK technique id"),
        (6, "unknown key 'colour'"),
        (7, "unknown key 'shade'"),
        (8, "unknown operator 'nope'"),
        (9, "message has an unmatched '{' at character 1"),
        (10, "baseline.term must be a field path"),
    ])  # fmt: skip
    several = tmp_path / "several.yaml"
    several.write_text(
        "rules:\n  - {id: a, name: A, severity: low, description: d, mitre: T1609, match: {verb: get}, nope: 1}\n"
        "  - {id: b, name: B, severity: low, description: d, mitre: T1609}\n"
    )
    assert_errors(several, [(2, "unknown key 'nope'"), (3, "missing required key 'match'")])


def test_every_branch_and_operator_of_a_condition_is_checked_apart(tmp_path: Path) -> None:
    path = write_rule(tmp_path, """\
        match:
          any:
            - verb: {startswth: g}
            - all:
                - objectRef.resource: pods
                - objectRef.name: {regex: '(a'}
          not:
            user.username:
              exists: maybe
              not_in: []
          objectRef..namespace: x
        """)  # fmt: skip
    assert_errors(path, [
        (8, "unknown operator 'startswth'"),
        (11, "bad regex"),
        (14, "operator 'exists' takes true or false"),
        (15, "operator 'not_in' takes a non-empty list"),
        (16, "bad field path"),
    ])  # fmt: skip


def test_every_test_case_is_checked_apart(tmp_path: Path) -> None:
    """Each case at its own line: a bad one does not hide the next, nor one of its problems another."""
    event = orjson.dumps(exec_event()).decode()
    path = write_rule(tmp_path, f"""\
        match:
          verb: create
        tests:
          - {{name: fires, expect: alert, event: {event}}}
          - {{name: maybe, expect: maybe, event: {event}}}
          - {{name: no event, expect: none}}
          - {{name: two problems, expect: sometimes, event: [not, an, event]}}
        """)  # fmt: skip
    assert_errors(path, [
        (10, "test expect must be 'alert' or 'none'"),
        (11, "a test is {name, expect: alert|none, event}"),
        (12, "test expect must be 'alert' or 'none'"),
        (12, "test event must be a mapping (a full audit Event)"),
    ])  # fmt: skip
    # a stateful rule's sequence: each item checked apart, each at its line
    sequence = tmp_path / "burst.yaml"
    sequence.write_text(HEADER.format(id="burst") + textwrap.dedent(f"""\
        type: threshold
        match: {{verb: create}}
        group_by: [$principal]
        window: 15m
        threshold: 2
        tests:
          - name: a burst
            expect: alert
            sequence:
              - {{event: {event}, repeat: 0}}
              - {{event: {event}, every: soon}}
        """))  # fmt: skip
    assert_errors(sequence, [(15, "repeat must be an integer from 1 to 10000"), (16, "every must be a duration")])


def test_every_allowlist_key_is_checked_apart(tmp_path: Path) -> None:
    path = write_rule(tmp_path, """\
        match:
          verb: create
        allowlist:
          users: ['mallory@*']
          user: [bob]
          groups: devs
          namespaces: [kube-*, 7]
        """)  # fmt: skip
    assert_errors(path, [
        (10, "unknown allowlist key 'user'"),
        (11, "allowlist.groups must be a list of strings"),
        (12, "allowlist.namespaces must be a list of strings"),
    ])  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "type: threshold\nmatch: {verb: {nope: 1}}\ngroup_by: [user..x]\nwindow: soon\nthreshold: 1\n",
            [(7, "unknown operator 'nope'"), (8, "group_by: bad field path"), (9, "window must be a duration"),
             (10, "threshold must be an integer of at least 2")],
        ),
        (
            "type: threshold\nmatch: {verb: get}\ncolour: red\n",
            [(1, "missing required key 'group_by' for a threshold rule"),
             (1, "missing required key 'window' for a threshold rule"),
             (1, "missing required key 'threshold' for a threshold rule"), (8, "unknown key 'colour'")],
        ),
        (
            "type: distinct_count\nmatch: {verb: get}\ngroup_by: [$principal]\nwindow: 1h\n"
            "distinct:\n  objectRef.name: 1\n  objectRef..namespace: 3\n",
            [(11, "distinct.objectRef.name must be an integer of at least 2"), (12, "distinct: bad field path")],
        ),
        (
            "type: new_terms\nmatch: {verb: get}\ngroup_by: $principal\nterms: 7\nhistory: 7d\nlearning: soon\n",
            [(9, "terms must be a field path or a list of them"), (11, "learning must be a duration")],
        ),
        (
            "type: anomaly\nmatch: {verb: get}\nthreshold: -1\nmax_principals: 2.5\nwarmup: later\n",
            [(8, "threshold must be a positive number"), (9, "max_principals must be an integer"),
             (10, "warmup must be a duration")],
        ),
        (
            "type: sequence\nby: [$principal]\nwithin: soon\nsteps:\n  - match: {verb: {nope: 1}}\n"
            "  - {match: {verb: get}, by: 7, stages: [Done]}\n  - {name: x}\n",
            [(8, "within must be a duration"), (10, "unknown operator 'nope'"),
             (11, "stages must be a list of"), (11, "by must be a field path"), (12, "a step is {name, match")],
        ),
    ],
    ids=["threshold", "missing keys", "distinct_count", "new_terms", "anomaly", "sequence"],
)  # fmt: skip
def test_every_key_of_a_stateful_rule_is_checked_apart(
    tmp_path: Path, body: str, expected: list[tuple[int, str]]
) -> None:
    """Its own keys, apart from each other and from its header and `match:`."""
    assert_errors(write_rule(tmp_path, body, "broken"), expected)


def assert_errors(path: Path, expected: list[tuple[int, str]]) -> None:
    """The file's errors, in order, each at its line and starting with its text."""
    errors = errors_of(path)
    assert len(errors) == len(expected), errors
    for error, (line, text) in zip(errors, expected, strict=True):
        assert error.startswith(f"{path}:{line}: {text}"), error


def test_a_mounted_configmap_directory_loads_each_rule_once(tmp_path: Path) -> None:
    """As the kubelet mounts a ConfigMap: the files in a `..<timestamp>` directory, `..data` a link to it, and each
    file a link into `..data`. Hidden files and directories are skipped."""
    version = tmp_path / "..2026_12_01_17_00_00.123456789"
    version.mkdir()
    write_rule(version, "match:\n  verb: get\n")
    (tmp_path / "..data").symlink_to(version.name)
    (tmp_path / "test-rule.yaml").symlink_to("..data/test-rule.yaml")
    (tmp_path / ".editor-backup.yaml").write_text("not: a rule\n")
    assert [d.id for d in load_rules([str(tmp_path)])] == ["test-rule"]


def test_a_directory_without_rule_files_is_an_error_and_broken_links_are_named(tmp_path: Path) -> None:
    """A rules directory that yields no rule would start a detector that detects nothing."""
    (tmp_path / "README.txt").write_text("not a rule\n")
    (tmp_path / ".hidden.yaml").symlink_to("nowhere.yaml")  # hidden: skipped, as a ConfigMap's `..data` links
    assert errors_of(tmp_path) == [
        f"{tmp_path}: the directory holds no rule file (*.yaml, *.yml; hidden ones are skipped)"
    ]
    (tmp_path / "gone.yaml").symlink_to("/nonexistent/gone.yaml")
    write_rule(tmp_path, "match:\n  verb: get\n")
    assert errors_of(tmp_path) == [f"{tmp_path / 'gone.yaml'}: broken symbolic link (to /nonexistent/gone.yaml)"]


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_rule(a, "match:\n  verb: get\n")
    write_rule(b, "match:\n  verb: get\n")
    with pytest.raises(RuleErrors, match="duplicate rule id 'test-rule'"):
        load_rules([str(a), str(b)])


def fires(tmp_path: Path, match: str, event: dict[str, Any], extra: str = "", stages: str = "") -> bool:
    body = (
        (stages or "stages: [RequestReceived, ResponseStarted, ResponseComplete, Panic]\n")
        + "match:\n"
        + textwrap.indent(textwrap.dedent(match).rstrip("\n") + "\n", "  ")
        + extra
    )
    path = write_rule(tmp_path, body)
    return bool(Pipeline(load_rules([str(path)])).process(AuditEvent(raw=event)))


def deployment() -> dict[str, Any]:
    return find_event(
        lambda e: e.get("objectRef", {}).get("resource") == "deployments" and e["stage"] == "ResponseComplete"
    )


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ("verb: create", True),
        ("verb: [get, create]", True),
        ("verb: [get, list]", False),
        ("responseStatus.code: 201", True),
        ("responseStatus.code: '201'", False),  # types are kept: a string is not a number
        ("$containers[*].securityContext.privileged: true", True),
        ("$containers[*].securityContext.privileged: 1", False),  # YAML 1 is not JSON true
        ("user.groups: contractors", True),
        ("user.groups: {not_in: [devs]}", True),
        ("user.groups: {not_in: [contractors]}", False),
        ("objectRef.namespace: {prefix: [kube-, sh]}", True),
        ("objectRef.name: {suffix: agent}", True),
        ("requestURI: {contains: fieldManager=kubectl}", True),
        ("userAgent: {regex: '^kubectl/v1\\.3[0-9]'}", True),
        ("responseStatus.code: {gte: 200, lt: 300}", True),
        ("responseStatus.code: {gt: 201}", False),
        ("impersonatedUser: {exists: false}", True),
        ("impersonatedUser.username: {exists: true}", False),
        ("not: {verb: create}", False),
        ("any: [{verb: get}, {objectRef.resource: deployments}]", True),
        ("all: [{verb: create}, {objectRef.resource: pods}]", False),
        ("$principal: mallory@example.com", True),
        ("$decision: allow", True),
        ("$request.spec.template.spec.containers: {some: {name: agent, image: {prefix: docker.io/}}}", True),
        ("$request.spec.template.spec.containers: {some: {name: agent, image: {prefix: quay.io/}}}", False),
        ("$exec: {exists: false}", True),  # not an exec
    ],
)
def test_condition_semantics(tmp_path: Path, match: str, expected: bool) -> None:
    assert fires(tmp_path, match, deployment()) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/", True),
        ("/etc", True),
        ("/etc/kubernetes/pki", True),
        ("/proc/1/root", True),
        ("/var/../etc/shadow", True),  # normalised before matching
        ("//etc", True),
        ("/etc/", True),
        ("/etcd-data", False),  # component boundary, not string prefix
        ("/data/app", False),
        ("relative/etc", False),
    ],
)
def test_path_under(tmp_path: Path, path: str, expected: bool) -> None:
    event = deployment()
    spec = event["requestObject"]["spec"]["template"]["spec"]
    spec["volumes"] = [{"name": "host", "hostPath": {"path": path, "type": ""}}]
    match = "$volumes[*].hostPath.path: {path_under: [/, /etc, /proc]}"
    assert fires(tmp_path, match, event) is expected


def test_allowlist_and_stages_and_message(tmp_path: Path) -> None:
    event = exec_event()
    assert fires(tmp_path, "verb: create", event, stages="stages: [ResponseComplete]\n") is False
    allow = "allowlist:\n  users: ['mallory@*']\n"
    assert fires(tmp_path, "verb: create", event, extra=allow) is False
    allow = "allowlist:\n  groups: [devs]\n  namespaces: [kube-*]\n"
    assert fires(tmp_path, "verb: create", event, extra=allow) is True
    path = write_rule(
        tmp_path,
        "stages: [ResponseStarted]\nmatch:\n  verb: create\n"
        "message: '{user.username} -> {objectRef.namespace}/{objectRef.name} groups={user.groups} imp={impersonatedUser.username}'\n",
    )
    (alert,) = Pipeline(load_rules([str(path)])).process(AuditEvent(raw=event, origin="f:1"))
    assert (
        alert.message
        == "mallory@example.com -> shop/web-7d9f8b6c5d-x2x9k groups=contractors,system:authenticated imp=-"
    )
    assert (alert.rule_name, alert.origin, alert.stage) == ("Test rule", "f:1", "ResponseStarted")


def test_detection_does_not_mutate_the_event(tmp_path: Path) -> None:
    event = deployment()
    event["verb"] = "patch"
    event["requestObject"] = [
        {"op": "add", "path": "/spec/template/spec/containers/0/securityContext", "value": {"privileged": True}}
    ]
    before = copy.deepcopy(event)
    assert fires(tmp_path, "$containers[*].securityContext.privileged: true", event) is True
    assert event == before


def test_alert_ids_are_deterministic_and_forged_audit_ids_do_not_collide(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "stages: [ResponseStarted]\nmatch:\n  verb: create\n")
    pipeline = Pipeline(load_rules([str(path)]))
    event = exec_event()
    first = pipeline.process(AuditEvent(raw=event))[0].id
    assert pipeline.process(AuditEvent(raw=copy.deepcopy(event)))[0].id == first
    forged = copy.deepcopy(event)  # a client reusing the same Audit-ID header later
    forged["requestReceivedTimestamp"] = "2026-11-21T09:00:00.000001Z"
    forged["stageTimestamp"] = "2026-11-21T09:00:00.100001Z"
    assert pipeline.process(AuditEvent(raw=forged))[0].id != first


def test_yaml_merge_keys_may_be_overridden_but_real_duplicates_are_errors(tmp_path: Path) -> None:
    from detectors.loading.yamlload import load_yaml

    doc = load_yaml("base: &b {verb: get, stage: ResponseComplete}\nevent:\n  <<: *b\n  verb: list\n")
    assert doc["event"] == {"verb": "list", "stage": "ResponseComplete"}
    with pytest.raises(RuleError, match="duplicate key 'verb'"):
        load_yaml("event:\n  <<: {verb: get}\n  verb: list\n  verb: watch\n")


def test_yaml_aliases_that_expand_exponentially_are_refused_with_file_and_line(tmp_path: Path) -> None:
    # a Falco list of lists, nine copies a level: 9^8 items (each level more takes nine times the time and memory)
    lines = ['- list: l0\n  items: &l0 ["x", "y", "z", "w", "v", "u", "t", "s", "r"]']
    lines += [f"- list: l{n}\n  items: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 8)]
    lines.append("- rule: R\n  desc: d\n  condition: ka.verb in (l7)\n  output: x\n  priority: WARNING\n"
                 "  source: k8s_audit")  # fmt: skip
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(RuleErrors) as caught:
        load_rules([str(tmp_path / "bomb.yaml")])
    assert [str(e) for e in caught.value.errors] == [
        f"{tmp_path / 'bomb.yaml'}:14: YAML aliases expand this value to more than 1,000,000 values"
    ]
    from detectors.loading.yamlload import load_yaml

    shared = load_yaml("a: &a [1, 2]\nb: [*a, *a, *a]\n")  # aliases that do not multiply stay allowed
    assert shared == {"a": [1, 2], "b": [[1, 2]] * 3}


def test_image_and_registry_allowlists_need_every_container_allowed(tmp_path: Path) -> None:
    from detectors.rules.allowlist import image_registry

    assert [image_registry(i) for i in ("alpine:3.20", "library/nginx", "reg.example.com/a/b:1", "localhost:5000/x",
                                         "ghcr.io/org/img@sha256:abc")] == [
        "docker.io", "docker.io", "reg.example.com", "localhost:5000", "ghcr.io"]  # fmt: skip
    event = deployment()  # one container: docker.io/library/alpine:3.20
    match = "$containers[*].securityContext.privileged: true"
    assert fires(tmp_path, match, event, extra="allowlist:\n  registries: [docker.io]\n") is False
    assert fires(tmp_path, match, event, extra="allowlist:\n  images: ['docker.io/library/alpine:*']\n") is False
    assert fires(tmp_path, match, event, extra="allowlist:\n  registries: [registry.example.com]\n") is True
    spec = event["requestObject"]["spec"]["template"]["spec"]
    spec["initContainers"] = [{"name": "setup", "image": "evil.example.net/tool:1"}]  # Falco's blind spot
    assert fires(tmp_path, match, event, extra="allowlist:\n  registries: [docker.io]\n") is True


def test_suppress_window_is_a_duration(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "suppress: 30m\nmatch:\n  verb: create\n")
    (rule,) = load_rules([str(path)])
    assert isinstance(rule, MatchRule)
    assert rule.header.suppress_s == 1800
    path = write_rule(tmp_path, "suppress: often\nmatch:\n  verb: create\n")
    assert "suppress must be a duration" in errors_of(path)[0]


def test_detectors_declare_their_abilities(tmp_path: Path) -> None:
    """The optional abilities are protocols: each kind of detector has exactly the ones it should."""
    (tmp_path / "unit.yml").write_text(
        "title: Unit rule\nid: 6f2b1d0e-0000-4000-8000-000000000009\nfalsepositives:\n  - admins\n"
        "logsource:\n  product: kubernetes\n  service: audit\n"
        "detection:\n  selection:\n    verb: create\n  condition: selection\n"
    )
    (tmp_path / "falco.yaml").write_text(
        "- rule: Unit\n  desc: unit\n  condition: ka.verb=create\n  output: created\n  priority: WARNING\n"
        "  source: k8s_audit\n"
    )
    detectors = load_rules(["builtin", str(tmp_path)])
    kinds: dict[str, list[Any]] = {"native": [], "sigma": [], "falco": []}
    for d in detectors:
        if isinstance(d, Baselined):  # a rule with a `baseline:` has the rule's abilities, and state
            kinds["native"].append(d)
            assert (
                isinstance(d.rule, (MatchRule, StatefulRule))
                and isinstance(d, Stateful)
                and isinstance(d, Transactional)
            )
            assert isinstance(d, SelfTested) and isinstance(d, Described) and d.source.path.endswith(f"{d.id}.yaml")
            assert isinstance(d, Warns) and d.warnings == ()
        elif isinstance(d, (MatchRule, StatefulRule)):
            kinds["native"].append(d)
            assert isinstance(d, SelfTested) and isinstance(d, Described) and d.source.path.endswith(f"{d.id}.yaml")
            assert isinstance(d, Stateful) == isinstance(d, StatefulRule)
            assert isinstance(d, Warns) and d.warnings == ()  # fields no event has; none in the built-ins
        elif isinstance(d, SigmaDetector):
            kinds["sigma"].append(d)
            assert isinstance(d, Described) and isinstance(d, Warns) and d.false_positives == "admins"
            assert not isinstance(d, SelfTested) and not isinstance(d, Stateful)
            assert str(d.source) == f"{tmp_path / 'unit.yml'}:1"
        else:
            assert isinstance(d, FalcoRuleset)
            kinds["falco"].append(d)
            assert isinstance(d, Sourced) and str(d.source) == str(tmp_path / "falco.yaml")
            assert isinstance(d, Warns) and d.warnings == ()
            assert not isinstance(d, (Described, SelfTested, Stateful))
    assert len(kinds["sigma"]) == len(kinds["falco"]) == 1 and len(kinds["native"]) >= 12
    assert any(isinstance(d, Stateful) for d in kinds["native"])


# ---- fields no audit event has ---------------------------------------------------------------------------


def test_the_event_schema_has_every_field_a_real_apiserver_writes() -> None:
    """Every path in the kube-apiserver corpus (bodies and annotation keys aside) is in the schema, and so is
    every field of the pod specs, containers and volumes its requests carry (patch directives aside)."""
    import gzip

    import orjson

    from detectors.eventschema import path_problem
    from detectors.fieldpath import compile_path
    from tests.support.paths import DATA

    def leaves(node: Any, prefix: str) -> set[str]:
        if isinstance(node, dict):
            if not node and prefix:
                return {prefix}
            return set().union(*(leaves(v, f"{prefix}.{k}" if prefix else k) for k, v in node.items()
                                 if not k.startswith("$")))  # fmt: skip
        if isinstance(node, list):
            return set().union(*(leaves(v, f"{prefix}[*]") for v in node)) if node else {prefix}
        return {prefix}

    seen: set[str] = set()
    for line in gzip.open(DATA / "kube-e2e" / "audit.jsonl.gz"):
        raw = orjson.loads(line)
        event = AuditEvent(raw=raw)
        shallow = {k: ({} if k in ("requestObject", "responseObject", "annotations") else v) for k, v in raw.items()}
        seen |= leaves(shallow, "")
        for root, depth in (("$podSpecs", 1), ("$containers", 2), ("$volumes", 2)):
            for item in compile_path(f"{root}[*]").values(event):
                seen |= {p for p in leaves(item, f"{root}[*]") if p.count(".") <= depth}
    assert len(seen) > 40 and any(p.startswith("$containers[*].securityContext.") for p in seen)
    assert {p: path_problem(p) for p in sorted(seen) if path_problem(p)} == {}


def test_fields_no_event_has_are_warnings_with_file_line_and_rule(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        rules:
        - id: typo-match
          name: Typos in a match rule
          severity: low
          description: d
          mitre: T1609
          match:
            objectRef.resouce: pods
            any:
              - user.name: alice
              - not:
                  $containers[*].securityContext.priviliged: true
            requestObject.spec.anything: 1
          message: "{objectRef.namespace}/{objectRef.nam}"
        - id: typo-stateful
          name: Typos in a stateful rule
          severity: low
          description: d
          mitre: T1609
          type: new_terms
          match: {verb: get}
          group_by: userAgnt
          terms:
            - sourceIPs[-1]
            - user.groups.name
          history: 1d
        - id: typo-sequence
          name: Typos in a sequence rule
          severity: low
          description: d
          mitre: T1609
          type: sequence
          by: $principal
          within: 5m
          steps:
            - match: {verb: create}
            - match: {$decision.value: allow}
              by:
                - objectRef[*].name
        """)
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)

    def at(needle: str) -> str:
        return f"{rules}:{next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)}"

    warnings = {d.id: list(d.warnings) for d in load_rules([str(rules)]) if isinstance(d, Warns)}
    assert warnings == {
        "typo-match": [
            f"{at('resouce')}: rule 'typo-match': no audit event has 'objectRef.resouce': objectRef has no field "
            "'resouce'; did you mean 'resource'?",
            f"{at('user.name')}: rule 'typo-match': no audit event has 'user.name': user has no field 'name'; "
            "did you mean 'username'?",
            f"{at('priviliged')}: rule 'typo-match': no audit event has '$containers[*].securityContext.priviliged': "
            "$containers[*].securityContext has no field 'priviliged'; did you mean 'privileged'?",
            f"{at('message')}: rule 'typo-match': no audit event has 'objectRef.nam': objectRef has no field 'nam'; "
            "did you mean 'name'?",
        ],
        "typo-stateful": [
            f"{at('group_by')}: rule 'typo-stateful': no audit event has 'userAgnt': an audit event has no field "
            "'userAgnt'; did you mean 'userAgent'?",
            f"{at('  terms:')}: rule 'typo-stateful': no audit event has 'user.groups.name': the elements of "
            "user.groups are not objects: they have no field 'name'",
        ],
        "typo-sequence": [
            f"{at('decision.value')}: rule 'typo-sequence': no audit event has '$decision.value': $decision is a "
            "string: it has no field 'value'",
            f"{at('    by:')}: rule 'typo-sequence': no audit event has 'objectRef[*].name': objectRef is an object, "
            "not a list: [*] selects nothing",
        ],
    }


def test_falco_and_sigma_fields_no_event_has_are_warnings(tmp_path: Path) -> None:
    (tmp_path / "falco.yaml").write_text(
        "- macro: bad_stage\n  condition: jevt.value[/stag] = ResponseComplete\n"
        "- rule: Typo\n  desc: d\n  condition: bad_stage and jevt.value[/objectRef/resource] = pods\n"
        "  output: by %jevt.value[/user/usrname]\n  priority: WARNING\n  source: k8s_audit\n"
    )
    (tmp_path / "sigma.yml").write_text(
        "title: Typo\nid: 6f2b1d0e-0000-4000-8000-0000000000ab\nlogsource:\n  product: kubernetes\n"
        "  service: audit\ndetection:\n  a:\n    objectRef.resouce: pods\n  b:\n    verb: get\n  condition: a or b\n"
    )
    warnings = [w for d in load_rules([str(tmp_path)]) if isinstance(d, Warns) for w in d.warnings]
    assert warnings == [
        f"{tmp_path / 'falco.yaml'}:5: Falco rule 'Typo': no audit event has 'jevt.value[/stag]': "
        "an audit event has no field 'stag'; did you mean 'stage'?",
        f"{tmp_path / 'falco.yaml'}:6: Falco rule 'Typo': no audit event has 'jevt.value[/user/usrname]': "
        "user has no field 'usrname'; did you mean 'username'?",
        f"{tmp_path / 'sigma.yml'}:8: Sigma rule 'Typo': no audit event has 'objectRef.resouce': "
        "objectRef has no field 'resouce'; did you mean 'resource'?",
    ]


def test_not_regex_holds_when_some_value_does_not_match(tmp_path: Path) -> None:
    path = write_rule(tmp_path, "match:\n  $containers[*].image: {not_regex: '^registry\\.example\\.com/'}\n")
    (rule,) = load_rules([str(path)])
    assert isinstance(rule, MatchRule)

    def pod(*images: str) -> AuditEvent:
        containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
        return AuditEvent(
            raw={"objectRef": {"resource": "pods"}, "requestObject": {"spec": {"containers": containers}}}
        )

    assert rule.predicate(pod("registry.example.com/a", "busybox"))
    assert not rule.predicate(pod("registry.example.com/a", "registry.example.com/b"))
    assert not rule.predicate(pod())


class _Watched(dict[str, Any]):
    """An event's raw dict that notes the fields read from it."""

    read: list[str]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.append(key)
        return super().get(key, default)


def test_an_empty_allowlist_answers_without_reading_the_event() -> None:
    raw = _Watched(exec_event())
    raw.read = []
    assert not Allowlist.build({key: [] for key in ALLOWLIST_KEYS}).allows(AuditEvent(raw=raw))
    assert raw.read == []
    assert Allowlist.build({**{key: [] for key in ALLOWLIST_KEYS}, "users": ["mallory@*"]}).allows(AuditEvent(raw=raw))

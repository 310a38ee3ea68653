"""Fuzzing the rule loader: the shipped native, Falco and Sigma rule files with one change (a value of another type
at any path, a key removed, a tricky string: a regular expression, a field path, a duration, a number), texts
damaged (cut, a stray character, a line doubled), and random YAML.

Every case: the load either gives detectors or raises RuleErrors whose every error names the file; never any
other exception, never a hang (RE2 patterns and bounded parsing). Detectors that load run over real events
without failing on any of them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.base import Detector
from detectors.errors import RuleErrors
from detectors.events import AuditEvent, Rejected
from detectors.packs import PACKS
from detectors.pipeline import Pipeline
from detectors.registry import load_rules
from tests.support.fuzz import budget, case, ran_budget
from tests.support.fuzz_events import JSON_TYPES, json_type_of, offset, real_event, value_of_type

TRICKY_STRINGS = [
    "(a+)+$", "[", "\\", "(?P<x>a)(?P=x)", "a{1000000}", "(?i)", ".*" * 50, "\\1", "(?=a)", "\x00", "",
    "$containers[*].securityContext", "objectRef.resource[0]", "annotations['x", "a..b", "$nosuch", "user.extra[*][*]",
    "requestObject.spec.containers[-1].image", "15m", "-1s", "1e9d", "0s", "999999999999h", "P1D", "1.5",
    "evt.type", "ka.req.pod.containers.image", "ka.verb in (create", "not", "and and", "=", "contains",
    "selection and not", "1 of them", "all of selection*", "%macro%", "{gte: x}", "verb|contains", "é" * 300,
]  # fmt: skip


@cache
def shipped_files() -> tuple[tuple[str, str], ...]:
    """(name, text) of every shipped rule file."""
    files: list[tuple[str, str]] = []
    for pack in ("builtin", "falco", "sigma"):
        for path in sorted(PACKS[pack].rglob("*")):
            if path.suffix in (".yaml", ".yml"):
                files.append((f"{pack}/{path.name}", path.read_text()))
    return tuple(files)


_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@cache
def shipped_doc(index: int) -> Any:
    return yaml.load(shipped_files()[index][1], Loader=_LOADER)


def dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_DUMPER, allow_unicode=True, sort_keys=False)


def _paths(doc: Any) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    pending: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    while pending:
        path, value = pending.pop()
        if path:
            out.append(path)
        if isinstance(value, dict):
            pending.extend(((*path, k), v) for k, v in value.items() if path or k != "tests")
        elif isinstance(value, list):
            pending.extend(((*path, i), v) for i, v in enumerate(value))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated_rule_text(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, text): a shipped rule file with one or two changes to its YAML, or its text damaged."""
    index = draw(st.integers(0, len(shipped_files()) - 1))
    name, text = shipped_files()[index]
    how = draw(st.sampled_from(["swap", "swap", "delete", "string", "string", "text", "untested"]))
    if how == "text":
        damage = draw(st.sampled_from(["cut", "char", "line"]))
        at = offset(draw, len(text))
        if damage == "cut":
            return name, text[:at]
        if damage == "char":
            return name, text[:at] + draw(
                st.sampled_from([":", "-", "[", "{", "'", '"', "\t", "&a", "*a", "!!python"])
            ) + text[at:]
        lines = text.splitlines(keepends=True)
        line = offset(draw, len(lines) - 1)
        return name, "".join([*lines[: line + 1], lines[line], *lines[line + 1 :]])
    doc = copy.deepcopy(shipped_doc(index))
    if isinstance(doc, dict) and (how == "untested" or draw(st.booleans())):
        doc.pop("tests", None)  # most cases: the rule without its examples (faster to load)
    for _ in range(draw(st.integers(1, 2))):
        paths = _paths(doc)
        if not paths:
            break
        path = paths[draw(st.integers(0, len(paths) - 1))]
        parent, key = _get(doc, path[:-1]), path[-1]
        if how == "delete":
            del parent[key]
        elif how == "string":
            parent[key] = draw(st.sampled_from(TRICKY_STRINGS))
        elif how == "swap":
            old = parent[key]
            kind = draw(st.sampled_from([t for t in JSON_TYPES if t != json_type_of(old)]))
            parent[key] = draw(value_of_type(kind, old))
    return name, dump(doc)


yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10), st.sampled_from(TRICKY_STRINGS)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "name",
                    "type",
                    "match",
                    "rule",
                    "condition",
                    "macro",
                    "list",
                    "items",
                    "detection",
                    "logsource",
                    "output",
                    "priority",
                    "steps",
                    "window",
                    "by",
                ]
            ),
            inner,
            max_size=5,
        ),
    ),  # fmt: skip
    max_leaves=12,
)


@st.composite
def random_yaml_text(draw: st.DrawFn) -> tuple[str, str]:
    name = draw(st.sampled_from(["builtin/random.yaml", "falco/random.yaml", "sigma/random.yml"]))
    if draw(st.booleans()):
        return name, dump(draw(yaml_values))
    return name, draw(st.text(alphabet=st.sampled_from(list("abc:- \n[]{}'\"#&*!|>%@`\t,?0x")), max_size=200))


@cache
def sample_events() -> tuple[AuditEvent, ...]:
    """Real events every loaded rule is run over: one per kind of request in the scenario and the e2e log."""
    picked: dict[tuple[str, str, str], AuditEvent] = {}
    for index in range(0, 2500, 3):
        raw = real_event(index)
        ref = raw.get("objectRef") or {}
        picked.setdefault((raw["verb"], ref.get("resource", ""), ref.get("subresource", "")), AuditEvent(raw))
    return tuple(picked.values())


@dataclass
class RuleFolder:
    folder: Path
    falco_base: str


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuleFolder]:
    yield RuleFolder(tmp_path_factory.mktemp("fuzz-rules"), str(PACKS["falco"] / "k8s_audit_rules.yaml"))


def check_load(folder: RuleFolder, name: str, text: str) -> None:
    pack, file_name = name.split("/")
    path = folder.folder / file_name
    path.write_text(text, errors="surrogatepass")
    specs = [str(path)]
    if pack == "falco" and file_name != "k8s_audit_rules.yaml":
        specs = [folder.falco_base, str(path)]  # the GKE add-on appends to the base file's rules
    try:
        detectors: list[Detector] = load_rules(specs)
    except RuleErrors as exc:
        assert exc.errors and all(str(e).startswith(e.path) and e.path in (*specs, "<string>") for e in exc.errors), exc
        return
    pipeline = Pipeline(detectors)
    for event in sample_events():
        failures: list[Rejected] = []
        pipeline.process(event, failures)
        assert not failures, f"a rule that loaded failed on a real event: {failures[0].reason}\n{text[:3000]}"


RULE_TEXTS = budget("rule files", 300)
RANDOM_TEXTS = budget("random YAML rule files", 200)


def test_shipped_rules_with_a_change(folder: RuleFolder) -> None:
    @settings(max_examples=RULE_TEXTS)
    @given(rule=mutated_rule_text())
    def rule_files(rule: tuple[str, str]) -> None:
        with case("rule files"):
            check_load(folder, *rule)

    with ran_budget("rule files"):
        rule_files()


def test_random_yaml(folder: RuleFolder) -> None:
    @settings(max_examples=RANDOM_TEXTS)
    @given(rule=random_yaml_text())
    def random_files(rule: tuple[str, str]) -> None:
        with case("random YAML rule files"):
            check_load(folder, *rule)

    with ran_budget("random YAML rule files"):
        random_files()

"""The tuning file as written: its strict schema, and reading it with every error as `file:line: message`.

Unknown keys, wrong types and missing values are all reported at once, each at the line of the key or item
it is about (pydantic validates; the strict YAML loader of rule files remembers the lines).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from detectors.errors import RuleError, RuleErrors
from detectors.loading.yamlload import LocatedDict, LocatedList, load_yaml, plain

SeverityName = Literal["info", "low", "medium", "high", "critical"]
NonEmpty = Annotated[str, Field(min_length=1)]
FieldValue = str | int | float | bool  # compared as a condition sees it: JSON text for non-strings (`201`, `true`)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FieldCondition(_Strict):
    """Values a field must have: exactly one of `equals`, or starting with one of `prefix`."""

    equals: list[FieldValue] = []
    prefix: list[str] = []

    @model_validator(mode="after")
    def _some(self) -> FieldCondition:
        if not self.equals and not self.prefix:
            raise ValueError("give `equals` or `prefix` values")
        return self


def _service_account(account: str) -> str:
    namespace, sep, name = account.partition(":")
    if not (sep and namespace and name) or ":" in name:
        raise ValueError(f"service account {account!r} must be written NAMESPACE:NAME (e.g. ci:deployer)")
    return account


def _registry(prefix: str) -> str:
    problem = registry_problem(prefix)
    if problem:
        raise ValueError(problem)
    return prefix


def _expiry(text: str) -> str:
    expiry_time(text)
    return text


ServiceAccount = Annotated[str, AfterValidator(_service_account)]
RegistryPrefix = Annotated[str, AfterValidator(_registry)]
Expiry = Annotated[str, AfterValidator(_expiry)]


class Identities(_Strict):
    """Who: user names, groups (being in one is enough) and service accounts (`NAMESPACE:NAME`); globs."""

    users: list[str] = []
    groups: list[str] = []
    service_accounts: list[ServiceAccount] = []


class Deployer(Identities):
    """An identity that routinely writes workloads, RBAC, CRDs and admission webhooks (CI/CD, GitOps, operators)."""

    name: NonEmpty
    rules: list[str] | None = None  # rule ids or globs it exempts; default: the write rules (docs/tuning.md)

    @model_validator(mode="after")
    def _someone(self) -> Deployer:
        if not (self.users or self.groups or self.service_accounts):
            raise ValueError("a deployer needs users, groups or service_accounts")
        return self


class ExceptionEntry(Identities):
    """Alerts of `rules` whose event matches every condition given are benign."""

    name: NonEmpty
    rules: list[str] = Field(min_length=1)
    reason: str | None = None
    namespaces: list[str] = []
    images: list[str] = []  # every container's image must match one
    fields: dict[str, FieldCondition] = {}
    expires: Expiry | None = None  # RFC 3339 time or date; later events are no longer excused

    @model_validator(mode="after")
    def _some_condition(self) -> ExceptionEntry:
        if not (self.users or self.groups or self.service_accounts or self.namespaces or self.images or self.fields):
            raise ValueError("an exception needs a condition: users, groups, service_accounts, namespaces, images "
                             "or fields")  # fmt: skip
        return self


class TuningFile(_Strict):
    trusted_registries: list[RegistryPrefix] = []
    deployers: list[Deployer] = []
    exceptions: list[ExceptionEntry] = []
    severity: dict[str, SeverityName] = {}
    disabled: list[str] = []

    @model_validator(mode="after")
    def _unique_names(self) -> TuningFile:
        for kind, names in (("deployer", [d.name for d in self.deployers]),
                            ("exception", [e.name for e in self.exceptions])):  # fmt: skip
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"{kind} name {twice[0]!r} is used twice (names label the suppression counters)")
        return self


def registry_problem(prefix: str) -> str | None:
    """Why `prefix` is not a registry prefix (`host[:port][/path]`, no scheme, tag or glob), or None."""
    if not prefix or prefix != prefix.strip() or any(c in prefix for c in "*?[]@ "):
        return f"registry {prefix!r}: write a plain prefix, host[:port][/path] (no globs, spaces or digests)"
    if "://" in prefix:
        return f"registry {prefix!r}: write it without the scheme (registry.example.com/team)"
    host = prefix.split("/", 1)[0]
    if not ("." in host or ":" in host or host == "localhost"):
        return f"registry {prefix!r}: start with the registry's host (docker.io/library/nginx, not nginx)"
    if prefix.endswith("/"):
        return f"registry {prefix!r}: leave out the final '/' (a prefix only ever matches whole path components)"
    return None


def expiry_time(text: str) -> datetime:
    """An `expires:` value: an RFC 3339 time, or a date (its midnight UTC). ValueError when it is neither."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expires {text!r} is not an RFC 3339 time or a date (2027-01-31)") from None
    if len(text) == 10:
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def line_at(doc: Any, loc: Sequence[int | str]) -> int | None:
    """The line of the deepest key or item of `loc` that the YAML document has."""
    line = doc.line if isinstance(doc, LocatedDict | LocatedList) else None
    node = doc
    for step in loc:
        if isinstance(node, LocatedDict) and isinstance(step, str) and step in node:
            line, node = node.line_of(step), node[step]
        elif isinstance(node, LocatedList) and isinstance(step, int) and 0 <= step < len(node):
            line, node = node.line_of(step), node[step]
        else:
            break
    return line


def _shown(loc: tuple[int | str, ...]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc if p not in ("function-after", "list")]
    return "".join(parts).lstrip(".")


def read_tuning(path: str) -> tuple[TuningFile, LocatedDict]:
    """The tuning file at `path`, validated, and its YAML (for the lines of later checks). RuleErrors lists
    every problem, `file:line: message` each."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleErrors([RuleError(f"cannot read the tuning file: {exc}", path=path)]) from None
    try:
        doc = load_yaml(text, path=path)
    except RuleError as exc:
        raise RuleErrors([exc]) from None
    if doc is None:
        doc = LocatedDict()
        doc.line, doc.key_lines = 1, {}
    if not isinstance(doc, LocatedDict):
        raise RuleErrors([RuleError("a tuning file is a mapping (trusted_registries:, deployers:, ...)", path=path,
                                    line=getattr(doc, "line", 1))])  # fmt: skip
    try:
        return TuningFile.model_validate(plain(doc)), doc
    except ValidationError as exc:
        errors = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = _shown(loc)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = f"unknown key {loc[-1]!r}" if loc else message
                where = _shown(loc[:-1])
            errors.append(RuleError(f"{where}: {message}" if where else message, path=path, line=line_at(doc, loc)))
        raise RuleErrors(errors) from None

"""Load rule files: named packs (detectors.packs), single files or directories, in the formats the caller names.

Every error names its file and line; all errors of a load are collected and raised together.
`detectors.registry.load_rules` is this loader bound to the known formats.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from detectors.base import Detector, Sourced
from detectors.errors import RuleError, RuleErrors
from detectors.loading.formats import LoadOptions, RuleFormat
from detectors.loading.yamlload import load_yaml_documents, read_rule_text
from detectors.packs import PACKS

BUILTIN = "builtin"
BUILTIN_DIR = PACKS[BUILTIN]
RULE_SUFFIXES = (".yaml", ".yml")


def rule_files(spec: str) -> list[Path]:
    """A pack name (it wins over a same-named relative path), a file, or a directory (its *.yaml/*.yml files,
    recursively, in name order, but for hidden ones: a mounted ConfigMap also holds each file in `..data/` and
    in a `..<timestamp>/` directory, which would load every rule three times). A directory without a rule file
    is an error: loading nothing from it would start a detector that detects nothing. Broken links are listed,
    so that reading them reports them."""
    path = PACKS.get(spec) or Path(spec)
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.suffix in RULE_SUFFIXES and (p.is_file() or _broken_link(p)) and not _hidden(p.relative_to(path))
        )  # fmt: skip
        if not files:
            raise RuleError("the directory holds no rule file (*.yaml, *.yml; hidden ones are skipped)", path=spec)
        return files
    if path.is_file():
        return [path]
    raise RuleError(f"no such rule pack ({', '.join(PACKS)}), file or directory", path=spec)


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _format_for(docs: list[object], path: Path, formats: Sequence[type[RuleFormat]]) -> type[RuleFormat]:
    for fmt in formats:
        if fmt.accepts(docs):
            return fmt
    names = ", ".join(f.name for f in formats)
    raise RuleError(f"not a rule file of a known format ({names})", path=str(path), line=1)


def load_rule_files(
    specs: Sequence[str] | None, formats: Sequence[type[RuleFormat]], options: LoadOptions | None = None
) -> list[Detector]:
    """Load every rule named by `specs` (default: the built-in pack), in order, each file in the first of
    `formats` that accepts it; collect all errors, then raise."""
    options = options or LoadOptions()
    errors: list[RuleError] = []
    collecting: dict[type[RuleFormat], RuleFormat] = {}
    for spec in specs or [BUILTIN]:
        try:
            files = rule_files(spec)
        except RuleError as exc:
            errors.append(exc)
            continue
        for path in files:
            try:
                docs = load_yaml_documents(read_rule_text(path), path=str(path))
                fmt = _format_for(docs, path, formats)
                if fmt not in collecting:
                    collecting[fmt] = fmt()
                collecting[fmt].add(path, docs)
            except RuleError as exc:
                errors.append(exc)
            except RuleErrors as exc:
                errors.extend(exc.errors)
    detectors: list[Detector] = []
    seen: set[str] = set()
    for fmt_instance in collecting.values():
        try:
            built = fmt_instance.finish(options)
        except RuleError as exc:
            errors.append(exc)
            continue
        except RuleErrors as exc:
            errors.extend(exc.errors)
            continue
        for detector in built:
            if detector.id in seen:
                errors.append(RuleError(f"duplicate rule id {detector.id!r}", path=_source_of(detector)))
                continue
            seen.add(detector.id)
            detectors.append(detector)
    if errors:
        raise RuleErrors(errors)
    return detectors


def _source_of(detector: Detector) -> str:
    return str(detector.source) if isinstance(detector, Sourced) else detector.id

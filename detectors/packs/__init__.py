"""Named rule packs shipped with auditwatch: `--rules NAME` loads the directory a name maps to.

`falco/` and `sigma/` hold third-party rule files exactly as upstream publishes them, with their licence and
an attribution note (NOTICE.md); `builtin` is auditwatch's own pack, kept in `detectors/rules/builtin/`.
A pack name wins over a relative path of the same name: write `./falco` for a directory called falco.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

_HERE = Path(__file__).parent

PACKS: Mapping[str, Path] = MappingProxyType(
    {
        "builtin": _HERE.parent / "rules" / "builtin",
        "falco": _HERE / "falco",  # k8s_audit_rules.yaml, then the GKE add-on that appends to it (name order)
        "sigma": _HERE / "sigma",
    }
)

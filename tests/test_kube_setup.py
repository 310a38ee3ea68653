"""The README's "Point a kube-apiserver at it" is what the end-to-end test runs (no cluster needed here)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.kube_cluster import SCRIPT, script_env
from tests.support.paths import ROOT

README = ROOT / "README.md"
TEMPLATE = ROOT / "audit-policies" / "webhook-kubeconfig-mtls.yaml"
MARKER = "<!-- apiserver-flags:"


def readme_apiserver_flags() -> list[tuple[str, str]]:
    text = README.read_text()
    block = text[text.index(MARKER) :].split("```sh", 1)[1].split("```", 1)[0]
    return [tuple(m.groups()) for m in re.finditer(r"(--audit-[a-z-]+)=(\S+)", block)]  # type: ignore[misc]


def script_apiserver_flags(run: Path) -> list[tuple[str, str]]:
    out = subprocess.run([str(SCRIPT), "apiserver-flags"], env=script_env({"KUBE_E2E_RUN": str(run)}),
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return [tuple(line.split("=", 1)) for line in out.split()]  # type: ignore[misc]


def test_readme_gives_the_apiserver_the_flags_the_e2e_test_uses(tmp_path: Path) -> None:
    readme = readme_apiserver_flags()
    script = script_apiserver_flags(tmp_path)
    assert [name for name, _ in readme] == [name for name, _ in script]
    assert len(readme) >= 6
    # Paths differ by design: the repo's files are relative in the README, the run's are in its directory.
    where = {"--audit-policy-file": str(ROOT) + "/", "--audit-webhook-config-file": str(tmp_path) + "/",
             "--audit-log-path": str(tmp_path) + "/"}  # fmt: skip
    for (name, documented), (_, used) in zip(readme, script, strict=True):
        if name == "--audit-policy-file":
            assert used == str(ROOT / documented)
        elif name in where:
            assert used.startswith(where[name]) and Path(used).name.split(".")[-1] == documented.split(".")[-1]
        else:
            assert used == documented, name


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {k: v for key, child in node.items() for k, v in _leaves(child, f"{path}.{key}").items()}
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in _leaves(child, f"{path}[{i}]").items()}
    return {path: node}


def test_e2e_webhook_kubeconfig_is_the_readme_template_with_url_and_paths_changed(tmp_path: Path) -> None:
    subprocess.run([str(SCRIPT), "pki"], env=script_env({"KUBE_E2E_RUN": str(tmp_path), "AUDITWATCH_PORT": "18999"}),
                   capture_output=True, check=True, timeout=120)  # fmt: skip
    template = _leaves(yaml.safe_load(TEMPLATE.read_text()))
    used = _leaves(yaml.safe_load((tmp_path / "webhook-kubeconfig.yaml").read_text()))
    assert template.keys() == used.keys()
    changed = {k for k in template if template[k] != used[k]}
    assert changed == {
        ".clusters[0].cluster.server",
        ".clusters[0].cluster.certificate-authority",
        ".users[0].user.client-certificate",
        ".users[0].user.client-key",
    }
    assert used[".clusters[0].cluster.server"] == "https://127.0.0.1:18999/audit/webhook"
    for key in changed - {".clusters[0].cluster.server"}:
        assert Path(used[key]).is_file(), key
    readme = README.read_text()
    assert "copy `audit-policies/webhook-kubeconfig-mtls.yaml`" in readme
    assert "change only its URL and its three file paths" in readme

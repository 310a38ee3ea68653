"""Named rule packs: what `--rules builtin|falco|sigma` loads, that the third-party files ship unmodified with
their licences, and that nothing in the repository reads rule files from outside it."""

from __future__ import annotations

import hashlib
import subprocess
import tomllib
from collections.abc import Callable
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.loading.loader import BUILTIN_DIR, rule_files
from detectors.packs import PACKS
from detectors.registry import load_rules
from tests.support.cli import CliRun
from tests.support.falco_events import create_pod
from tests.support.paths import ROOT

# git blob ids of the third-party files as taken from upstream (falcosecurity/plugins @ 0b3cbd8,
# SigmaHQ/sigma @ 8eaafff): a changed byte changes the id, so the packs stay unmodified.
UPSTREAM_BLOBS = {
    "falco/LICENSE": "261eeb9e9f8b2b4b0d119366dda99c6fd7d35c64",
    "falco/k8s_audit_rules.yaml": "89401e2991394ec4e4caa38bbec1bf5359a17c18",
    "falco/k8s_audit_rules_gke.yaml": "62d4b6fc468bad0cb6343e38eb6fddfc3aae2325",
    "sigma/LICENSE": "f816b6993cc0d9564fd4629823cbaac8bccaff17",
    "sigma/kubernetes_audit_change_admission_controller.yml": "e8a46fa4ac9422c41b98847d13f0ebab80ff9e17",
    "sigma/kubernetes_audit_cronjob_modification.yml": "74799fda004ae9798813b86eccff70bb1e1afd5d",
    "sigma/kubernetes_audit_deployment_deleted.yml": "804168a593b32ed37ba3c71976c68bb8492f2843",
    "sigma/kubernetes_audit_events_deleted.yml": "d1ae03aa9b601add7028e54ba32bba87a198fbe7",
    "sigma/kubernetes_audit_exec_into_container.yml": "2982425ad1cb46fa08bcd63565853db3b59e51a6",
    "sigma/kubernetes_audit_hostpath_mount.yml": "e27602225e759b74c2d315f079beda66d62a6368",
    "sigma/kubernetes_audit_pod_in_system_namespace.yml": "c226ad5d42f61660c3a9fc0ce9b1a0a01399df5c",
    "sigma/kubernetes_audit_potential_enumeration_activity.yml": "c7a743389006570db3dcd451195c618f8d815695",
    "sigma/kubernetes_audit_privileged_pod_creation.yml": "832b73dd72704c7bceb48bba9fc8f29023d96c85",
    "sigma/kubernetes_audit_rbac_permisions_listing.yml": "901e7bb7728008fe601a1c659a82feffc8f4fc17",
    "sigma/kubernetes_audit_rolebinding_modification.yml": "898a2124af104a9c388b54164dbc6e7bfe41d496",
    "sigma/kubernetes_audit_secrets_enumeration.yml": "5d10a6f12e60c6c2ea7a0af2fac4050a553b4a30",
    "sigma/kubernetes_audit_secrets_modified_or_deleted.yml": "790cec58ba8345c3f5952a554c9e31e243675e5d",
    "sigma/kubernetes_audit_serviceaccount_creation.yml": "35415f65eab4bc13ebc6263d284f21bc3e40f87d",
    "sigma/kubernetes_audit_sidecar_injection.yml": "79e767bda2fee6b9044338ec14b42952088bf284",
    "sigma/kubernetes_audit_unauthorized_unauthenticated_actions.yml": "9707d696bdaba50dd2f57e390008b2a76a914a71",
}
PACKS_DIR = ROOT / "detectors" / "packs"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's object id, not a security use


def test_pack_names_map_to_directories_inside_the_package() -> None:
    assert dict(PACKS) == {"builtin": BUILTIN_DIR, "falco": PACKS_DIR / "falco", "sigma": PACKS_DIR / "sigma"}
    assert BUILTIN_DIR == ROOT / "detectors" / "rules" / "builtin"
    assert [p.name for p in rule_files("falco")] == ["k8s_audit_rules.yaml", "k8s_audit_rules_gke.yaml"]
    assert len(rule_files("sigma")) == 16 and all(p.suffix == ".yml" for p in rule_files("sigma"))
    assert rule_files("builtin") == rule_files(str(BUILTIN_DIR))


def test_third_party_packs_ship_unmodified_with_licence_and_attribution() -> None:
    shipped = {
        f"{pack}/{p.name}": git_blob_id(p.read_bytes())
        for pack in ("falco", "sigma")
        for p in sorted(PACKS[pack].iterdir())
        if p.name != "NOTICE.md"
    }
    assert shipped == UPSTREAM_BLOBS
    falco = (PACKS["falco"] / "NOTICE.md").read_text()
    assert "falcosecurity/plugins" in falco and "0b3cbd8" in falco and "Apache License" in falco
    assert "plugins/k8saudit/rules/k8s_audit_rules.yaml" in falco and "unmodified" in falco
    sigma = (PACKS["sigma"] / "NOTICE.md").read_text()
    assert "SigmaHQ/sigma" in sigma and "8eaafff" in sigma and "Detection Rule License (DRL) 1.1" in sigma
    assert "rules/application/kubernetes/audit/" in sigma and "unmodified" in sigma


def test_the_packs_are_package_data_and_reach_the_image() -> None:
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["detectors"]
    for pack in ("falco", "sigma"):
        for path in PACKS[pack].iterdir():
            assert any(fnmatch(str(path.relative_to(ROOT / "detectors")), glob) for glob in globs), path
    # the image installs the package from a copy of detectors/, which .dockerignore does not trim
    assert "COPY detectors ./detectors" in (ROOT / "Dockerfile").read_text()
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()]
    assert not [pattern for pattern in ignored if "detectors" in pattern or "packs" in pattern]


def test_a_pack_name_wins_and_a_relative_path_names_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "falco" / "pod-exec-attach.yaml"
    own.parent.mkdir()
    own.write_bytes((BUILTIN_DIR / "pod-exec-attach.yaml").read_bytes())
    monkeypatch.chdir(tmp_path)
    assert rule_files("falco") == rule_files(str(PACKS["falco"]))
    assert [p.resolve() for p in rule_files("./falco")] == [own]
    assert [d.id for d in load_rules(["./falco"])] == ["pod-exec-attach"]


def test_an_unknown_pack_name_is_a_clear_error(run_cli: Callable[..., CliRun], tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(orjson.dumps(create_pod(privileged=True)) + b"\n")
    expected = "falcon: no such rule pack (builtin, falco, sigma), file or directory"
    run = run_cli("replay", str(log), "--rules", "falcon", "--output", "-")
    assert run.code == 2 and run.out == ""
    assert run.err == f"auditwatch: cannot load rules: {expected}\n"
    run = run_cli("rules", "lint", "builtin", "falcon")
    assert run.code == 1 and f"error: {expected}" in run.out


def test_replay_runs_all_three_packs_together(run_cli: Callable[..., CliRun], tmp_path: Path) -> None:
    pod = create_pod(privileged=True)
    pod["requestObject"]["spec"]["containers"][0]["securityContext"]["capabilities"] = {"add": ["SYS_ADMIN"]}
    log = tmp_path / "audit.log"
    log.write_bytes(orjson.dumps(pod) + b"\n")
    run = run_cli("replay", str(log), "--rules", "builtin", "--rules", "falco", "--rules", "sigma", "--output", "-")
    assert run.code == 0, run.err
    alerts = [orjson.loads(line) for line in run.out.splitlines() if line.strip()]
    assert all(a["audit_id"] == pod["auditID"] for a in alerts)
    # one alert of each format at least: auditwatch's, Falco's (first match) and Sigma's
    assert {"privileged-container", "falco:create-privileged-pod", "sigma:c5cd1b20-36bb-488d-8c05-486be3d0cb97"} <= {
        a["rule_id"] for a in alerts
    }


def test_rules_test_lint_and_policy_check_take_the_packs(run_cli: Callable[..., CliRun]) -> None:
    run = run_cli("rules", "test", "builtin", "falco", "sigma")
    assert run.code == 0 and ", 0 failed (80 rules, 17 without inline tests)" in run.out  # 63 + 1 Falco + 16 Sigma
    run = run_cli("rules", "lint", "falco")
    assert run.code == 0 and run.out == "1 rules, 0 problem(s)\n"
    policy = str(ROOT / "audit-policies" / "recommended.yaml")
    run = run_cli("policy", "check", policy, "--rules", "builtin", "--rules", "falco", "--rules", "sigma", "--json")
    assert run.code == 0, run.out
    report = orjson.loads(run.out)
    assert report["errors"] == [] and report["blind_rules"]


@pytest.mark.parametrize(("command", "target"), [("serve", "auditwatch.server.create_serve_app"),
                                                  ("detect", "auditwatch.consumer.Consumer")])  # fmt: skip
def test_serve_and_detect_load_the_packs(
    command: str, target: str, run_cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    seen: list[Any] = []

    class Started(Exception):
        """Stops the command once it has its pipeline, before it serves or consumes."""

    def capture(*_: Any, pipeline: Any, **__: Any) -> Any:
        seen.append(pipeline)
        raise Started

    monkeypatch.setattr(target, capture)
    argv = [command, "--db", db_url, "--rules", "builtin", "--rules", "falco", "--rules", "sigma"]
    with pytest.raises(Started):
        run_cli(*argv, *(["--kafka", "127.0.0.1:1"] if command == "detect" else []))
    (pipeline,) = seen
    ids = [d.id for d in pipeline.detectors]
    assert len(ids) == 80 and "falco" in ids and "pod-exec-attach" in ids
    assert sum(i.startswith("sigma:") for i in ids) == 16


def test_nothing_in_the_repository_reads_rules_from_outside_it() -> None:
    # built from parts, so that this file does not match itself
    forbidden = [".." + "/shared", "/work" + "/shared", "shared" + "/rules", "shared" + "/reference"]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                            capture_output=True, check=True).stdout  # fmt: skip
    files = [ROOT / name for name in listed.decode().split("\0") if name]
    assert len(files) > 100
    offenders = {
        f"{path.relative_to(ROOT)}: {needle}"
        for path in files
        if path.is_file()
        for needle in forbidden
        if needle.encode() in path.read_bytes()
    }
    assert offenders == set()

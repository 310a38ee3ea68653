"""The Kubernetes manifests under deploy/, rendered by the real `kubectl kustomize`, and what every workload in
them must have: Pod Security "restricted" at pod and container level, the image's numeric UID, a read-only root
filesystem, resources, probes on its HTTPS port (detect: its metrics port), and a command line and settings auditwatch accepts."""

from __future__ import annotations

import contextlib
import io
import subprocess
from pathlib import Path
from typing import Any

import yaml

from auditwatch.cli import build_parser
from auditwatch.settings import Settings
from tests.support.paths import ROOT

DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"
# every kustomization a user applies; the example overlay is what the README tells operators to copy
VARIANTS = ("embedded", "embedded-postgres", "distributed", "examples/my-cluster")
# the paths each role's liveness and readiness probes ask; detect's one listener is its metrics one, which has
# /healthz but no /readyz (detect.yaml says why)
PROBE_PATHS = {"detect": ("/healthz", "/healthz")}
DEFAULT_PROBE_PATHS = ("/healthz", "/readyz")
# the volume types Pod Security "restricted" allows (pod-security-admission, check_restrictedVolumes.go)
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
Doc = dict[str, Any]


def dockerfile_uid() -> int:
    """The numeric user of the image's last USER line (the kubelet cannot check that a user name is non-root)."""
    users = [line.split(None, 1)[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("USER ")]
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"the Dockerfile's USER must be numeric for runAsNonRoot: {users[-1]}"
    return int(uid)


def render(kubectl: Path, directory: Path) -> list[Doc]:
    """`kubectl kustomize DIRECTORY`, parsed."""
    done = subprocess.run([str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=60,
                          check=False)  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed: {done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]


def role(deployment: Doc) -> str:
    return str(deployment["metadata"]["labels"]["app.kubernetes.io/component"])


def _restricted(context: dict[str, Any], where: str, uid: int) -> list[str]:
    problems = []
    if context.get("runAsNonRoot") is not True:
        problems.append(f"{where}: runAsNonRoot is not true")
    if context.get("runAsUser") != uid:
        problems.append(f"{where}: runAsUser {context.get('runAsUser')} is not the image's UID {uid}")
    if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    return problems


def _probes(container: Doc, where: str, paths: tuple[str, str]) -> list[str]:
    scheme = "HTTPS" if any(arg.startswith("--tls-cert") for arg in container.get("args", [])) else "HTTP"
    ports = {port["name"] for port in container["ports"]}
    problems = []
    for probe, path in zip(("livenessProbe", "readinessProbe"), paths, strict=True):
        get = (container.get(probe) or {}).get("httpGet") or {}
        if (get.get("path"), get.get("scheme", "HTTP")) != (path, scheme) or get.get("port") not in ports:
            problems.append(f"{where}: {probe} is not GET {path} over {scheme} on the container's port")
    return problems


def _command_line(container: Doc, where: str, config_maps: dict[str, Doc]) -> list[str]:
    problems = []
    args = container.get("args", [])
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            build_parser().parse_args(args)
    except SystemExit:
        problems.append(f"{where}: auditwatch refuses its args: {err.getvalue().strip()}")
    if container.get("ports") and ("--insecure" in args or not any(a.startswith("--token-file") for a in args)):
        problems.append(f"{where}: a listener outside loopback without --token-file (or with --insecure)")
    names = [env["name"] for env in container.get("env", [])]
    for source in container.get("envFrom", []):
        names += config_maps[source["configMapRef"]["name"]]["data"] if "configMapRef" in source else []
    for name in names:
        if not (name.startswith("AUDITWATCH_") and name.removeprefix("AUDITWATCH_").lower() in Settings.model_fields):
            problems.append(f"{where}: {name} is no auditwatch setting")
    return problems


def workload_problems(deployment: Doc, docs: list[Doc]) -> list[str]:
    """Everything a Deployment lacks of what deploy/ promises (empty: nothing)."""
    uid = dockerfile_uid()
    name = deployment["metadata"]["name"]
    spec = deployment["spec"]["template"]["spec"]
    problems = _restricted(spec.get("securityContext") or {}, f"{name} pod", uid)
    if spec.get("automountServiceAccountToken") is not False:
        problems.append(f"{name}: the service account token is mounted")
    if spec.get("enableServiceLinks") is not False:
        problems.append(f"{name}: service links would add AUDITWATCH_*_PORT variables (read as settings)")
    for volume in spec.get("volumes", []):
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES:
            problems.append(f"{name}: volume {volume['name']} is of a type restricted forbids")
    config_maps = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "ConfigMap")}
    for container in spec.get("initContainers", []) + spec["containers"]:
        where = f"{name}/{container['name']}"
        context = container.get("securityContext") or {}
        problems += _restricted(context, where, uid)
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: the root filesystem is writable")
        capabilities = context.get("capabilities") or {}
        if capabilities.get("drop") != ["ALL"] or capabilities.get("add"):
            problems.append(f"{where}: capabilities are not exactly drop ALL")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            if set(resources.get(kind) or {}) < {"cpu", "memory"}:
                problems.append(f"{where}: no cpu and memory {kind}")
        if container.get("ports"):
            problems += _probes(container, where, PROBE_PATHS.get(role(deployment), DEFAULT_PROBE_PATHS))
        else:
            problems.append(f"{where}: no port, hence no probes")
        problems += _command_line(container, where, config_maps)
    return problems

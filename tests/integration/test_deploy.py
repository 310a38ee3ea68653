"""deploy/ against a real kube-apiserver: every variant, rendered by the real `kubectl kustomize`, is accepted by
`kubectl apply --dry-run=server --validate=strict` in a namespace enforcing Pod Security "restricted", with no
warning; a planted violation is seen. The apiserver side (deploy/apiserver/webhook-kubeconfig.yaml) delivers
audit events to `auditwatch serve` started with the embedded Deployment's own command line.

The kube binaries come from `scripts/kube-e2e.sh build` (scripts/test.sh builds them before pytest); the
apiserver runs on loopback ports (tests/support/kube_cluster.py).
"""

from __future__ import annotations

import re
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
import yaml

from tests.support.kube_cluster import KUBECONFIGS, KubeCluster, require_kube_binaries
from tests.support.manifests import DEPLOY, VARIANTS, Doc, dockerfile_uid, of_kind, render, role, workload_problems
from tests.support.processes import Proc
from tests.support.prometheus import prometheus_tool
from tests.support.tls import server_certificate

pytestmark = pytest.mark.integration

NAMESPACE = yaml.safe_load((DEPLOY / "namespace.yaml").read_text())
KUBECONFIG_TEMPLATE = DEPLOY / "apiserver" / "webhook-kubeconfig.yaml"
CERT_MANAGER_EXAMPLE = DEPLOY / "examples" / "cert-manager" / "certificate.yaml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "scrape-config.yaml"
POD_MONITOR = DEPLOY / "examples" / "prometheus-operator" / "podmonitor.yaml"
DRY_RUN = ("apply", "--dry-run=server", "--validate=strict", "-f", "-")


@dataclass(frozen=True)
class Setup:
    cluster: KubeCluster
    serve: Proc
    ca: Path
    read_token: str


def kubectl(cluster: KubeCluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [str(cluster.bin / "kubectl"), f"--kubeconfig={cluster.run / KUBECONFIGS['admin']}",
           "--request-timeout=30s", *args]  # fmt: skip
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=cluster.kubectl_env, timeout=90)


def dry_run(cluster: KubeCluster, docs: list[Doc]) -> subprocess.CompletedProcess[str]:
    stream = "\n---\n".join(orjson.dumps(doc).decode() for doc in docs)
    return kubectl(cluster, "-n", NAMESPACE["metadata"]["name"], *DRY_RUN, stdin=stream)


def pods_of(docs: list[Doc]) -> list[Doc]:
    """Each Deployment's pod as a bare Pod: Pod Security enforces on Pods (it only warns on Deployments)."""
    return [{"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": d["metadata"]["name"], "labels": d["spec"]["template"]["metadata"]["labels"]},
             "spec": d["spec"]["template"]["spec"]} for d in of_kind(docs, "Deployment")]  # fmt: skip


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def kubectl_bin() -> Path:
    return require_kube_binaries() / "kubectl"


@pytest.fixture(scope="module")
def rendered(kubectl_bin: Path) -> dict[str, list[Doc]]:
    return {variant: render(kubectl_bin, DEPLOY / variant) for variant in VARIANTS}


def local_command(container: Doc, tmp: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """The container's args and env with its mounts moved under `tmp` and its listener on loopback `port`."""
    mounts = {m["mountPath"]: str(tmp / m["name"]) for m in container["volumeMounts"]}

    def local(value: str) -> str:
        for mount, there in mounts.items():
            value = value.replace(f"{mount}/", f"{there}/")
        return value

    args = [local(arg) for arg in container["args"]]
    args = [re.sub(r"^--host=.*", "--host=127.0.0.1", re.sub(r"^--port=.*", f"--port={port}", a)) for a in args]
    env = {e["name"]: local(e["value"]) for e in container["env"]}
    for there in mounts.values():
        Path(there).mkdir(parents=True, exist_ok=True)
    return args, env


def webhook_kubeconfig(cluster: KubeCluster, ca: Path, token_file: Path) -> Path:
    """deploy/apiserver's template with only the server's address and the two file paths changed."""
    config = yaml.safe_load(KUBECONFIG_TEMPLATE.read_text())
    cluster_entry = config["clusters"][0]["cluster"]
    cluster_entry["server"] = re.sub(r"//[^/]+/", f"//127.0.0.1:{cluster.auditwatch_port}/", cluster_entry["server"])
    cluster_entry["certificate-authority"] = str(ca)
    config["users"][0]["user"]["tokenFile"] = str(token_file)
    path = cluster.run.parent / "webhook-kubeconfig.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def setup(rendered: dict[str, list[Doc]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """`auditwatch serve` as deploy/embedded runs it, and a kube-apiserver auditing to it as deploy/apiserver says."""
    tmp = tmp_path_factory.mktemp("deploy")
    cluster = KubeCluster(tmp / "kube", require_kube_binaries())
    (serve_deployment,) = of_kind(rendered["embedded"], "Deployment")
    (container,) = serve_deployment["spec"]["template"]["spec"]["containers"]
    args, env = local_command(container, tmp / "pod", cluster.auditwatch_port)
    service = f"auditwatch-webhook.{NAMESPACE['metadata']['name']}.svc"
    ca, cert, key = server_certificate(tmp, "auditwatch-webhook", f"DNS:{service}")
    shutil.copy(cert, tmp / "pod" / "tls" / "tls.crt")
    shutil.copy(key, tmp / "pod" / "tls" / "tls.key")
    write_token, read_token = secrets.token_hex(24), secrets.token_hex(24)
    (tmp / "pod" / "tokens" / "read-write").write_text(write_token + "\n")
    (tmp / "pod" / "tokens" / "read-only").write_text(read_token + "\n")
    serve = Proc([*args, "--record-receipts"], tmp / "serve.log", env)
    try:
        serve.wait_http(f"https://127.0.0.1:{cluster.auditwatch_port}/readyz", verify=_context(ca), timeout_s=60)
        cluster.env["KUBE_E2E_WEBHOOK_KUBECONFIG"] = str(webhook_kubeconfig(cluster, ca, tmp / "pod/tokens/read-write"))
        cluster.start()
        cluster.wait_ready()
        created = kubectl(cluster, "apply", "-f", str(DEPLOY / "namespace.yaml"))
        assert created.returncode == 0, created.stderr
        yield Setup(cluster, serve, ca, read_token)
    finally:
        cluster.stop()
        serve.stop()


def _context(ca: Path) -> ssl.SSLContext:
    """Trusts auditwatch's CA without checking the name (127.0.0.1 is not in the certificate), as a probe does."""
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    return context


# ------------------------------------------------------------------------------------------ the real apiserver
def test_the_namespace_enforces_restricted(setup: Setup) -> None:
    got = kubectl(setup.cluster, "get", "namespace", NAMESPACE["metadata"]["name"], "-o", "json")
    labels = orjson.loads(got.stdout)["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


@pytest.mark.parametrize("variant", VARIANTS)
def test_dry_run_accepts_every_object_without_warning(
    setup: Setup, rendered: dict[str, list[Doc]], variant: str
) -> None:
    docs = rendered[variant]
    done = dry_run(setup.cluster, docs)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr and done.stderr.strip() == "", done.stderr
    accepted = [line for line in done.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), done.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_passes_restricted_enforcement(setup: Setup, rendered: dict[str, list[Doc]], variant: str) -> None:
    pods = pods_of(rendered[variant])
    done = dry_run(setup.cluster, pods)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    assert done.stdout.count("created (server dry run)") == len(pods) >= 1


def test_a_planted_violation_is_seen(setup: Setup, kubectl_bin: Path, tmp_path: Path) -> None:
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    patch = tmp_path / "deploy" / "base" / "restricted-pod.yaml"
    patch.write_text(re.sub(r"\n\s*runAsNonRoot: true", "", patch.read_text()))
    docs = render(kubectl_bin, tmp_path / "deploy" / "embedded")
    warned = dry_run(setup.cluster, docs)
    assert 'Warning: would violate PodSecurity "restricted' in warned.stderr and "runAsNonRoot" in warned.stderr
    refused = dry_run(setup.cluster, pods_of(docs))
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    assert any("runAsNonRoot" in problem for problem in workload_problems(of_kind(docs, "Deployment")[0], docs))


def test_an_unknown_field_is_refused(setup: Setup, rendered: dict[str, list[Doc]]) -> None:
    (deployment,) = of_kind(orjson.loads(orjson.dumps(rendered["embedded"])), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsNonRot"] = True
    done = dry_run(setup.cluster, [deployment])
    assert done.returncode != 0, done.stdout
    assert 'unknown field "spec.template.spec.containers[0].securityContext.runAsNonRot"' in done.stderr


def test_the_webhook_kubeconfig_delivers_audit_events(setup: Setup) -> None:
    """The apiserver reaches auditwatch by address, checks its certificate against tls-server-name, sends the
    token; the probes' paths answer without a token, as the kubelet asks them."""
    base = f"https://127.0.0.1:{setup.cluster.auditwatch_port}"
    with httpx.Client(base_url=base, verify=_context(setup.ca), timeout=10) as client:
        for path in ("/healthz", "/readyz"):
            assert client.get(path).status_code == 200
        assert client.get("/api/v1/receipts").status_code == 401
        headers = {"Authorization": f"Bearer {setup.read_token}"}
        deadline = time.monotonic() + 30
        while (total := client.get("/api/v1/receipts", headers=headers).json()["total"]) == 0:
            assert time.monotonic() < deadline, setup.serve.output()[-3000:] + setup.cluster.logs()
            time.sleep(0.5)
    assert total > 0


# ------------------------------------------------------------------------------------------ rendered manifests
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_workload_is_restricted_resourced_and_probed(rendered: dict[str, list[Doc]], variant: str) -> None:
    docs = rendered[variant]
    deployments = of_kind(docs, "Deployment")
    assert deployments
    assert [problem for d in deployments for problem in workload_problems(d, docs)] == []


def test_manifests_run_as_the_images_uid(rendered: dict[str, list[Doc]]) -> None:
    uid = dockerfile_uid()
    for docs in rendered.values():
        for deployment in of_kind(docs, "Deployment"):
            spec = deployment["spec"]["template"]["spec"]
            users = {spec["securityContext"]["runAsUser"]} | {
                c["securityContext"]["runAsUser"] for c in spec["containers"]
            }
            assert users == {uid}, deployment["metadata"]["name"]


def test_embedded_runs_one_writer(rendered: dict[str, list[Doc]]) -> None:
    for variant in ("embedded", "embedded-postgres"):
        (serve,) = of_kind(rendered[variant], "Deployment")
        assert serve["spec"]["replicas"] == 1 and serve["spec"]["strategy"] == {"type": "Recreate"}
    assert of_kind(rendered["embedded"], "PersistentVolumeClaim")
    assert not of_kind(rendered["embedded-postgres"], "PersistentVolumeClaim")
    (serve,) = of_kind(rendered["embedded-postgres"], "Deployment")
    assert_db_url_from_the_secret_file(serve)


def assert_db_url_from_the_secret_file(deployment: Doc) -> None:
    """The URL (with its password) read from the Secret auditwatch-db as a file, never put in the environment."""
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert "AUDITWATCH_DB_URL" not in env, deployment["metadata"]["name"]
    path = Path(env["AUDITWATCH_DB_URL_FILE"]["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "auditwatch-db" and volume["secret"]["items"] == [
        {"key": "url", "path": path.name}
    ]


def test_distributed_reads_the_db_url_from_a_file(rendered: dict[str, list[Doc]]) -> None:
    for deployment in of_kind(rendered["distributed"], "Deployment"):
        if role(deployment) != "ingest":  # ingest has no database
            assert_db_url_from_the_secret_file(deployment)


def test_distributed_pieces(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["distributed"]
    deployments = {role(d): d for d in of_kind(docs, "Deployment")}
    assert set(deployments) == {"ingest", "detect", "api"}
    (config,) = of_kind(docs, "ConfigMap")
    assert deployments["detect"]["spec"]["replicas"] <= int(config["data"]["AUDITWATCH_PARTITIONS"])
    budgets = {
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for pdb in of_kind(docs, "PodDisruptionBudget")
    }
    assert budgets == set(deployments)


@pytest.mark.parametrize("variant", VARIANTS)
def test_services_and_policies_select_pods(rendered: dict[str, list[Doc]], variant: str) -> None:
    docs = rendered[variant]
    pods = [
        (d["spec"]["template"]["metadata"]["labels"], d["spec"]["template"]["spec"])
        for d in of_kind(docs, "Deployment")
    ]
    for service in of_kind(docs, "Service"):
        selector, target = service["spec"]["selector"], service["spec"]["ports"][0]["targetPort"]
        chosen = [spec for labels, spec in pods if selector.items() <= labels.items()]
        assert chosen, f"{service['metadata']['name']} selects no pod"
        assert all(target in {p["name"] for p in spec["containers"][0]["ports"]} for spec in chosen)
    for policy in of_kind(docs, "NetworkPolicy"):
        match = policy["spec"]["podSelector"].get("matchLabels", {})
        assert any(match.items() <= labels.items() for labels, _ in pods), policy["metadata"]["name"]
    assert "auditwatch-default-deny" in {p["metadata"]["name"] for p in of_kind(docs, "NetworkPolicy")}


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_api_permissions(rendered: dict[str, list[Doc]], variant: str) -> None:
    kinds = {doc["kind"] for doc in rendered[variant]}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Secret"}
    (account,) = of_kind(rendered[variant], "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_cert_manager_example_makes_the_secret_the_pods_mount(rendered: dict[str, list[Doc]]) -> None:
    certificates = [d for d in yaml.safe_load_all(CERT_MANAGER_EXAMPLE.read_text()) if d["kind"] == "Certificate"]
    serving = next(c for c in certificates if not c["spec"].get("isCA"))
    mounted = {v["secret"]["secretName"] for d in of_kind(rendered["embedded"], "Deployment")
               for v in d["spec"]["template"]["spec"]["volumes"] if "secret" in v}  # fmt: skip
    assert serving["spec"]["secretName"] in mounted
    server_name = yaml.safe_load(KUBECONFIG_TEMPLATE.read_text())["clusters"][0]["cluster"]["tls-server-name"]
    assert server_name in serving["spec"]["dnsNames"]


def test_the_kubeconfig_templates_address_is_the_example_clusterip(rendered: dict[str, list[Doc]]) -> None:
    cluster = yaml.safe_load(KUBECONFIG_TEMPLATE.read_text())["clusters"][0]["cluster"]
    (webhook,) = [
        s for s in of_kind(rendered["examples/my-cluster"], "Service") if s["metadata"]["name"] == "auditwatch-webhook"
    ]
    url = urlsplit(cluster["server"])
    assert (url.hostname, url.port, url.path) == (
        webhook["spec"]["clusterIP"],
        webhook["spec"]["ports"][0]["port"],
        "/audit/webhook",
    )
    assert cluster["tls-server-name"] == f"auditwatch-webhook.{NAMESPACE['metadata']['name']}.svc"


# ------------------------------------------------------------------------------------------ metrics
def metrics_ports(docs: list[Doc]) -> dict[str, str]:
    """Each Deployment's role -> the name of its container's one port, where its /metrics is."""
    return {
        role(d): d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["name"] for d in of_kind(docs, "Deployment")
    }


def test_detect_serves_metrics_with_the_read_only_token_alone(rendered: dict[str, list[Doc]]) -> None:
    """Without a metrics port, AuditwatchConsumerLag and AuditwatchStoreUnavailable could never fire for detect;
    its listener serves only reads, so the webhook's read-write token is not even mounted."""
    docs = rendered["distributed"]
    (detect,) = [d for d in of_kind(docs, "Deployment") if role(d) == "detect"]
    spec = detect["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    args = container["args"]
    assert {"--metrics-host=0.0.0.0", "--metrics-port=9108", "--token-file=/etc/auditwatch/tokens/read-only"} <= set(
        args
    )
    assert any(a.startswith("--tls-cert=") for a in args) and not any(a.startswith("--read-token-file") for a in args)
    assert container["ports"] == [{"name": "metrics", "containerPort": 9108, "protocol": "TCP"}]
    (tokens,) = [v["secret"] for v in spec["volumes"] if v["name"] == "tokens"]
    assert tokens["items"] == [{"key": "read-only", "path": "read-only"}]
    (service,) = [s for s in of_kind(docs, "Service") if s["metadata"]["name"] == "auditwatch-detect-metrics"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_ingest_and_api_take_the_read_only_token(rendered: dict[str, list[Doc]]) -> None:
    for deployment in of_kind(rendered["distributed"], "Deployment"):
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        if role(deployment) != "detect":
            assert "--read-token-file=/etc/auditwatch/tokens/read-only" in args, role(deployment)


@pytest.mark.parametrize("variant", VARIANTS)
def test_prometheus_may_reach_every_metrics_port(rendered: dict[str, list[Doc]], variant: str) -> None:
    docs = rendered[variant]
    (policy,) = [
        p for p in of_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == "auditwatch-metrics-from-prometheus"
    ]
    (rule,) = policy["spec"]["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"auditwatch.io/metrics-access": "true"}}}]
    assert set(metrics_ports(docs).values()) <= {port["port"] for port in rule["ports"]}


def test_the_scrape_config_is_valid_and_keeps_every_metrics_port(
    rendered: dict[str, list[Doc]], tmp_path: Path
) -> None:
    config = yaml.safe_load(SCRAPE_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert job["authorization"]["credentials_file"].endswith("/read-only")  # never the read-write token
    # Debian's promtool is built without Kubernetes discovery: checked here, the rest by promtool with a static
    # target in its place
    (discovery,) = job.pop("kubernetes_sd_configs")
    assert discovery == {"role": "pod", "namespaces": {"names": [NAMESPACE["metadata"]["name"]]}}
    job["static_configs"] = [{"targets": ["127.0.0.1:8443"]}]
    # promtool wants the files it names to exist: the same configuration with them under tmp_path
    for section, key in (("authorization", "credentials_file"), ("tls_config", "ca_file")):
        there = tmp_path / Path(job[section][key]).name
        there.write_text("x\n")
        job[section][key] = str(there)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run([prometheus_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    relabel = {tuple(r["source_labels"]): r for r in job["relabel_configs"]}
    kept = re.compile(relabel[("__meta_kubernetes_pod_container_port_name",)]["regex"])
    job_name = relabel[("__meta_kubernetes_pod_label_app_kubernetes_io_component",)]
    for docs in rendered.values():
        for component, port in metrics_ports(docs).items():
            assert kept.fullmatch(port), (component, port)
            assert re.fullmatch("auditwatch.*", job_name["replacement"].replace("$1", component))


def test_the_pod_monitor_scrapes_every_metrics_port_with_the_read_only_token(rendered: dict[str, list[Doc]]) -> None:
    (monitor,) = yaml.safe_load_all(POD_MONITOR.read_text())
    endpoints = monitor["spec"]["podMetricsEndpoints"]
    for endpoint in endpoints:
        assert endpoint["authorization"]["credentials"] == {"name": "auditwatch-tokens", "key": "read-only"}
        assert endpoint["scheme"] == "https" and endpoint["path"] == "/metrics"
    for docs in rendered.values():
        for deployment in of_kind(docs, "Deployment"):
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert set(metrics_ports(docs).values()) <= {e["port"] for e in endpoints}


# measured: a started process holds up to 200 MB; a parsed webhook body ~4.25x its size (40 MB batch: +170 MB)
STARTED_MB, BODY_EXPANSION = 200, 4.25


@pytest.mark.parametrize("variant", VARIANTS)
def test_webhook_bodies_in_flight_fit_the_memory_limit(rendered: dict[str, list[Doc]], variant: str) -> None:
    """--max-body-bytes alone bounds one body, not how many are parsed at once: the budget bounds the total."""
    for deployment in of_kind(rendered[variant], "Deployment"):
        if role(deployment) not in {"serve", "ingest"}:
            continue
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        flags = dict(arg.split("=", 1) for arg in container["args"] if "=" in arg)
        body, budget = int(flags["--max-body-bytes"]), int(flags["--body-budget-bytes"])
        limit = container["resources"]["limits"]["memory"]
        assert limit.endswith("Mi") or limit.endswith("Gi"), limit
        limit_mb = int(limit[:-2]) * (1024 if limit.endswith("Gi") else 1) * 1.048576
        assert body <= budget and STARTED_MB + budget / 1e6 * BODY_EXPANSION < 0.8 * limit_mb, deployment["metadata"]

"""What a typical site runs besides its own applications: the platform add-ons (as Helm releases that
Flux's helm-controller keeps installed), their CRDs, ClusterRoles and admission webhooks, and the daily
CronJobs. Data only; versions and images are those of late 2024 releases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from simulation.noisy.objects import rule


@dataclass(frozen=True)
class Workload:
    ns: str
    name: str
    repository: str
    version: str
    replicas: int = 1
    tag_prefix: str = "v"  # tags like v1.16.2


@dataclass(frozen=True)
class Release:
    """A Helm release of an add-on: what an upgrade re-applies."""

    name: str
    ns: str
    chart_version: str
    workloads: tuple[Workload, ...]
    crds: tuple[tuple[str, str, str, str], ...]  # (plural, group, kind, version)
    cluster_roles: tuple[tuple[str, tuple[dict[str, Any], ...]], ...]
    webhooks: tuple[tuple[str, str, tuple[str, ...]], ...]  # (kind, name, webhook names)


_SECRETS_RW = rule([""], ["secrets"], ["get", "list", "watch", "create", "update", "delete", "patch"])
_EVENTS = rule(["", "events.k8s.io"], ["events"], ["create", "patch"])

RELEASES: Final = (
    Release(
        "cert-manager",
        "cert-manager",
        "v1.16.2",
        (
            Workload("cert-manager", "cert-manager", "quay.io/jetstack/cert-manager-controller", "1.16.2"),
            Workload("cert-manager", "cert-manager-cainjector", "quay.io/jetstack/cert-manager-cainjector", "1.16.2"),
            Workload("cert-manager", "cert-manager-webhook", "quay.io/jetstack/cert-manager-webhook", "1.16.2"),
        ),
        (
            ("certificates", "cert-manager.io", "Certificate", "v1"),
            ("certificaterequests", "cert-manager.io", "CertificateRequest", "v1"),
            ("issuers", "cert-manager.io", "Issuer", "v1"),
            ("clusterissuers", "cert-manager.io", "ClusterIssuer", "v1"),
            ("orders", "acme.cert-manager.io", "Order", "v1"),
            ("challenges", "acme.cert-manager.io", "Challenge", "v1"),
        ),
        (
            ("cert-manager-controller-certificates", (rule(["cert-manager.io"], ["certificates"], ["*"]), _SECRETS_RW)),
            ("cert-manager-controller-issuers", (rule(["cert-manager.io"], ["issuers"], ["update", "patch"]), _EVENTS)),
            (
                "cert-manager-cainjector",
                (
                    rule(
                        ["admissionregistration.k8s.io"],
                        ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
                        ["get", "list", "watch", "update", "patch"],
                    ),
                    rule(
                        ["apiextensions.k8s.io"],
                        ["customresourcedefinitions"],
                        ["get", "list", "watch", "update", "patch"],
                    ),
                ),
            ),
        ),
        (
            ("ValidatingWebhookConfiguration", "cert-manager-webhook", ("webhook.cert-manager.io",)),
            ("MutatingWebhookConfiguration", "cert-manager-webhook", ("webhook.cert-manager.io",)),
        ),
    ),
    Release(
        "kyverno",
        "kyverno",
        "3.3.4",
        (
            Workload("kyverno", "kyverno-admission-controller", "ghcr.io/kyverno/kyverno", "1.13.2", 2),
            Workload("kyverno", "kyverno-background-controller", "ghcr.io/kyverno/background-controller", "1.13.2"),
            Workload("kyverno", "kyverno-cleanup-controller", "ghcr.io/kyverno/cleanup-controller", "1.13.2"),
        ),
        (
            ("clusterpolicies", "kyverno.io", "ClusterPolicy", "v1"),
            ("policies", "kyverno.io", "Policy", "v1"),
            ("policyexceptions", "kyverno.io", "PolicyException", "v2"),
        ),
        (
            ("kyverno:admission-controller:core", (rule(["*"], ["*"], ["get", "list", "watch"]), _SECRETS_RW)),
            (
                "kyverno:background-controller:core",
                (rule(["*"], ["*"], ["get", "list", "watch", "create", "update", "delete"]),),
            ),
        ),
        (),  # kyverno writes its own webhook configurations
    ),
    Release(
        "external-secrets",
        "external-secrets",
        "0.10.7",
        (Workload("external-secrets", "external-secrets", "ghcr.io/external-secrets/external-secrets", "0.10.7"),),
        (
            ("externalsecrets", "external-secrets.io", "ExternalSecret", "v1beta1"),
            ("secretstores", "external-secrets.io", "SecretStore", "v1beta1"),
            ("clustersecretstores", "external-secrets.io", "ClusterSecretStore", "v1beta1"),
        ),
        (("external-secrets-controller", (_SECRETS_RW, rule(["external-secrets.io"], ["*"], ["*"]))),),
        (
            (
                "ValidatingWebhookConfiguration",
                "externalsecret-validate",
                ("validate.externalsecret.external-secrets.io",),
            ),
        ),
    ),
    Release(
        "ingress-nginx",
        "ingress-nginx",
        "4.11.3",
        (
            Workload(
                "ingress-nginx", "ingress-nginx-controller", "registry.k8s.io/ingress-nginx/controller", "1.11.3", 2
            ),
        ),
        (),
        (("ingress-nginx", (rule([""], ["configmaps", "endpoints", "nodes", "pods", "secrets"], ["list", "watch"]),)),),
        (("ValidatingWebhookConfiguration", "ingress-nginx-admission", ("validate.nginx.ingress.kubernetes.io",)),),
    ),
    Release(
        "monitoring",
        "monitoring",
        "66.2.1",
        (
            Workload("monitoring", "prometheus-operator", "quay.io/prometheus-operator/prometheus-operator", "0.78.2"),
            Workload(
                "monitoring", "kube-state-metrics", "registry.k8s.io/kube-state-metrics/kube-state-metrics", "2.13.0"
            ),
            Workload("monitoring", "grafana", "docker.io/grafana/grafana", "11.3.1", tag_prefix=""),
        ),
        (
            ("servicemonitors", "monitoring.coreos.com", "ServiceMonitor", "v1"),
            ("prometheusrules", "monitoring.coreos.com", "PrometheusRule", "v1"),
            ("podmonitors", "monitoring.coreos.com", "PodMonitor", "v1"),
        ),
        (
            (
                "prometheus",
                (
                    rule(
                        [""],
                        ["nodes", "nodes/metrics", "nodes/proxy", "services", "endpoints", "pods"],
                        ["get", "list", "watch"],
                    ),
                    {"verbs": ["get"], "nonResourceURLs": ["/metrics", "/metrics/cadvisor"]},
                ),
            ),
        ),
        (("MutatingWebhookConfiguration", "monitoring-admission", ("prometheusrulemutate.monitoring.coreos.com",)),),
    ),
)

#: (namespace index, or -1 for `ci`; name; hour of the daily run, UTC; image, None for our own; command)
CRON_JOBS: Final = (
    (
        0,
        "db-backup",
        1,
        "docker.io/library/postgres:16.4",
        ["sh", "-c", "pg_dump $DATABASE_URL | gzip > /backup/db.gz"],
    ),
    (1, "nightly-report", 2, None, ["/app/report", "--since=24h"]),
    (2, "cache-warmup", 5, None, ["/app/warmup"]),
    (
        -1,
        "cleanup-old-releases",
        4,
        "docker.io/bitnami/kubectl:1.31.3",
        ["kubectl", "delete", "jobs", "--field-selector=status.successful=1"],
    ),
)

#: Certificates that cert-manager keeps renewed: (namespace index or -1 for cert-manager's own, name, lifetime h)
CERTIFICATES: Final = (
    (-1, "cert-manager-webhook-ca", 8760),
    (0, "ingress-tls", 2160),
    (1, "ingress-tls", 2160),
    (0, "internal-mtls", 24),
    (1, "internal-mtls", 24),
    (2, "internal-mtls", 48),
    (3, "ingress-tls", 2160),
    (2, "grpc-client", 72),
)

#: ExternalSecrets that external-secrets refreshes every hour: (namespace index, Secret name)
EXTERNAL_SECRETS: Final = (
    (0, "db-credentials"),
    (0, "stripe-api-key"),
    (1, "db-credentials"),
    (1, "smtp-password"),
    (2, "db-credentials"),
    (2, "oauth-client"),
    (3, "api-keys"),
    (3, "db-credentials"),
)

#: Images that people use for `kubectl debug`
DEBUG_IMAGES: Final = (
    "docker.io/library/busybox:1.36",
    "docker.io/nicolaka/netshoot:v0.13",
    "docker.io/library/ubuntu:24.04",
)

#: API clients that application pods use (client-go's default, the official Python and Java clients)
API_CLIENT_AGENTS: Final = (
    "{app}/v0.0.0 (linux/amd64) kubernetes/$Format",
    "OpenAPI-Generator/31.0.0/python",
    "kubernetes-java-client/20.0.1",
)

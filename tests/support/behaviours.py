"""For the simulator's tests: which of the noisy world's benign behaviours (issue 13, item 1) an Event shows.

:class:`BehaviourScan` reads a stream once (each request counted once, by auditID) and counts, per
behaviour, the requests that show it, the days on which they happen and, for images, the registries
that pods run from. It knows each developer's team, so exec into "their own" namespace is checked.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from simulation.clock import SECOND

Event = dict[str, Any]
DAY_US: Final = 86400 * SECOND
_IMAGE = re.compile(r'"image":"([^"]+)"')
_PUBLIC: Final = ("docker.io", "ghcr.io", "quay.io")
_SYSTEM_NAMESPACES: Final = ("kube-system", "calico-system", "longhorn-system")

BEHAVIOURS: Final = (
    "exec into own team",
    "exec into another team",
    "kubectl cp out of a pod",
    "kubectl cp into a pod",
    "Argo CD image update",
    "Flux apply",
    "Helm (controller) writes CRD",
    "Helm (controller) writes webhook configuration",
    "Helm (controller) writes ClusterRole",
    "Helm run by CI",
    "GitOps writes RBAC",
    "cert-manager writes Secret",
    "external-secrets writes Secret",
    "Prometheus reads nodes/proxy",
    "Prometheus reads node metrics",
    "SRE creates RoleBinding",
    "kubectl debug (ephemeral container)",
    "autoscaler adds Node",
    "autoscaler removes Node",
    "operator creates pod in system namespace",
    "anonymous /readyz",
    "anonymous /livez",
    "401 from expired token",
    "CronJob creates Job",
)


def _user(ev: Event) -> str:
    return str(ev["user"].get("username", ""))


@dataclass
class BehaviourScan:
    start_us: int
    teams: dict[str, tuple[str, ...]]  # developer -> their team's namespaces
    org_registry: str
    requests: Counter[str] = field(default_factory=Counter)
    days: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    registries: Counter[str] = field(default_factory=Counter)  # "org" or a public host -> pod creates
    image_updates_per_day: Counter[int] = field(default_factory=Counter)
    _seen: set[str] = field(default_factory=set)

    def add(self, ts_us: int, ev: Event) -> None:
        if ev["stage"] == "RequestReceived" or ev["auditID"] in self._seen:
            return
        self._seen.add(ev["auditID"])
        day = (ts_us - self.start_us) // DAY_US
        for name in self.classify(ev, day):
            self.requests[name] += 1
            self.days[name].add(day)

    def classify(self, ev: Event, day: int) -> list[str]:
        out: list[str] = []
        user, verb, uri = _user(ev), ev["verb"], ev["requestURI"]
        ref = ev.get("objectRef") or {}
        res, sub, ns = ref.get("resource"), ref.get("subresource"), ref.get("namespace")
        code = (ev.get("responseStatus") or {}).get("code")
        if sub == "exec" and user in self.teams:
            if "command=tar&command=cf" in uri:
                out.append("kubectl cp out of a pod")
            elif "command=tar&command=xmf" in uri:
                out.append("kubectl cp into a pod")
            else:
                out.append("exec into own team" if ns in self.teams[user] else "exec into another team")
        body = orjson.dumps(ev.get("requestObject")).decode() if "requestObject" in ev else ""
        if user.endswith(":argocd-application-controller") and verb == "patch" and res == "deployments":
            if '"image"' in body:
                out.append("Argo CD image update")
                self.image_updates_per_day[day] += 1
        if user.endswith(":kustomize-controller") and verb == "patch":
            out.append("Flux apply")
        if user.endswith(":helm-controller") and verb in ("create", "patch"):
            kinds = {
                "customresourcedefinitions": "CRD",
                "validatingwebhookconfigurations": "webhook configuration",
                "mutatingwebhookconfigurations": "webhook configuration",
                "clusterroles": "ClusterRole",
            }
            if res in kinds:
                out.append(f"Helm (controller) writes {kinds[res]}")
        if ev.get("userAgent", "").startswith("Helm/") and verb == "patch" and res == "deployments" and code == 200:
            out.append("Helm run by CI")
            self.image_updates_per_day[day] += 1
        gitops = (":argocd-application-controller", ":kustomize-controller", ":helm-controller")
        rbac = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")
        if user.endswith(gitops) and res in rbac and verb in ("create", "patch", "update"):
            out.append("GitOps writes RBAC")
        if res == "secrets" and verb in ("create", "update", "patch"):
            if user.endswith(":cert-manager:cert-manager"):
                out.append("cert-manager writes Secret")
            if user.endswith(":external-secrets:external-secrets"):
                out.append("external-secrets writes Secret")
        if user.endswith(":monitoring:prometheus"):
            if res == "nodes" and sub == "proxy":
                out.append("Prometheus reads nodes/proxy")
            if uri.startswith("/apis/metrics.k8s.io/v1beta1/nodes"):
                out.append("Prometheus reads node metrics")
        if res == "rolebindings" and verb == "create" and "sre" in ev["user"].get("groups", ()):
            out.append("SRE creates RoleBinding")
        if sub == "ephemeralcontainers" and verb == "patch":
            out.append("kubectl debug (ephemeral container)")
        if res == "nodes" and not sub and verb == "create" and user.startswith("system:node:"):
            out.append("autoscaler adds Node")
        if res == "nodes" and verb == "delete" and user.endswith(":cluster-autoscaler"):
            out.append("autoscaler removes Node")
        if res == "pods" and verb == "create" and not sub and ns in _SYSTEM_NAMESPACES:
            if user.startswith("system:serviceaccount:"):
                out.append("operator creates pod in system namespace")
        if res == "pods" and verb == "create" and not sub:
            for image in _IMAGE.findall(body):
                host = next((h for h in _PUBLIC if image.startswith(h + "/")), None)
                self.registries[host or ("org" if image.startswith(self.org_registry + "/") else "other")] += 1
        if user == "system:anonymous" and uri in ("/readyz", "/livez"):
            out.append(f"anonymous {uri}")
        if code == 401 and ev.get("userAgent", "").startswith(("kubectl/", "Helm/")):
            out.append("401 from expired token")
        if res == "jobs" and verb == "create" and user.endswith(":cronjob-controller"):
            out.append("CronJob creates Job")
        return out

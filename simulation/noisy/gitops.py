"""Benign deployers: Argo CD, Flux (kustomize-controller, helm-controller) and Helm run by CI.

- Argo CD syncs the teams' applications as commits land: image updates several times a day per
  namespace (client-side apply: a strategic-merge patch carrying the last-applied configuration), now and
  then a ConfigMap, the application's Role and RoleBinding, and every few days a new application
  (ServiceAccount, Role, RoleBinding, Deployment).
- Flux's kustomize-controller re-applies the cluster configuration (namespaces, the teams' RoleBindings,
  ClusterRoles, the SREs' ClusterRoleBinding, NetworkPolicies) every 10 minutes as a server-side apply
  dry run, and applies for real the rare object that changed in git.
- Flux's helm-controller looks up its releases' Secrets every hour and upgrades an add-on every few
  days (CRDs, ClusterRoles, webhook configurations, Deployments with public images, release Secrets);
  once in the window it installs a new add-on (trust-manager), creating all of them.
- CI runs ``helm upgrade`` of an application a few times a day, with Helm's User-Agent.
"""

from __future__ import annotations

from typing import Any

from simulation.clock import SECOND
from simulation.cluster import Cluster, Deployment
from simulation.emitter import Actor, object_ref
from simulation.engine import Engine, Process
from simulation.manifests import deployment_manifest
from simulation.noisy.catalog import RELEASES, Release, Workload
from simulation.noisy.objects import binding, crd, last_applied, role, rule, subject, webhook_configuration
from simulation.noisy.org import DAY_US, Org, platform_deployment
from simulation.noisy.writes import ObjectWriter, ref_of
from simulation.workloads import Workloads

_NEW_ADDON = Release(
    "trust-manager",
    "cert-manager",
    "v0.14.0",
    (Workload("cert-manager", "trust-manager", "quay.io/jetstack/trust-manager", "0.14.0"),),
    (("bundles", "trust.cert-manager.io", "Bundle", "v1alpha1"),),
    (
        (
            "trust-manager",
            (rule([""], ["configmaps", "secrets"], ["get", "list", "watch", "create", "update", "patch"]),),
        ),
    ),
    (("ValidatingWebhookConfiguration", "trust-manager", ("trust.cert-manager.io",)),),
)


def _app_role(dep: Deployment) -> dict[str, Any]:
    rules = [
        rule([""], ["configmaps"], ["get", "list", "watch"]),
        rule([""], ["pods"], ["get", "list"]),
        rule([""], ["secrets"], ["get"], [f"{dep.name}-credentials"]),
    ]
    return role("Role", dep.name, dep.ns, rules, {"app.kubernetes.io/name": dep.name})


def _app_binding(dep: Deployment) -> dict[str, Any]:
    return binding("RoleBinding", dep.name, dep.ns, "Role", dep.name, [subject("ServiceAccount", dep.name, dep.ns)])


def _image_patch(dep: Deployment) -> dict[str, Any]:
    """The strategic-merge patch of ``kubectl apply`` (client side) for a new image."""
    applied = last_applied(deployment_manifest(dep))["metadata"]["annotations"]
    return {
        "metadata": {"annotations": applied},
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "app"}],
                    "containers": [{"image": dep.image, "name": "app"}],
                }
            }
        },
    }


class GitOps:
    def __init__(self, engine: Engine, cluster: Cluster, org: Org, workloads: Workloads) -> None:
        self.engine, self.em, self.rng = engine, engine.em, engine.rng
        self.cluster, self.org, self.workloads = cluster, org, workloads
        self.writer = ObjectWriter(engine)
        self.release_revision: dict[str, int] = {}  # namespace/release -> its last revision

    def start(self) -> None:
        engine = self.engine
        for ns in self.cluster.profile.namespaces:
            engine.spawn(engine.exp_s(3 * 3600), self._argocd_app(ns))
        engine.spawn(engine.exp_s(4 * 86400), self._argocd_onboarding())
        engine.spawn(self.rng.randrange(600 * SECOND), self._kustomize())
        for release in RELEASES:
            engine.spawn(self.rng.randrange(3600 * SECOND), self._helm_release(release))
        engine.spawn(DAY_US + self.rng.randrange(12 * DAY_US), self._install(_NEW_ADDON))
        if self.org.helm_ci is not None:
            engine.spawn(engine.exp_s(6 * 3600), self._helm_ci(self.org.helm_ci))

    # Argo CD -----------------------------------------------------------------------------------------
    def _argocd_app(self, ns: str) -> Process:
        engine, rng, argocd, w = self.engine, self.rng, self.org.argocd, self.writer
        while True:
            deps = [d for d in self.cluster.deployments if d.ns == ns and not d.rolling]
            if deps:
                dep, roll = rng.choice(deps), rng.random()
                base = f"/apis/apps/v1/namespaces/{ns}/deployments/{dep.name}"
                if roll < 0.8:  # a new image
                    self.workloads.bump_version(dep)
                    w.patch(argocd, base + "?fieldManager=argocd-controller", ref_of(base), _image_patch(dep))
                    engine.spawn(1000, self.workloads.rollout(dep))
                elif roll < 0.95:
                    uri = f"/api/v1/namespaces/{ns}/configmaps/{dep.name}-config?fieldManager=argocd-controller"
                    w.patch(argocd, uri, ref_of(uri), None)
                else:  # the chart's RBAC changed
                    for obj in (_app_role(dep), _app_binding(dep)):
                        w.apply(argocd, last_applied(obj), manager="argocd-controller")
                        yield 200_000 + rng.randrange(SECOND)
            yield engine.exp_s(3 * 3600)

    def _argocd_onboarding(self) -> Process:
        """A team adds an application: its ServiceAccount, Role, RoleBinding, ConfigMap and Deployment."""
        engine, rng, argocd, w = self.engine, self.rng, self.org.argocd, self.writer
        while True:
            ns = rng.choice(self.cluster.profile.namespaces) if self.cluster.profile.namespaces else "default"
            dep = self.workloads.new_deployment(ns)
            if dep is not None:
                sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": dep.name, "namespace": ns}}
                for obj in (sa, _app_role(dep), _app_binding(dep)):
                    w.create(argocd, last_applied(obj), manager="argocd-controller")
                    yield 100_000 + rng.randrange(400_000)
                uri = f"/api/v1/namespaces/{ns}/configmaps?fieldManager=argocd-controller"
                w.create_named(argocd, uri, ref_of(uri), f"{dep.name}-config")
                yield 100_000 + rng.randrange(400_000)
                w.create(argocd, last_applied(deployment_manifest(dep)), manager="argocd-controller")
                self.cluster.deployments.append(dep)
                engine.spawn(3000, self.workloads.scale_up_new(dep))
            yield engine.exp_s(4 * 86400)

    # Flux --------------------------------------------------------------------------------------------
    def _cluster_config(self) -> list[dict[str, Any]]:
        namespaces = [*self.cluster.profile.namespaces, "ci"]
        objs: list[dict[str, Any]] = []
        for ns in namespaces:
            objs.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"team": ns}}})
            objs.append(binding("RoleBinding", "devs-edit", ns, "ClusterRole", "edit", [subject("Group", "devs")]))
            objs.append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": "default-deny-ingress", "namespace": ns},
                    "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
                }
            )
        viewer = [
            rule(["", "apps", "batch"], ["pods", "pods/log", "deployments", "jobs", "events"], ["get", "list", "watch"])
        ]
        objs.append(role("ClusterRole", "team-viewer", None, viewer, {"rbac.example/aggregate": "true"}))
        sre = [subject("Group", "sre")]
        objs.append(binding("ClusterRoleBinding", "sre-cluster-admin", None, "ClusterRole", "cluster-admin", sre))
        return objs

    def _kustomize(self) -> Process:
        rng, flux, w = self.rng, self.org.kustomize, self.writer
        objs = self._cluster_config()
        while True:
            for obj in objs:
                w.server_side_apply(flux, obj, "kustomize-controller", dry_run=True)
                yield 20_000 + rng.randrange(80_000)
            if rng.random() < 0.025:  # a commit changed one of them
                w.server_side_apply(flux, rng.choice(objs), "kustomize-controller", dry_run=False)
            yield 600 * SECOND + rng.randrange(30 * SECOND)

    def _helm_release(self, release: Release) -> Process:
        """helm-controller: the hourly look-up of the release's storage, and an upgrade every few days."""
        rng, helm = self.rng, self.org.helm_controller
        while True:
            self._release_lookup(helm, release)
            if rng.random() < 1 / 84:
                yield 500_000 + rng.randrange(2 * SECOND)
                yield from self._upgrade(helm, release, create=False)
            yield 3600 * SECOND + rng.randrange(60 * SECOND)

    def _install(self, release: Release) -> Process:
        yield from self._upgrade(self.org.helm_controller, release, create=True)

    def _release_lookup(self, actor: Actor, release: Release) -> None:
        uri = f"/api/v1/namespaces/{release.ns}/secrets?labelSelector=name%3D{release.name}%2Cowner%3Dhelm"
        self.engine.request(actor, "list", uri, object_ref("secrets", release.ns))

    def _upgrade(self, actor: Actor, release: Release, *, create: bool) -> Process:
        """Helm's upgrade (or install): CRDs, ClusterRoles, webhooks, workloads, then the release record."""
        rng, w = self.rng, self.writer
        labels = {"app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": release.name}
        objs: list[dict[str, Any]] = [crd(*c, labels) for c in release.crds]
        objs += [role("ClusterRole", name, None, list(rules), labels) for name, rules in release.cluster_roles]
        ca = self.em.hex(48)
        objs += [webhook_configuration(k, n, (release.ns, n), list(h), ca, labels) for k, n, h in release.webhooks]
        for obj in objs:
            w.create(actor, obj, manager="helm-controller") if create else w.patch_object(actor, obj, "helm-controller")
            yield 50_000 + rng.randrange(300_000)
        for wl in release.workloads:
            dep = next((d for d in self.org.platform if d.ns == wl.ns and d.name == wl.name), None)
            if dep is None:
                dep = platform_deployment(wl, self.cluster, self.em, running=False)
                self.org.platform.append(dep)
                w.create(actor, deployment_manifest(dep), manager="helm-controller")
                self.engine.spawn(3000, self.workloads.scale_up_new(dep))
            elif not dep.rolling:
                self.workloads.bump_version(dep)
                w.patch_object(actor, deployment_manifest(dep), "helm-controller")
                self.engine.spawn(1000, self.workloads.rollout(dep))
            yield 50_000 + rng.randrange(300_000)
        yield from self._record_release(actor, release)

    def _record_release(self, actor: Actor, release: Release) -> Process:
        """Helm's storage: the new release Secret, then the previous one marked superseded."""
        key = f"{release.ns}/{release.name}"
        n = self.release_revision[key] = self.release_revision.get(key, 1 + self.rng.randrange(30)) + 1
        base = f"/api/v1/namespaces/{release.ns}/secrets"
        self.writer.create_named(
            actor, base, object_ref("secrets", release.ns), f"sh.helm.release.v1.{release.name}.v{n}"
        )
        yield 100_000 + self.rng.randrange(400_000)
        old = f"sh.helm.release.v1.{release.name}.v{n - 1}"
        self.engine.request(actor, "update", f"{base}/{old}", object_ref("secrets", release.ns, old))

    # Helm in CI ---------------------------------------------------------------------------------------
    def _helm_ci(self, ci: Actor) -> Process:
        """``helm upgrade --install <app> ./chart --set image.tag=...`` from a pipeline."""
        engine, rng, w = self.engine, self.rng, self.writer
        while True:
            deps = [d for d in self.cluster.deployments if not d.rolling]
            if deps:
                dep = rng.choice(deps)
                release = Release(dep.name, dep.ns, "", (), (), (), ())
                self._release_lookup(ci, release)
                yield 300_000 + rng.randrange(SECOND)
                self.workloads.bump_version(dep)
                base = f"/apis/apps/v1/namespaces/{dep.ns}/deployments/{dep.name}"
                engine.request(ci, "get", base, ref_of(base))
                yield 50_000 + rng.randrange(200_000)
                w.patch_object(ci, deployment_manifest(dep), "helm")
                engine.spawn(1000, self.workloads.rollout(dep))
                uri = f"/api/v1/namespaces/{dep.ns}/configmaps/{dep.name}-config?fieldManager=helm"
                w.patch(ci, uri, ref_of(uri), None)
                if rng.random() < 0.1:
                    w.patch_object(ci, _app_role(dep), "helm")
                yield 200_000 + rng.randrange(SECOND)
                yield from self._record_release(ci, release)
            yield engine.exp_s(8 * 3600)

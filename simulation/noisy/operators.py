"""Operators and controllers at work: Secrets, webhooks, DaemonSets and the daily CronJobs.

- cert-manager renews Certificates (short-lived internal mTLS ones daily): a temporary private-key
  Secret, a CertificateRequest, its approval, the TLS Secret updated, the temporary one deleted; its
  cainjector rewrites the webhook configurations' CA bundle every few days.
- external-secrets refreshes every ExternalSecret hourly: reads the target Secret, updates it when the
  provider's value changed (now and then), writes the ExternalSecret's status.
- Kyverno rewrites its own webhook configurations as policies change, a few times a day.
- The Calico operator (tigera-operator) reconciles every 5 minutes and, once in the window, upgrades
  Calico: it updates the privileged ``calico-node`` DaemonSet, creates the new ``csi-node-driver``
  DaemonSet in ``calico-system``, and the DaemonSet controller replaces the pods on every node.
- Daily CronJobs: the cronjob controller creates the Job, the job controller its pod, old Jobs go.
"""

from __future__ import annotations

from typing import Any, Final

from simulation.clock import SECOND
from simulation.cluster import Cluster
from simulation.emitter import object_ref
from simulation.engine import Engine, Process
from simulation.noisy.catalog import CERTIFICATES, CRON_JOBS, EXTERNAL_SECRETS, RELEASES
from simulation.noisy.objects import daemonset_object, job_object, node_agent_spec, pod_object, webhook_configuration
from simulation.noisy.org import DAY_US, Org
from simulation.noisy.writes import ObjectWriter

CALICO: Final = "v3.29.1"
_CALICO_NODE_PATHS: Final = ["/lib/modules", "/var/run/calico", "/var/lib/calico", "/run/xtables.lock"]
_KYVERNO_WEBHOOKS: Final = (
    ("ValidatingWebhookConfiguration", "kyverno-resource-validating-webhook-cfg", ("validate.kyverno.svc-fail",)),
    ("MutatingWebhookConfiguration", "kyverno-resource-mutating-webhook-cfg", ("mutate.kyverno.svc-fail",)),
    ("ValidatingWebhookConfiguration", "kyverno-policy-validating-webhook-cfg", ("validate-policy.kyverno.svc",)),
)


def daemon_pod(ds: str, ns: str, node: str, spec: dict[str, Any], controller_uid: str) -> dict[str, Any]:
    """A pod the DaemonSet controller creates for ``node``."""
    meta = {
        "generateName": f"{ds}-",
        "namespace": ns,
        "creationTimestamp": None,
        "labels": {"k8s-app": ds, "controller-revision-hash": controller_uid[:10]},
        "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": ds, "uid": controller_uid, "controller": True}
        ],
    }
    return pod_object(meta, {**spec, "nodeName": node})


class Operators:
    def __init__(self, engine: Engine, cluster: Cluster, org: Org) -> None:
        self.engine, self.em, self.rng = engine, engine.em, engine.rng
        self.cluster, self.org = cluster, org
        self.writer = ObjectWriter(engine)
        proxy = node_agent_spec(
            "registry.k8s.io/kube-proxy:v1.31.4", "kube-proxy", ["/run/xtables.lock", "/lib/modules"]
        )
        calico = node_agent_spec("quay.io/calico/node:v3.28.2", "calico-node", _CALICO_NODE_PATHS)
        self.daemonsets: list[tuple[str, str, dict[str, Any], str]] = [  # (name, namespace, pod spec, uid)
            ("kube-proxy", "kube-system", proxy, self.em.uuid()),
            ("calico-node", "calico-system", calico, self.em.uuid()),
        ]

    def _ns(self, index: int, fallback: str) -> str:
        namespaces = self.cluster.profile.namespaces
        return namespaces[index % len(namespaces)] if index >= 0 and namespaces else fallback

    def start(self) -> None:
        engine, r = self.engine, self.rng.randrange
        for index, name, lifetime_h in CERTIFICATES:
            engine.spawn(0, self._certificate(self._ns(index, "cert-manager"), name, lifetime_h))
        engine.spawn(engine.exp_s(3 * 86400), self._cainjector())
        for index, name in EXTERNAL_SECRETS:
            engine.spawn(r(3600 * SECOND), self._external_secret(self._ns(index, "default"), name))
        engine.spawn(engine.exp_s(8 * 3600), self._kyverno_webhooks())
        engine.spawn(r(300 * SECOND), self._tigera_reconcile())
        engine.spawn(DAY_US + r(11 * DAY_US), self._calico_upgrade())
        for index, name, hour, image, command in CRON_JOBS:
            ns = self._ns(index, "ci")
            image = image or f"{self.org.site.registry}/{ns}/{name}:1.{r(9)}.{r(20)}"
            engine.spawn(0, self._cronjob(ns, name, image, command, (hour * 3600 + r(3600)) * SECOND))

    # cert-manager ---------------------------------------------------------------------------------------
    def _certificate(self, ns: str, name: str, lifetime_h: int) -> Process:
        engine, rng, cm, w = self.engine, self.rng, self.org.cert_manager, self.writer
        every = int(lifetime_h * 3600 * SECOND * 2 / 3)  # renewBefore: a third of the lifetime
        yield rng.randrange(every)
        secrets = f"/api/v1/namespaces/{ns}/secrets"
        while True:
            temp = f"{name}-{self.em.token(5)}"
            w.create_named(cm, secrets, object_ref("secrets", ns), temp)  # the next private key
            yield 200_000 + rng.randrange(SECOND)
            request = f"{name}-{rng.randrange(1, 400)}"
            body = {
                "apiVersion": "cert-manager.io/v1",
                "kind": "CertificateRequest",
                "metadata": {
                    "name": request,
                    "namespace": ns,
                    "labels": {"app.kubernetes.io/managed-by": "cert-manager"},
                },
                "spec": {
                    "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K",
                    "issuerRef": {
                        "name": "internal-ca" if lifetime_h < 1000 else "letsencrypt",
                        "kind": "ClusterIssuer",
                    },
                    "duration": f"{lifetime_h}h0m0s",
                    "usages": ["digital signature", "key encipherment"],
                },
            }
            base = f"/apis/cert-manager.io/v1/namespaces/{ns}/certificaterequests"
            engine.request(
                cm,
                "create",
                base,
                object_ref("certificaterequests", ns, group="cert-manager.io"),
                code=201,
                level="Request",
                req_obj=body,
                obj_meta=(request, None, None),
            )
            yield 300_000 + rng.randrange(2 * SECOND)
            ref = object_ref("certificaterequests", ns, request, "cert-manager.io", subresource="status")
            engine.request(
                cm,
                "update",
                f"{base}/{request}/status",
                ref,
                level="Request",
                req_obj={**body, "status": {"conditions": [{"type": "Approved", "status": "True"}]}},
            )
            yield 2 * SECOND + rng.randrange(10 * SECOND)
            engine.request(cm, "update", f"{secrets}/{name}", object_ref("secrets", ns, name))
            yield 100_000 + rng.randrange(SECOND)
            engine.request(cm, "delete", f"{secrets}/{temp}", object_ref("secrets", ns, temp))
            yield every + rng.randrange(600 * SECOND)

    def _cainjector(self) -> Process:
        """The CA bundle injected into every webhook configuration that asks for it."""
        engine, rng = self.engine, self.rng
        while True:
            ca = self.em.hex(48)
            for release in RELEASES:
                for kind, name, hooks in release.webhooks:
                    obj = webhook_configuration(
                        kind, name, (release.ns, name), list(hooks), ca, {"app.kubernetes.io/instance": release.name}
                    )
                    self.writer.update(self.org.cainjector, obj)
                    yield 20_000 + rng.randrange(200_000)
            yield engine.exp_s(3 * 86400)

    # external-secrets and Kyverno ---------------------------------------------------------------------
    def _external_secret(self, ns: str, name: str) -> Process:
        engine, rng, eso = self.engine, self.rng, self.org.external_secrets
        uri = f"/api/v1/namespaces/{ns}/secrets/{name}"
        status_uri = f"/apis/external-secrets.io/v1beta1/namespaces/{ns}/externalsecrets/{name}/status"
        status_ref = object_ref("externalsecrets", ns, name, "external-secrets.io", "v1beta1", "status")
        while True:
            engine.request(eso, "get", uri, object_ref("secrets", ns, name))
            yield 100_000 + rng.randrange(SECOND)
            if rng.random() < 0.08:  # the value changed at the provider
                engine.request(eso, "update", uri, object_ref("secrets", ns, name))
                yield 20_000 + rng.randrange(100_000)
            body = {
                "status": {
                    "refreshTime": self.em.clock.sec(engine.now),
                    "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}],
                }
            }
            engine.request(eso, "update", status_uri, status_ref, level="Request", req_obj=body)
            yield 3600 * SECOND + rng.randrange(30 * SECOND)

    def _kyverno_webhooks(self) -> Process:
        engine, rng = self.engine, self.rng
        while True:
            ca = self.em.hex(48)
            for kind, name, hooks in _KYVERNO_WEBHOOKS:
                obj = webhook_configuration(
                    kind,
                    name,
                    ("kyverno", "kyverno-svc"),
                    list(hooks),
                    ca,
                    {"webhook.kyverno.io/managed-by": "kyverno"},
                )
                self.writer.update(self.org.kyverno, obj)
                yield 10_000 + rng.randrange(100_000)
            yield engine.exp_s(8 * 3600)

    # Calico's operator -----------------------------------------------------------------------------------
    def _tigera_reconcile(self) -> Process:
        engine, rng, op = self.engine, self.rng, self.org.tigera
        while True:
            engine.request(
                op,
                "get",
                "/apis/operator.tigera.io/v1/installations/default",
                object_ref("installations", name="default", group="operator.tigera.io"),
            )
            yield 20_000 + rng.randrange(100_000)
            uri = "/apis/apps/v1/namespaces/calico-system/daemonsets/calico-node"
            engine.request(op, "get", uri, object_ref("daemonsets", "calico-system", "calico-node", "apps"))
            yield 300 * SECOND + rng.randrange(10 * SECOND)

    def _calico_upgrade(self) -> Process:
        rng, op, w = self.rng, self.org.tigera, self.writer
        node_spec = node_agent_spec(f"quay.io/calico/node:{CALICO}", "calico-node", _CALICO_NODE_PATHS)
        csi_spec = node_agent_spec(f"quay.io/calico/csi:{CALICO}", "csi-node-driver", ["/var/lib/kubelet", "/var/run"])
        labels = {"app.kubernetes.io/managed-by": "tigera-operator"}
        w.update(op, daemonset_object("calico-system", "calico-node", node_spec, labels))
        yield 500_000 + rng.randrange(2 * SECOND)
        w.create(op, daemonset_object("calico-system", "csi-node-driver", csi_spec, labels), manager="operator")
        self.daemonsets[1] = ("calico-node", "calico-system", node_spec, self.daemonsets[1][3])
        self.daemonsets.append(("csi-node-driver", "calico-system", csi_spec, self.em.uuid()))
        for node in list(self.cluster.nodes):
            for ds, ns, spec, uid in self.daemonsets[1:]:
                yield 5 * SECOND + rng.randrange(20 * SECOND)
                self.create_daemon_pod(ds, ns, node.name, spec, uid)

    def create_daemon_pod(self, ds: str, ns: str, node: str, spec: dict[str, Any], uid: str) -> None:
        body = daemon_pod(ds, ns, node, spec, uid)
        self.engine.request(
            self.org.daemonset_controller,
            "create",
            f"/api/v1/namespaces/{ns}/pods",
            object_ref("pods", ns),
            code=201,
            level="Request",
            req_obj=body,
            obj_meta=(f"{ds}-{self.em.token(5)}", None, None),
        )

    # CronJobs ------------------------------------------------------------------------------------------
    def _cronjob(self, ns: str, name: str, image: str, command: list[str], at_us: int) -> Process:
        """A CronJob scheduled every day at ``at_us`` past midnight UTC."""
        engine, rng, em = self.engine, self.rng, self.em
        cron_uid, jobs = em.uuid(), list[str]()
        cronjobs = object_ref("cronjobs", ns, name, "batch", subresource="status")
        while True:
            yield (at_us - engine.now) % DAY_US or DAY_US
            job = f"{name}-{engine.now // (60 * SECOND)}"
            body = job_object(job, ns, name, cron_uid, image, command)
            engine.request(
                self.org.cronjob_controller,
                "create",
                f"/apis/batch/v1/namespaces/{ns}/jobs",
                object_ref("jobs", ns, group="batch"),
                code=201,
                level="Request",
                req_obj=body,
                obj_meta=(job, None, None),
            )
            yield 20_000 + rng.randrange(100_000)
            status = {
                "kind": "CronJob",
                "apiVersion": "batch/v1",
                "metadata": {"name": name, "namespace": ns},
                "status": {"active": [{"kind": "Job", "namespace": ns, "name": job}]},
            }
            engine.request(
                self.org.cronjob_controller,
                "update",
                f"/apis/batch/v1/namespaces/{ns}/cronjobs/{name}/status",
                cronjobs,
                level="Request",
                req_obj=status,
            )
            yield 50_000 + rng.randrange(300_000)
            pod_meta = {
                "generateName": f"{job}-",
                "namespace": ns,
                "creationTimestamp": None,
                "labels": {"job-name": job},
            }
            pod = pod_object(pod_meta, body["spec"]["template"]["spec"])
            engine.request(
                self.org.job_controller,
                "create",
                f"/api/v1/namespaces/{ns}/pods",
                object_ref("pods", ns),
                code=201,
                level="Request",
                req_obj=pod,
                obj_meta=(f"{job}-{em.token(5)}", None, None),
            )
            yield (60 + rng.randrange(1200)) * SECOND
            job_status = object_ref("jobs", ns, job, "batch", subresource="status")
            engine.request(
                self.org.job_controller,
                "update",
                f"/apis/batch/v1/namespaces/{ns}/jobs/{job}/status",
                job_status,
                level="Request",
                req_obj={"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}},
            )
            jobs.append(job)
            if len(jobs) > 3:  # successfulJobsHistoryLimit
                old = jobs.pop(0)
                yield 2 * SECOND + rng.randrange(10 * SECOND)
                engine.request(
                    self.org.cronjob_controller,
                    "delete",
                    f"/apis/batch/v1/namespaces/{ns}/jobs/{old}",
                    object_ref("jobs", ns, old, "batch"),
                    level="Request",
                    req_obj={"kind": "DeleteOptions", "apiVersion": "batch/v1", "propagationPolicy": "Background"},
                )

"""The control-plane identities the built-in rules trust are ones a real cluster has.

An allowlist entry naming a service account that kube-controller-manager never uses silences nothing, so the
controller's own routine writes alert (the DaemonSet controller is `daemon-set-controller`, not
`daemonset-controller`). Names from Kubernetes v1.36's bootstrap policy
(plugin/pkg/auth/authorizer/rbac/bootstrappolicy/controller_policy.go and namespace_policy.go).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.paths import ROOT

KUBE_SYSTEM_ACCOUNTS = frozenset({
    "attachdetach-controller", "certificate-controller", "clusterrole-aggregation-controller", "cronjob-controller",
    "daemon-set-controller", "deployment-controller", "device-taint-eviction-controller", "disruption-controller",
    "endpoint-controller", "endpointslice-controller", "endpointslicemirroring-controller",
    "ephemeral-volume-controller", "expand-controller", "generic-garbage-collector", "horizontal-pod-autoscaler",
    "job-controller", "legacy-service-account-token-cleaner", "namespace-controller", "node-controller",
    "persistent-volume-binder", "pod-garbage-collector", "pv-protection-controller", "pvc-protection-controller",
    "replicaset-controller", "replication-controller", "resource-claim-controller", "resourcequota-controller",
    "root-ca-cert-publisher", "route-controller", "service-account-controller", "service-controller",
    "statefulset-controller", "ttl-after-finished-controller", "ttl-controller",
    # bootstrap tokens (namespace_policy.go)
    "bootstrap-signer", "token-cleaner",
})  # fmt: skip

ACCOUNT = re.compile(r"system:serviceaccount:kube-system:([a-z0-9-]+)")


def test_every_kube_system_account_a_built_in_rule_names_exists_in_kubernetes() -> None:
    unknown = {
        (path.name, name)
        for path in sorted((ROOT / "detectors" / "rules" / "builtin").glob("*.yaml"))
        for name in ACCOUNT.findall(Path(path).read_text(encoding="utf-8"))
        if name.endswith(("-controller", "-collector", "-signer", "-cleaner", "-binder", "-publisher"))
        and name not in KUBE_SYSTEM_ACCOUNTS
    }
    assert not unknown, unknown

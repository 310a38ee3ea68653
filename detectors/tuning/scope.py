"""What the site facts of a tuning file cover: the rules a trusted registry or a known deployer can excuse, the
writes a deployer is known for, and how an image reference is matched against a trusted registry prefix."""

from __future__ import annotations

from collections.abc import Sequence

from detectors.rules.allowlist import image_registry

# Rules about where an image comes from: a trusted registry excuses their alert when every container's image
# is from one (init and ephemeral containers included).
IMAGE_RULES = ("untrusted-image-registry", "falco:create-disallowed-pod")

# A deployer's routine: writing workloads, RBAC, CRDs and admission webhooks.
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
DEPLOYED_RESOURCES = (
    "pods", "deployments", "daemonsets", "statefulsets", "replicasets", "replicationcontrollers", "jobs", "cronjobs",
    "roles", "clusterroles", "rolebindings", "clusterrolebindings", "serviceaccounts",
    "customresourcedefinitions",
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "validatingadmissionpolicies",
    "validatingadmissionpolicybindings", "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
)  # fmt: skip

# The rules a deployer's writes excuse by default: those that alert on the write itself (that it happened, who
# made it, where). Rules about what a write carries stay on for deployers too (a privileged container, host
# namespaces or paths, an image from an untrusted registry, a binding to cluster-admin or to a broad group, a
# wildcard or sensitive role, a system role changed): a stolen CI credential deploys exactly those. A site that
# wants them quiet for one deployer says so with an exception.
DEPLOYER_RULES = (
    # built-in
    "admission-webhook-changed", "cronjob-or-job-written", "daemonset-created", "pod-created-in-kube-system",
    "serviceaccount-created-in-kube-system", "rbac-binding-to-serviceaccount", "rbac-modified-by-serviceaccount",
    "rbac-change-then-workload-change", "new-namespace-for-principal", "new-verb-resource-for-principal",
    # Falco's k8s_audit rules
    "falco:k8s-deployment-created", "falco:k8s-deployment-deleted", "falco:k8s-serviceaccount-created",
    "falco:k8s-serviceaccount-deleted", "falco:k8s-role-created", "falco:k8s-role-deleted",
    "falco:k8s-clusterrole-created", "falco:k8s-clusterrole-deleted", "falco:k8s-rolebinding-created",
    "falco:k8s-rolebinding-deleted", "falco:k8s-clusterrolebinding-created", "falco:k8s-clusterrolebinding-deleted",
    "falco:pod-created-in-kube-namespace", "falco:service-account-created-in-kube-namespace",
    # SigmaHQ's: admission controller, CronJob/Job, Deployment deleted, pod in a system namespace, RoleBinding,
    # ServiceAccount created, sidecar injection (a Deployment patched)
    "sigma:eed82177-38f5-4299-8a76-098d50d225ab", "sigma:0c9b3bda-41a6-4442-9345-356ae86343dc",
    "sigma:40967487-139b-4811-81d9-c9767a92aa5a", "sigma:a80d927d-ac6e-443f-a867-e8d6e3897318",
    "sigma:10b97915-ec8d-455f-a815-9a78926585f6", "sigma:e31bae15-83ed-473e-bf31-faf4f8a17d36",
    "sigma:ad9012a6-e518-4432-9890-f3b82b8fc71f",
)  # fmt: skip

_DOCKER_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "registry.hub.docker.com")


def canonical_image(image: str) -> str:
    """An image reference with its registry spelt out, as the container runtime resolves it: `nginx:1.27` is
    `docker.io/library/nginx:1.27`, `bitnami/redis` is `docker.io/bitnami/redis`."""
    registry = image_registry(image)
    if registry in _DOCKER_HUB_ALIASES:
        image, registry = "docker.io" + image[len(registry) :], "docker.io"
    if not image.startswith(registry + "/"):
        image = f"docker.io/{image}"
    if registry == "docker.io" and image.count("/") == 1:
        image = "docker.io/library/" + image[len("docker.io/") :]
    return image


class TrustedRegistries:
    """Image prefixes (`host[:port][/path]`), each matching whole components only: `registry.corp` trusts
    `registry.corp/app:1` and `registry.corp:5000/app`, not `registry.corp.evil.io/app`; `ghcr.io/acme`
    trusts `ghcr.io/acme/api`, not `ghcr.io/acme-evil/api`."""

    def __init__(self, prefixes: Sequence[str]) -> None:
        self.prefixes = tuple(prefixes)

    def trusts(self, image: str) -> bool:
        full = canonical_image(image)
        return any(full == p or (full.startswith(p) and full[len(p)] in "/:@") for p in self.prefixes)

    def trusts_all(self, images: Sequence[object]) -> bool:
        """Whether there are images and every one is trusted (a non-string image is not)."""
        return bool(images) and all(isinstance(i, str) and self.trusts(i) for i in images)

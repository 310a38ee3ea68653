"""Benign traffic of CI: ``kubectl set image`` on a Deployment, then ``kubectl rollout status``.

Each CI service account (``system:serviceaccount:ci:deployer``, ...) deploys every ~15 minutes; the
image change drives a rolling update through the controllers (:mod:`simulation.workloads`).
"""

from __future__ import annotations

from simulation.clock import SECOND
from simulation.cluster import Cluster
from simulation.emitter import Actor, object_ref, watch_uri
from simulation.engine import Engine, Process
from simulation.workloads import Workloads


class CiPipelines:
    def __init__(self, engine: Engine, cluster: Cluster, workloads: Workloads) -> None:
        self.engine = engine
        self.cluster = cluster
        self.workloads = workloads

    def start(self) -> None:
        for ci in self.cluster.ci:
            self.engine.spawn(self.engine.exp_s(300), self._pipeline(ci))

    def _pipeline(self, ci: Actor) -> Process:
        engine, rng = self.engine, self.engine.rng
        while True:
            candidates = [d for d in self.cluster.deployments if not d.rolling]
            if candidates:
                dep = rng.choice(candidates)
                ns, name = dep.ns, dep.name
                ref = object_ref("deployments", ns, name, "apps")
                base = f"/apis/apps/v1/namespaces/{ns}/deployments/{name}"
                engine.request(ci, "get", base, ref)
                yield 150_000 + rng.randrange(300_000)
                self.workloads.bump_version(dep)
                patch = {
                    "spec": {
                        "template": {
                            "spec": {
                                "$setElementOrder/containers": [{"name": "app"}],
                                "containers": [{"image": dep.image, "name": "app"}],
                            }
                        }
                    }
                }
                engine.request(
                    ci,
                    "patch",
                    base + "?fieldManager=kubectl-set",
                    ref,
                    level="Request",
                    req_obj=patch,
                    latency=6000 + rng.randrange(15_000),
                )
                engine.spawn(1000, self.workloads.rollout(dep))
                yield 400_000 + rng.randrange(600_000)  # kubectl rollout status
                engine.request(ci, "get", base, ref)
                yield 20_000 + rng.randrange(30_000)
                wait = (30 + 18 * dep.replicas + rng.randrange(20)) * SECOND
                watch = watch_uri(
                    f"/apis/apps/v1/namespaces/{ns}/deployments",
                    engine.em.rv(),
                    300 + rng.randrange(300),
                    f"&fieldSelector=metadata.name%3D{name}",
                )
                engine.request(ci, "watch", watch, object_ref("deployments", ns, group="apps"), stream=wait)
            yield engine.exp_s(900)

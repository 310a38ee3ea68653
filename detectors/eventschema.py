"""The fields an audit event can have, as data: the audit.k8s.io/v1 Event and what the virtual roots of
`detectors.fieldpath` expose; and `path_problem`, which says why no event can have a field path.

A rule that reads `objectRef.resouce` or `user.name` loads and never matches; `rules lint` and the loader
warn about such paths instead. The Event schema follows the Kubernetes type (k8s.io/apiserver
pkg/apis/audit/v1 `Event`, with `authentication/v1.UserInfo` and `meta/v1.Status`), plus v1beta1's
`timestamp` and `metadata`. Request and response bodies and annotation keys are free-form. Below the
virtual roots, pod specs, containers and volumes are checked one level deep (two for `securityContext` and
`hostPath`), against core/v1 as of Kubernetes 1.34; deeper parts are free-form.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from detectors.fieldpath import EACH, PathError, Step, parse_path


@dataclass(frozen=True, slots=True)
class Scalar:
    """A string, number or boolean: nothing below it."""

    kind: str


@dataclass(frozen=True, slots=True)
class FreeForm:
    """Any JSON below (a request body, an annotation value's map)."""


@dataclass(frozen=True, slots=True)
class Fields:
    """An object with a known set of fields."""

    fields: Mapping[str, Node]


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Node


@dataclass(frozen=True, slots=True)
class MapOf:
    """An object with free keys and values of one kind (annotations, user.extra)."""

    value: Node


Node = Scalar | FreeForm | Fields | ListOf | MapOf

STRING, INTEGER, BOOLEAN = Scalar("string"), Scalar("integer"), Scalar("boolean")
FREE = FreeForm()
STRINGS = ListOf(STRING)


def _fields(*, strings: str = "", integers: str = "", booleans: str = "", free: str = "", **typed: Node) -> Fields:
    """Fields by kind (space-separated names); keyword arguments have their own schema."""
    kinds = ((strings, STRING), (integers, INTEGER), (booleans, BOOLEAN), (free, FREE))
    return Fields({**{name: node for names, node in kinds for name in names.split()}, **typed})


USER_INFO = _fields(strings="username uid", groups=STRINGS, extra=MapOf(STRINGS))
OBJECT_REFERENCE = _fields(strings="resource namespace name uid apiGroup apiVersion resourceVersion subresource")
STATUS = _fields(
    strings="kind apiVersion status message reason",
    integers="code",
    metadata=_fields(strings="selfLink resourceVersion continue", integers="remainingItemCount"),
    details=_fields(
        strings="name group kind uid",
        integers="retryAfterSeconds",
        causes=ListOf(_fields(strings="reason message field")),
    ),
)
EVENT = _fields(
    strings="kind apiVersion level auditID stage requestURI verb userAgent requestReceivedTimestamp stageTimestamp "
    "timestamp",  # `timestamp` and `metadata`: v1beta1
    free="requestObject responseObject metadata",
    user=USER_INFO,
    impersonatedUser=USER_INFO,
    sourceIPs=STRINGS,
    objectRef=OBJECT_REFERENCE,
    responseStatus=STATUS,
    annotations=MapOf(STRING),
)

CONTAINER = _fields(
    strings="name image workingDir restartPolicy terminationMessagePath terminationMessagePolicy imagePullPolicy "
    "targetContainerName",
    booleans="stdin stdinOnce tty",
    free="ports envFrom env resources resizePolicy restartPolicyRules volumeMounts volumeDevices livenessProbe "
    "readinessProbe startupProbe lifecycle",
    command=STRINGS,
    args=STRINGS,
    securityContext=_fields(
        strings="procMount",
        integers="runAsUser runAsGroup",
        booleans="privileged runAsNonRoot readOnlyRootFilesystem allowPrivilegeEscalation",
        free="seLinuxOptions windowsOptions seccompProfile appArmorProfile",
        capabilities=_fields(add=STRINGS, drop=STRINGS),
    ),
)
VOLUME = _fields(
    strings="name",
    free="emptyDir gcePersistentDisk awsElasticBlockStore gitRepo secret nfs iscsi glusterfs persistentVolumeClaim "
    "rbd flexVolume cinder cephfs flocker downwardAPI fc azureFile configMap vsphereVolume quobyte azureDisk "
    "photonPersistentDisk projected portworxVolume scaleIO storageos csi ephemeral image",
    hostPath=_fields(strings="path type"),
)
POD_SPEC = _fields(
    strings="restartPolicy dnsPolicy serviceAccountName serviceAccount nodeName hostname hostnameOverride subdomain "
    "schedulerName priorityClassName runtimeClassName preemptionPolicy",
    integers="terminationGracePeriodSeconds activeDeadlineSeconds priority",
    booleans="automountServiceAccountToken hostNetwork hostPID hostIPC shareProcessNamespace enableServiceLinks "
    "setHostnameAsFQDN hostUsers",
    free="nodeSelector securityContext imagePullSecrets affinity tolerations hostAliases dnsConfig readinessGates "
    "overhead topologySpreadConstraints os schedulingGates resourceClaims resources",
    containers=ListOf(CONTAINER),
    initContainers=ListOf(CONTAINER),
    ephemeralContainers=ListOf(CONTAINER),
    volumes=ListOf(VOLUME),
)

# What each virtual root of detectors.fieldpath yields.
VIRTUAL_ROOTS: Mapping[str, Node] = {
    "decision": STRING,
    "exec": _fields(strings="commandLine source", command=STRINGS, copy=_fields(strings="direction", paths=STRINGS)),
    "principal": STRING,
    "request": FREE,
    "podSpecs": ListOf(POD_SPEC),
    "containers": ListOf(CONTAINER),
    "volumes": ListOf(VOLUME),
    "registries": STRINGS,
}


def _shown(step: Step) -> str:
    return "[*]" if step is EACH else f"[{step}]" if isinstance(step, int) else str(step)


def _below(where: str | None, step: Step) -> str:
    if isinstance(step, str):
        return step if where is None else f"{where}.{step}"
    return f"{where or ''}{_shown(step)}"


def _no_field(where: str, key: str, node: Fields) -> str:
    close = difflib.get_close_matches(key, node.fields, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (it has {', '.join(sorted(node.fields))})"
    return f"{where} has no field {key!r}{hint}"


def _step(node: Node, step: Step, where: str, keys_reach_elements: bool) -> tuple[Node | None, str | None]:
    """The node one step below `node` (None: free-form from there on), or why there is none."""
    if isinstance(node, FreeForm):
        return None, None
    if isinstance(node, ListOf):
        if not isinstance(step, str):
            return node.item, None
        if not keys_reach_elements:
            return None, f"{where} is a list: {step!r} is not an index"
        node = node.item  # a key applied to a list applies to each element
        if isinstance(node, (Scalar, ListOf)):
            return None, f"the elements of {where} are not objects: they have no field {step!r}"
    if isinstance(node, Scalar):
        what = f"field {step!r}" if isinstance(step, str) else "elements"
        return None, f"{where} is a {node.kind}: it has no {what}"
    if isinstance(node, MapOf):
        return node.value, None
    if not isinstance(step, str):
        if keys_reach_elements:
            return None, f"{where} is an object, not a list: {_shown(step)} selects nothing"
        step = str(step)  # a JSON pointer's "/0" is a key in an object
    if isinstance(node, Fields):
        if step in node.fields:
            return node.fields[step], None
        return None, _no_field(where, step, node)
    return None, None


def _problem(text: str, root: str | None, steps: list[Step], keys_reach_elements: bool) -> str | None:
    node: Node | None = EVENT if root is None else VIRTUAL_ROOTS.get(root)
    where = None if root is None else f"${root}"
    for step in steps:
        if node is None:
            return None
        node, problem = _step(node, step, where or "an audit event", keys_reach_elements)
        if problem is not None:
            return f"no audit event has {text!r}: {problem}"
        where = _below(where, step)
    return None


def path_problem(text: str) -> str | None:
    """Why no audit event can have the field path `text`; None when some can (or when the path does not
    parse, which the loader reports as an error of its own)."""
    try:
        root, steps = parse_path(text)
    except PathError:
        return None
    return _problem(text, root, steps, keys_reach_elements=True)


def pointer_problem(pointer: str, shown: str) -> str | None:
    """Why no audit event has what the JSON pointer (RFC 6901, Falco's `jevt.value[/a/b]`) points at; None
    when some can. `shown` is how the rule wrote it."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    steps: list[Step] = [int(p) if p.isdigit() else p for p in parts]
    return _problem(shown, None, steps, keys_reach_elements=False)

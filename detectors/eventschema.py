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


def _fields(names: str, node: Node = FREE, **typed: Node) -> Fields:
    """Fields: `names` (space-separated) are `node`; keyword arguments have their own."""
    return Fields({**dict.fromkeys(names.split(), node), **typed})


USER_INFO = _fields("username uid", STRING, groups=STRINGS, extra=MapOf(STRINGS))
OBJECT_REFERENCE = _fields("resource namespace name uid apiGroup apiVersion resourceVersion subresource", STRING)
STATUS = _fields(
    "kind apiVersion status message reason",
    STRING,
    code=INTEGER,
    metadata=_fields("selfLink resourceVersion continue", STRING, remainingItemCount=INTEGER),
    details=_fields(
        "name group kind uid",
        STRING,
        retryAfterSeconds=INTEGER,
        causes=ListOf(_fields("reason message field", STRING)),
    ),
)
EVENT = _fields(
    "kind apiVersion level auditID stage requestURI verb userAgent requestReceivedTimestamp stageTimestamp",
    STRING,
    user=USER_INFO,
    impersonatedUser=USER_INFO,
    sourceIPs=STRINGS,
    objectRef=OBJECT_REFERENCE,
    responseStatus=STATUS,
    requestObject=FREE,
    responseObject=FREE,
    annotations=MapOf(STRING),
    timestamp=STRING,  # v1beta1
    metadata=FREE,  # v1beta1
)

CONTAINER = _fields(
    "name image command args workingDir ports envFrom env resources resizePolicy restartPolicy restartPolicyRules "
    "volumeMounts volumeDevices livenessProbe readinessProbe startupProbe lifecycle terminationMessagePath "
    "terminationMessagePolicy imagePullPolicy stdin stdinOnce tty targetContainerName",
    securityContext=_fields(
        "privileged seLinuxOptions windowsOptions runAsUser runAsGroup runAsNonRoot readOnlyRootFilesystem "
        "allowPrivilegeEscalation procMount seccompProfile appArmorProfile",
        capabilities=_fields("add drop", STRINGS),
    ),
)
VOLUME = _fields(
    "name emptyDir gcePersistentDisk awsElasticBlockStore gitRepo secret nfs iscsi glusterfs persistentVolumeClaim "
    "rbd flexVolume cinder cephfs flocker downwardAPI fc azureFile configMap vsphereVolume quobyte azureDisk "
    "photonPersistentDisk projected portworxVolume scaleIO storageos csi ephemeral image",
    hostPath=_fields("path type", STRING),
)
POD_SPEC = _fields(
    "restartPolicy terminationGracePeriodSeconds activeDeadlineSeconds dnsPolicy nodeSelector serviceAccountName "
    "serviceAccount automountServiceAccountToken nodeName hostNetwork hostPID hostIPC shareProcessNamespace "
    "securityContext imagePullSecrets hostname hostnameOverride subdomain affinity schedulerName tolerations "
    "hostAliases priorityClassName priority dnsConfig readinessGates runtimeClassName enableServiceLinks "
    "preemptionPolicy overhead topologySpreadConstraints setHostnameAsFQDN os hostUsers schedulingGates "
    "resourceClaims resources",
    containers=ListOf(CONTAINER),
    initContainers=ListOf(CONTAINER),
    ephemeralContainers=ListOf(CONTAINER),
    volumes=ListOf(VOLUME),
)

# What each virtual root of detectors.fieldpath yields.
VIRTUAL_ROOTS: Mapping[str, Node] = {
    "decision": STRING,
    "principal": STRING,
    "request": FREE,
    "podSpecs": ListOf(POD_SPEC),
    "containers": ListOf(CONTAINER),
    "volumes": ListOf(VOLUME),
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

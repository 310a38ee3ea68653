"""The command an exec-like request runs, decoded from wherever the audit event carries it (`$exec`).

- `pods/exec` (and the kubelet's exec reached through `nodes/proxy`): one `command=` query parameter of
  the requestURI per argv element, URL-encoded as the client wrote it: kubectl (Go's url.Values) writes a
  space as `+` and `/` as `%2F`, other clients `%20` and a raw `/`, in either hex case. Decoded as the
  apiserver decodes them (`+` is a space, then percent escapes), so `%2Fbin%2Fsh`, `/bin/sh` and
  `%2fbin%2fsh` are the same `/bin/sh`. The kubelet's `run` endpoint (`nodes/proxy/run/...?cmd=ls+-la`)
  takes the whole command in one `cmd` parameter, which the kubelet splits on spaces.
- `requestObject.command`: the PodExecOptions body, which some apiservers log for exec and some exporters
  write instead of the query (a list, or one string).
- `pods/ephemeralcontainers` (`kubectl debug`): the `command` then `args` of the last ephemeral container
  in the request (the one being added: kubectl appends it; a patch carries only it), read from the full
  object or the partial object of a patch. Without either, the image's entrypoint runs: unknown.

`kubectl cp` is an exec of `tar` streaming an archive through the session: `tar cf - PATH` copies out
(with `--retries`, `sh -c "tar cf - PATH | tail -c+N"`), `tar -xmf - [-C DIR]` or `tar xf - -C DIR` copies
in. `copy_of` reads the direction and the paths from the argv.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_ARGV = 1000  # argv elements kept: more is no command a human or kubectl sends
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&"})
_LONG_MODES = {"create": "c", "extract": "x", "get": "x"}  # tar's long options for its c and x modes


def exec_argv(raw: Mapping[str, Any], request: Any) -> tuple[tuple[str, ...], str] | None:
    """(argv, where it was read: `requestURI`, `requestObject` or `ephemeralContainers`) of an exec-like
    request, or None. `request` is the request body as an object (a JSON patch as the object it writes)."""
    ref = raw.get("objectRef")
    if type(ref) is not dict:
        return None
    subresource = ref.get("subresource")
    resource = ref.get("resource")
    if resource == "pods" and subresource == "exec":
        argv = _query_command(raw.get("requestURI"))
        if argv:
            return argv, "requestURI"
        argv = _listed(request.get("command")) if isinstance(request, dict) else None
        return (argv, "requestObject") if argv else None
    if resource == "pods" and subresource == "ephemeralcontainers":
        argv = _ephemeral_command(request)
        return (argv, "ephemeralContainers") if argv else None
    if resource == "nodes" and subresource == "proxy":
        uri = raw.get("requestURI")
        path = uri.split("?", 1)[0] if isinstance(uri, str) else ""
        if "/proxy/exec/" in path:
            argv = _query_command(uri)
            return (argv, "requestURI") if argv else None
        if "/proxy/run/" in path:  # the kubelet's run: one `cmd` parameter, split on spaces by the kubelet
            argv = tuple(word for line in _query_values(uri, "cmd") for word in line.split(" ") if word)
            return (argv[:MAX_ARGV], "requestURI") if argv else None
    return None


def _query_values(uri: Any, name: str) -> tuple[str, ...]:
    if not isinstance(uri, str) or "?" not in uri:
        return ()
    pairs = parse_qsl(urlsplit(uri).query, keep_blank_values=True, max_num_fields=None)
    return tuple(v for k, v in pairs if k == name)


def _query_command(uri: Any) -> tuple[str, ...] | None:
    return _query_values(uri, "command")[:MAX_ARGV] or None


def _listed(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,) if value else None
    if isinstance(value, list):
        argv = tuple(v for v in value[:MAX_ARGV] if isinstance(v, str))
        return argv or None
    return None


def _ephemeral_command(request: Any) -> tuple[str, ...] | None:
    spec = request.get("spec") if isinstance(request, dict) else None
    containers = spec.get("ephemeralContainers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        return None
    added = next((c for c in reversed(containers) if isinstance(c, dict) and c), None)
    if added is None:
        return None
    argv = (_listed(added.get("command")) or ()) + (_listed(added.get("args")) or ())
    return argv[:MAX_ARGV] or None


def command_line(argv: Sequence[str]) -> str:
    """The argv joined by spaces, as rules match it (`sh -c cat /etc/shadow`): no quoting to see through."""
    return " ".join(argv)


def _words(argv: Sequence[str]) -> list[str]:
    """The words of the command: the argv, or the split script of `sh -c SCRIPT` (kubectl's cp with retries
    writes its tar command that way, unquoted)."""
    if len(argv) >= 3 and posixpath.basename(argv[0]) in _SHELLS and argv[1].startswith("-") and "c" in argv[1]:
        return argv[2].split()
    return list(argv)


def copy_of(argv: Sequence[str]) -> dict[str, Any] | None:
    """`{"direction": "out"|"in", "paths": [...]}` when the command is a kubectl cp tar stream: a `tar` that
    creates (`c`, `--create`: copy out of the pod) or extracts (`x`, `--extract`, `--get`: copy in) with the
    archive `-` (`f -`, `--file -`, `--file=-`: the exec stream). Options may be bundled (`cf`, `-xmf`) or
    apart (`-c -f -`). Out: the paths archived; in: the `-C` directory (none given: the working directory)."""
    words = _words(argv)
    start = next((i for i, w in enumerate(words) if posixpath.basename(w) == "tar"), None)
    if start is None:
        return None
    modes: set[str] = set()
    streamed = False
    operands: list[str] = []
    directory: str | None = None
    i = start + 1
    while i < len(words) and words[i] not in _SEPARATORS:
        first = i == start + 1
        word, following = words[i], words[i + 1] if i + 1 < len(words) else None
        i += 1
        if word.startswith("--"):
            name, _, value = word[2:].partition("=")
            modes.update(_LONG_MODES.get(name, ""))
            if name in ("file", "directory") and not value and following is not None:
                value, i = following, i + 1
            streamed = streamed or (name == "file" and value == "-")
            directory = value if name == "directory" else directory
        elif word == "-C" and following is not None:
            directory, i = following, i + 1
        elif (word.startswith("-") and len(word) > 1) or (first and word.isalpha()):
            cluster = word.lstrip("-")  # `cf`, `-xmf`: the first bare word of tar is an option cluster too
            modes.update(c for c in cluster if c in "cx")
            if cluster.endswith("f") and following is not None:
                streamed, i = streamed or following == "-", i + 1
        else:
            operands.append(word)
    if not streamed or len(modes) != 1:
        return None
    if "c" in modes:
        return {"direction": "out", "paths": operands}
    return {"direction": "in", "paths": [directory] if directory else []}

"""What looks like a credential: names (keys, env vars, headers, flags) and patterns in free text.

`redact_text` replaces every credential-shaped part of one string with `<redacted>`; it is pure text (no JSON
parsing) and costs time linear in the string's length. `is_credential_name` says whether a key, an env var or
a header name holds a secret (`DB_PASSWORD`, `X-Api-Key`, `token`) and `is_reference` whether a mapping only
points at one (`{name, key}`). docs/redaction.md lists the rules.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

REDACTED = "<redacted>"

# Names, compared with case, `-`, `_`, `.` and spaces ignored.
_CREDENTIAL_NAMES = frozenset(
    {
        "password", "passwd", "passphrase", "secret", "clientsecret", "token", "idtoken", "accesstoken",
        "refreshtoken", "bearertoken", "authtoken", "sessiontoken", "apitoken", "xauthtoken", "apikey", "xapikey",
        "authorization", "proxyauthorization", "cookie", "setcookie", "privatekey", "accesskey", "secretkey",
        "secretaccesskey", "awssecretaccesskey", "credential", "credentials", "clientkeydata", "auth",
    }
)  # fmt: skip
# Fields that carry no secret although a word of their name says so.
_NOT_CREDENTIAL_NAMES = frozenset({"serviceaccounttoken", "automountserviceaccounttoken"})
# A word of the name that makes it a credential (`DB_PASSWORD`, `githubToken`, `AWS_SECRET_ACCESS_KEY`) ...
_CREDENTIAL_WORDS = frozenset({"password", "passwd", "passphrase", "secret", "token", "credential", "credentials",
                               "apikey"})  # fmt: skip
_KEY_KINDS = frozenset({"api", "access", "secret", "private", "signing", "encryption", "ssh", "client", "master"})
# ... unless its last word says it is about one, not one (`secretName`, `secretRef`, `tokenFile`, `TOKEN_TTL`).
_DESCRIBING_WORDS = frozenset(
    {
        "name", "names", "ref", "refs", "reference", "file", "path", "dir", "ttl", "type", "kind", "namespace", "id",
        "ids", "length", "seconds", "expiration", "expiry", "expires", "url", "uri", "endpoint", "mode", "count",
        "size", "version", "format", "audience", "audiences", "header", "request", "requests", "review", "reviews",
        "prefix", "policy", "rotation", "period",
    }
)  # fmt: skip
# Query parameters that are secrets only in a URL (`?sig=...`, `&X-Amz-Signature=...`).
_QUERY_NAMES = frozenset({"key", "sig", "signature", "xamzsignature", "xgoogsignature", "code"})
# Header-like names whose value runs to the end of the line (`Cookie: a=1; b=2`).
_LINE_NAMES = frozenset({"authorization", "proxyauthorization", "cookie", "setcookie"})
# Mappings that name a secret without holding one: SecretKeySelector, LocalObjectReference, Secret volume sources.
_REFERENCE_KEYS = frozenset({"name", "key", "optional", "secretName", "items", "defaultMode", "namespace", "kind",
                             "apiVersion", "apiGroup"})  # fmt: skip
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_FOLD = str.maketrans("", "", "-_. ")


def _normal(name: str) -> str:
    return name.lower().translate(_FOLD)


@lru_cache(maxsize=8192)
def is_credential_name(name: str) -> bool:
    """Whether a key, env var, header or flag name holds a secret."""
    folded = _normal(name)
    if folded in _NOT_CREDENTIAL_NAMES:
        return False
    # a prefixed key (an annotation's `example.com/authorization`) is judged by its name too
    if folded in _CREDENTIAL_NAMES or _normal(name.rpartition("/")[2]) in _CREDENTIAL_NAMES:
        return True
    words = [w.lower() for w in _WORD.findall(name)]
    if not words or words[-1] in _DESCRIBING_WORDS:
        return False
    if any(w in _CREDENTIAL_WORDS for w in words):
        return True
    return any(b in ("key", "keys") and a in _KEY_KINDS for a, b in zip(words, words[1:], strict=False))


def is_reference(value: Mapping[Any, Any]) -> bool:
    """Whether a mapping under a credential name only points at a secret (`{name: db, key: password}`)."""
    return bool(value) and all(k in _REFERENCE_KEYS for k in value)


# ---- free text -------------------------------------------------------------------------------------------

# A cheap first look: strings without any of these cannot hold a pattern below.
_MAYBE = re.compile(  # searched in the lower-cased text: much faster than (?i)
    r"bearer|basic|eyj|://|-----begin|ls0tls1|pass|secret|token|key|auth|cookie|credential|sig|code"
    r"|gh[pousr]_|github_pat_|glpat-|xox[abprs]-|akia"
)
# Where a word may also start: after a newline or tab escaped in JSON text (`\nBearer ...`)
_ESCAPED = r"|(?<=\\[nrt]))"
_PEM = re.compile(r"(-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----)[\s\S]*?(-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z)")
_PEM_BASE64 = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/=]*")  # "-----BEGIN" in base64 (kubeconfig *-data fields)
_JWT = re.compile(
    r"(?:(?<![A-Za-z0-9_-])" + _ESCAPED + r"eyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]*+(?:\.[A-Za-z0-9_-]*+)?"
)
_BEARER = re.compile(r"(?i)(?:\b" + _ESCAPED + r"(bearer)([ \t]+|%20|\+)[^\s&\"',;()<>{}\[\]\\]+")
_BASIC = re.compile(r"(?i)(?:\b" + _ESCAPED + r"(basic)([ \t]+|%20|\+)([A-Za-z0-9+/=._~%:-]{6,})")
# `scheme://user:password@host`; also a text cut short right after the password (a truncated log line or
# message), where no `@` follows: then anything but a port number is taken for a password
_USERINFO = re.compile(r"(://[^/\s:@]++:)(?:[^/\s@]++(@)|(?![0-9]*+\Z)[^/\s@\"']++\Z)")
_PREFIXED = re.compile(
    r"(?:\b" + _ESCAPED + r"(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})"
)
_FLAG = re.compile(
    r"(?:(?<![\w-])" + _ESCAPED + r"(--?)([A-Za-z][\w-]{0,63}+)([ \t]+|\+|%20|&command=)"
    # the value: to a newline or tab, escaped in JSON text too; never another flag, so that in `-A --password x`
    # the match of `-A` does not swallow `--password`
    r"((?!-)(?:[^\s&\"',;\\]|\\(?![nrt]))++)"
)
# `key: value`, `key=value`, `"key": "value"`, `X-Api-Key%3A+value`, `?token=value`: the key, up to the value;
# also after a newline or tab escaped in JSON text, once or more (`\nCookie: ...`, `\\\\nCookie: ...`)
_ASSIGN = re.compile(
    r"(?:(?<!\\)\\++[nrt](?=[A-Za-z\"'])|(?<![\w.\\]))"
    r"\\*+(?:\"\"|[\"'])?([A-Za-z][\w.-]{0,63}+)\\*+(?:\"\"|[\"'])?[ \t]*(:|=|%3[AaDd])(?:[ \t]|\+|%20)*"
)
# `{"name": "DB_PASSWORD", "value": "..."}` as text (an env var or header list rendered into a message, YAML's
# `- name: DB_PASSWORD` / `value: ...`, quotes lost to a CSV reader): the name, up to the value
_Q = r"(?:\"\"|\\{0,16}[\"'])?"  # an optional quote, escaped inside escaped JSON, doubled in CSV
_PAIR = re.compile(
    rf"(?<![\w-]){_Q}name{_Q}[ \t]*:[ \t]*{_Q}([A-Za-z][\w.-]{{0,63}}+){_Q}"  # name: DB_PASSWORD
    rf"[ \t]*(?:,|\r?\n)[ \t]*{_Q}value{_Q}[ \t]*:[ \t]*"  # , value:
)
_BARE = re.compile(r"(?:[^\s,;&\"'{}\[\]\\]|\\(?![nrt]))++")  # to a newline or tab, escaped in JSON text too
# the same in a URL or a URL-encoded command: `+` and `%20` are spaces, `%3B` is `;`...
_URL_BARE = re.compile(r"(?:[^\s,;&\"'{}\[\]%+]|%(?!20|22|27|2[Cc]|3[Bb]|0[AaDd]))++")
_QUERY_VALUE = re.compile(r"[^&#\s\"'<>]+")  # a query parameter's value: to the next parameter
_LINE = re.compile(r"[^\r\n\"'&]+")
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*+"?|[\[\]{}]')  # a JSON string (skipped whole) or a bracket
_SCHEME_REDACTED = re.compile(r"\\*[\"']?[A-Za-z]+(?:[ \t]+|%20|\+)" + REDACTED + r"\\*[\"']?")
_NOT_SECRET_VALUES = frozenset({"true", "false", "null", "yes", "no", REDACTED})


def _pem_base64(m: re.Match[str]) -> str:
    head = m.group(0)[:64]
    try:
        decoded = base64.b64decode(head[: len(head) - len(head) % 4])
    except (binascii.Error, ValueError):
        return m.group(0)
    return REDACTED if b"PRIVATE KEY" in decoded else m.group(0)


def _basic(m: re.Match[str]) -> str:
    value = m.group(3)
    if value.isalpha() and len(value) < 16:  # prose ("Basic authentication"), not base64 of user:password
        return m.group(0)
    return m.group(1) + m.group(2) + REDACTED


def _flag(m: re.Match[str]) -> str:
    value = m.group(4)
    if value.lower() in _NOT_SECRET_VALUES or not is_credential_name(m.group(2)):
        return m.group(0)
    return m.group(1) + m.group(2) + m.group(3) + REDACTED


_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (_PEM, r"\1" + REDACTED + r"\2"),
    (_PEM_BASE64, _pem_base64),
    (_JWT, REDACTED),
    (_BEARER, r"\1\2" + REDACTED),
    (_BASIC, _basic),
    (_USERINFO, lambda m: m.group(1) + REDACTED + (m.group(2) or "")),
    (_PREFIXED, REDACTED),
    (_FLAG, _flag),
)


def _bracketed_end(text: str, start: int) -> int:
    """The index after the `[...]`/`{...}` that starts at `start` (brackets in strings skipped), or the text's end."""
    depth = 0
    for m in _STRUCTURE.finditer(text, start):
        token = m.group(0)
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return m.end()
    return len(text)


_OPENING = re.compile(r"\"\"(?=[^\",}\]\s])|\\{0,16}[\"']")  # `""`: a quote in a CSV field


@lru_cache(maxsize=16)
def _inside(opening: str) -> re.Pattern[str]:
    """The inside of a string opened by `opening`, up to its closing quote or the line's end."""
    if opening == '"':
        return re.compile(r"(?:[^\"\\\r\n]|\\.)*+")
    return re.compile("(?:(?!" + re.escape(opening) + ")[^\\r\\n])*+")


def _quoted_span(text: str, start: int) -> tuple[int, str] | None:
    """A quoted value: `"v"`, `'v'`, `\\"v\\"` inside an escaped JSON string, or `""v""` in a CSV field."""
    m = _OPENING.match(text, start)
    if m is None:
        return None
    opening = m.group(0)
    inside = _inside(opening).match(text, m.end())
    end = inside.end() if inside is not None else m.end()
    value = text[m.end() : end]
    if not value or value.lower() in _NOT_SECRET_VALUES:
        return None
    closed = text.startswith(opening, end)
    return (end + len(opening) if closed else end), opening + REDACTED + (opening if closed else "")


def _value_span(text: str, start: int, name: str, bare: re.Pattern[str]) -> tuple[int, str] | None:
    """Where the value after a credential name ends, and what replaces it; None when there is nothing to hide.
    `bare` is what an unquoted value is made of here (plain text, a URL-encoded command, a query string)."""
    if start >= len(text):
        return None
    if text[start] in "[{":
        return _bracketed_end(text, start), REDACTED
    done = _SCHEME_REDACTED.match(text, start)
    if done is not None:  # `Bearer <redacted>`: the scheme may stay
        return done.end(), done.group(0)
    if text[start] in "\"'\\":
        quoted = _quoted_span(text, start)
        if quoted is not None or text[start] != "\\":
            return quoted
    value = (_LINE if _normal(name) in _LINE_NAMES else bare).match(text, start)
    if value is None or value.group(0).strip().lower() in _NOT_SECRET_VALUES:
        return None
    return value.end(), REDACTED


def _redact_assignments(text: str, also: frozenset[str]) -> str:
    """Values of credential names in `key: value` / `key=value` form (YAML, env files, headers, query strings).
    `secret=<name>` outside a query string is how Falco's outputs name a Secret: it stays."""
    parts: list[str] = []
    done = 0
    pos = 0
    while True:
        m = _ASSIGN.search(text, pos)
        if m is None:
            break
        name = m.group(1)
        in_query = m.start() > 0 and text[m.start() - 1] in "?&"
        folded = _normal(name)
        named = is_credential_name(name) and not (folded == "secret" and m.group(2) == "=" and not in_query)
        if named or folded in also or (in_query and folded in _QUERY_NAMES):
            bare = _QUERY_VALUE if in_query else _URL_BARE if m.group(2).startswith("%") else _BARE
            span = _value_span(text, m.end(), name, bare)
            if span is not None:
                parts += (text[done : m.end()], span[1])
                done = pos = span[0]
                continue
        pos = m.start(1) + 1
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _redact_pairs(text: str) -> str:
    """The values of name/value pairs named like a credential, in JSON text."""
    parts: list[str] = []
    done = 0
    for m in _PAIR.finditer(text):
        if m.start() < done or not is_credential_name(m.group(1)):
            continue
        span = _value_span(text, m.end(), m.group(1), _BARE)
        if span is not None:
            parts += (text[done : m.end()], span[1])
            done = span[0]
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def redact_text(text: str, *, also: frozenset[str] = frozenset()) -> str:
    """`text` with every credential-shaped part replaced by `<redacted>` (docs/redaction.md lists them); `also`:
    more names (lower case, without `-_. `) whose values go, e.g. `data` in the text of a request to secrets."""
    if len(text) < 8 or (not also and _MAYBE.search(text.lower()) is None):
        return text
    for pattern, replacement in _SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return _redact_assignments(_redact_pairs(text), also)


@lru_cache(maxsize=8192)
def redact_short_text(text: str) -> str:
    """`redact_text`, memoised for short strings: keys and short values come again and again."""
    return redact_text(text)


def redact_message(text: str, limit: int = 500) -> str:
    """A message that may quote its input (a rejection reason, an error): redacted, at most `limit` characters."""
    return _redact_message(text[: 2 * limit], limit)


@lru_cache(maxsize=1024)  # the same few reasons come again and again (2 M junk items in one body)
def _redact_message(text: str, limit: int) -> str:
    clean = redact_text(text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"

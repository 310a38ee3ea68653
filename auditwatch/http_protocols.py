"""uvicorn's HTTP protocols, answering what their parser refuses as problem details, and bounding a request's head.

uvicorn parses a request before any app code runs, and refuses a malformed one (a bad request line or header)
with a plain-text `Invalid HTTP request received.`. These subclasses replace the method that sends that answer:
a 400 problem (api/problems.py), as every other error, or a 431 when the request line and headers exceed
MAX_HEAD_BYTES; the connection is then closed, and after a HEAD the answer has no body. A request with both
Content-Length and Transfer-Encoding (request smuggling's ambiguity, RFC 9112 6.1) gets that 400 on both:
httptools' parser refuses it itself, h11 would read the body as chunked, so its protocol refuses it. Neither
parser bounds every head: httptools has no bound at all (a 10 MB header reached the app), so its protocol
counts a request's head as it is parsed, and what it is fed until the headers are complete; h11 bounds only a
head still incomplete after a read (its protocol sets that bound to MAX_HEAD_BYTES), so its protocol also
measures each request's head once parsed, as httptools' does. The details are fixed texts: a parser's message
may quote what was sent.
"""

from __future__ import annotations

import sys
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import STATUS_PHRASES, H11Protocol
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from api.problems import PROBLEM_JSON, problem_response

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; h11's default is 16 KiB, nginx's 32 KiB
MALFORMED = "malformed HTTP request: the server could not parse it"
TOO_LARGE = f"request line and headers larger than {MAX_HEAD_BYTES} bytes"


def _body(status: int) -> bytes:
    return bytes(problem_response(status, TOO_LARGE if status == 431 else MALFORMED).body)


class _HeadTooLarge(Exception):
    pass


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (its default), its refusals as problems and a request's head bounded."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # until the parser has the current request's headers
        self._fed = 0  # bytes fed while in the head: bounds a head that never ends (or one endless header)
        self._parsed = 0  # the head's size as parsed: a head that ends in the same read as its body begins
        self._too_large = False

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._fed += len(data)
        super().data_received(data)
        if self._in_head and self._fed > MAX_HEAD_BYTES and not self.transport.is_closing():
            self.logger.warning("Request line and headers too large.")
            self._refuse(431)

    def on_url(self, url: bytes) -> None:
        self._parsed += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._too_large = self._parsed > MAX_HEAD_BYTES
        self._in_head, self._fed, self._parsed = False, 0, 0
        if self._too_large:  # the parser raises its HttpParserError, which uvicorn answers with send_400_response
            raise _HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def send_400_response(self, msg: str) -> None:
        self._refuse(431 if self._too_large else 400)

    def _refuse(self, status: int) -> None:
        body = _body(status)
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"content-type: ", PROBLEM_JSON.encode(), b"\r\ncontent-length: ", str(len(body)).encode(),
                        b"\r\nconnection: close\r\n\r\n"])  # fmt: skip
        if self.parser.get_method() != b"HEAD":  # after HEAD the same head, no body (as on h11)
            content.append(body)
        self.transport.write(b"".join(content))
        self.transport.close()


class _Refused(h11.RemoteProtocolError):
    """A request h11 parsed but auditwatch refuses; raised where uvicorn handles h11's own refusals."""

    def __init__(self, msg: str, status: int, method: bytes) -> None:
        super().__init__(msg, error_status_hint=status)
        self.method = method


class _CheckedConnection(h11.Connection):
    """h11's server side, refusing a complete request whose head is too large, or that has both Content-Length
    and Transfer-Encoding, before uvicorn hands it to the app."""

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        event = super().next_event()
        if isinstance(event, h11.Request):
            size = len(event.target) + sum(len(name) + len(value) + 4 for name, value in event.headers)  # as httptools
            if size > MAX_HEAD_BYTES:
                raise _Refused("request line and headers too large", 431, event.method)
            names = {name for name, _ in event.headers}  # lowercased by h11
            if b"content-length" in names and b"transfer-encoding" in names:
                raise _Refused("Content-Length with Transfer-Encoding", 400, event.method)
        return event


class ProblemH11Protocol(H11Protocol):
    """uvicorn's h11 protocol (auditwatch/auth.py's ClientCertProtocol derives from it), its refusals as problems,
    a request's head bounded, and Content-Length with Transfer-Encoding refused."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _CheckedConnection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    def send_400_response(self, msg: str) -> None:
        # called while handling h11's RemoteProtocolError (or a _Refused), whose hint tells a head too large (431)
        # from the rest; after a HEAD, h11 allows no body
        error = sys.exc_info()[1]
        status = 431 if getattr(error, "error_status_hint", 400) == 431 else 400
        body = _body(status)
        headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]  # fmt: skip
        response = h11.Response(status_code=status, headers=headers, reason=STATUS_PHRASES[status])
        events: list[h11.Response | h11.Data | h11.EndOfMessage] = [response, h11.Data(data=body), h11.EndOfMessage()]
        if isinstance(error, _Refused) and error.method == b"HEAD":
            del events[1]
        for event in events:
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()

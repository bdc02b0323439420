"""Limits uvicorn does not set on its fast (httptools) protocol: the size
of a request's head and the number of its header fields. Without them a
client may send a megabyte-long header line or thousands of headers, which
the server buffers and the application then walks. uvicorn bounds this only
on its h11 protocol (`h11_max_incomplete_event_size`), several times slower
per request, so the httptools protocol is kept and bounded here.

A request over either limit is answered 431 (RFC 6585) with a problem body,
and its connection closed, before the application sees it. The limits
apply to each request's own head: requests pipelined before it in the same
bytes count for nothing, and are answered first, in order (so is a
malformed request's 400: uvicorn would send it at once and close, leaving
the requests before it unanswered)."""

from __future__ import annotations

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ledger.api.problems import PROBLEM_JSON

LINGER_SECONDS = 2.0


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing heads over the class's limits
    (set on a subclass by `bounded_protocol`)."""

    max_head_bytes = 16 * 1024
    max_headers = 100
    _head_bytes = 0  # of the head's parts parsed so far
    _raw_bytes = 0  # received while the head was still open
    _in_head = True
    _refusal: str | None = None
    # A request began in the bytes being parsed: what came before it in them
    # belongs to earlier requests.
    _began_here = False
    # The 400 or 431 to send once the requests before it are answered.
    _deferred: str | None = None
    # The request being parsed is whole (its body too), and its cycle once
    # its head was read.
    _message_done = True
    _cycle_of_message = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        # Requests parsed and not yet answered, oldest first.
        self._unanswered: list = []

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._raw_bytes = 0
        self._in_head = True
        self._began_here = True
        self._message_done = False
        self._cycle_of_message = None

    def on_message_complete(self) -> None:
        self._message_done = True
        super().on_message_complete()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if len(self.headers) >= self.max_headers:
            self._refuse(f"a request may carry at most {self.max_headers} header fields")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()
        if self.cycle is not None and self.cycle not in self._unanswered:
            self._unanswered.append(self.cycle)
            self._cycle_of_message = self.cycle

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self._deferred is not None:
            return  # the rest of a refused request, read and dropped
        self._began_here = False
        super().data_received(data)
        # The parser holds a header line until it ends: a head still
        # open after this many bytes is refused without waiting for more.
        # Bytes of the chunk its request began in are not counted (some were
        # earlier requests'), so a head may reach one read's size more.
        if self._in_head and self._refusal is None and self._deferred is None:
            if not self._began_here:
                self._raw_bytes += len(data)
            if self._raw_bytes > self.max_head_bytes:
                self._refusal = self._too_large()
                self.send_400_response("")

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > self.max_head_bytes:
            self._refuse(self._too_large())

    def _refuse(self, why: str) -> None:
        self._refusal = why
        # The parser turns this into its error, which uvicorn answers
        # through send_400_response below.
        raise ValueError(why)

    def _too_large(self) -> str:
        return f"the request's line and headers may be at most {self.max_head_bytes} bytes"

    def _busy(self) -> bool:
        """Whether a request before the refused one is still unanswered."""
        self._unanswered = [c for c in self._unanswered if not c.response_complete]
        return bool(self._unanswered)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Answered requests leave the list at once: on a keep-alive
        # connection it holds the few requests in flight, never its history.
        busy = self._busy()
        if self._deferred is not None and not busy:
            msg, self._deferred = self._deferred, ""
            self._answer_refusal(msg)

    def send_400_response(self, msg: str) -> None:
        broken = None if self._message_done else self._cycle_of_message
        if broken is not None and broken in self._unanswered:
            # The refused request got as far as its body: it is never run
            # (queued) or hears that its client is gone (running).
            self._unanswered.remove(broken)
            if self.pipeline and self.pipeline[0][0] is broken:
                self.pipeline.popleft()
            else:
                broken.disconnected = True
                broken.message_event.set()
        if self._busy():
            # Answer the requests before it first; read nothing more.
            self._deferred = msg
            self.flow.pause_reading()
            return
        self._answer_refusal(msg)

    def _answer_refusal(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
            return
        body = msgspec.json.encode(
            {
                "type": "/problems/header-fields-too-large",
                "code": "header-fields-too-large",
                "title": "The request's headers are too large",
                "status": 431,
                "detail": self._refusal,
                "max_head_bytes": self.max_head_bytes,
                "max_headers": self.max_headers,
            }
        )
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: " + PROBLEM_JSON.encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        # Closing now, with the client's bytes still arriving, would
        # reset the connection and lose the answer: say we are done
        # sending, drop what still comes, and close a moment later.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def bounded_protocol(max_head_bytes: int, max_headers: int) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these limits (uvicorn's `http=`)."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "max_headers": max_headers},
    )

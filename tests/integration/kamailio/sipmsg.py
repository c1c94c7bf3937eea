"""Reading what sipp saw: its `-trace_msg` message log, the SIP messages in it, and their SDP.

Pure parsing (text in, frozen dataclasses out), so tests can assert on exactly what each SIP
party received from Kamailio after the relay rewrote the SDP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# sipp writes one block per message: a dashed separator line with a timestamp, then
# "UDP message sent (N bytes):" or "UDP message received [N] bytes :", a blank line, the message.
_BLOCK = re.compile(r"^-{20,} [^\n]*\n(?P<what>[^\n]*)\n\n", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class SdpMedia:
    """One m= section: `m=<kind> <port> <proto> <formats>` with its c= and a= lines."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    connection: str | None
    attributes: tuple[str, ...]

    @property
    def rtcp_port(self) -> int | None:
        """The port of `a=rtcp:<port>` when present."""
        for attr in self.attributes:
            if attr.startswith("rtcp:"):
                return int(attr[5:].split()[0])
        return None


@dataclass(frozen=True, slots=True)
class Sdp:
    """The parts of an SDP the relay rewrites (RFC 8866 §5): o=, session c=, m= sections."""

    origin_address: str
    session_connection: str | None
    media: tuple[SdpMedia, ...]
    text: str

    @property
    def audio(self) -> SdpMedia:
        """The first audio m= section."""
        return next(m for m in self.media if m.kind == "audio")

    def connection_for(self, media: SdpMedia) -> str | None:
        """Effective connection address of a media section (its own c= wins)."""
        return media.connection or self.session_connection


def _address(line: str) -> str:
    # c=IN IP4 <addr>[/ttl] and o=<user> <id> <ver> IN IP4 <addr>: the address is the last word
    return line.split()[-1].split("/")[0]


def parse_sdp(text: str) -> Sdp:
    """Parse the SDP lines we assert on; other lines are kept only in `text`."""
    origin = ""
    session_conn: str | None = None
    media: list[SdpMedia] = []
    current: dict[str, object] | None = None
    attrs: list[str] = []

    def close() -> None:
        if current is not None:
            media.append(SdpMedia(attributes=tuple(attrs), **current))  # type: ignore[arg-type]

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("o="):
            origin = _address(line)
        elif line.startswith("m="):
            close()
            kind, port, proto, *formats = line[2:].split()
            current = {
                "kind": kind,
                "port": int(port.split("/")[0]),
                "proto": proto,
                "formats": tuple(formats),
                "connection": None,
            }
            attrs = []
        elif line.startswith("c="):
            if current is None:
                session_conn = _address(line)
            else:
                current["connection"] = _address(line)
        elif line.startswith("a=") and current is not None:
            attrs.append(line[2:])
    close()
    return Sdp(origin, session_conn, tuple(media), text)


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One SIP message as sipp logged it, sent or received."""

    received: bool
    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: str
    raw: str = field(repr=False)

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0")

    @property
    def method(self) -> str:
        """The request method, or the CSeq method of a response."""
        if self.is_request:
            return self.start_line.split()[0]
        return self.header("CSeq").split()[-1]

    @property
    def status(self) -> int | None:
        return None if self.is_request else int(self.start_line.split()[1])

    @property
    def call_id(self) -> str:
        return self.header("Call-ID")

    def header(self, name: str) -> str:
        """First value of header `name` (case-insensitive); '' when absent."""
        values = self.header_values(name)
        return values[0] if values else ""

    def header_values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def sdp(self) -> Sdp | None:
        if "application/sdp" not in self.header("Content-Type") or not self.body.strip():
            return None
        return parse_sdp(self.body)


def parse_sip(text: str, received: bool) -> SipMessage:
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.strip("\n").split("\n")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return SipMessage(received, lines[0].strip(), tuple(headers), body, text)


def parse_message_log(text: str) -> list[SipMessage]:
    """All messages in a sipp `-trace_msg` log, in order."""
    matches = list(_BLOCK.finditer(text))
    out = []
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        what = m.group("what")
        if "message" not in what:
            continue
        out.append(parse_sip(text[m.end() : end].strip("\n") + "\n", "received" in what))
    return out

"""STUN for ICE over aioice's codec (`aioice.stun`): classify, authenticate, build, pure.

No STUN codec of our own: parsing, MESSAGE-INTEGRITY and FINGERPRINT are aioice's. This module
adds only what ICE needs around it (RFC 8445 §7, RFC 7983 demultiplexing) and turns every defect
into a `DropReason` for a counter; nothing here raises on peer input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aioice import stun

Address = tuple[str, int]


class DropReason(enum.Enum):
    """Why an incoming STUN datagram was dropped (one counter each)."""

    MALFORMED = "malformed"
    BAD_FINGERPRINT = "bad-fingerprint"
    MISSING_FINGERPRINT = "missing-fingerprint"
    BAD_INTEGRITY = "bad-integrity"
    MISSING_INTEGRITY = "missing-integrity"
    UNKNOWN_UFRAG = "unknown-ufrag"
    NOT_BINDING = "not-binding"
    UNMATCHED_RESPONSE = "unmatched-response"
    NO_REMOTE_CREDENTIALS = "no-remote-credentials"


def looks_like_stun(data: bytes) -> bool:
    """RFC 7983 §7: first byte 0–3 and the magic cookie, so not RTP, RTCP or DTLS."""
    return len(data) >= 20 and data[0] < 4 and data[4:8] == b"\x21\x12\xa4\x42"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A STUN message that parsed and whose FINGERPRINT (when present) matched."""

    message: stun.Message


def parse(data: bytes) -> Parsed | DropReason:
    """aioice's parser, with its `ValueError` turned into a reason."""
    try:
        message = stun.parse_message(data)
    except ValueError as exc:
        if "fingerprint" in str(exc):
            return DropReason.BAD_FINGERPRINT
        return DropReason.MALFORMED
    except Exception:  # noqa: BLE001 - aioice may raise others on garbage (struct, ipaddress)
        return DropReason.MALFORMED
    if message.message_method != stun.Method.BINDING:
        return DropReason.NOT_BINDING
    if "FINGERPRINT" not in message.attributes:
        return DropReason.MISSING_FINGERPRINT
    return Parsed(message)


def authenticate(message: stun.Message, key: str) -> DropReason | None:
    """RFC 8489 §9.1.3 short-term credential check; None when it passes."""
    if "MESSAGE-INTEGRITY" not in message.attributes:
        return DropReason.MISSING_INTEGRITY
    if not message.check_message_integrity(key.encode()):
        return DropReason.BAD_INTEGRITY
    return None


def request_ufrags(message: stun.Message, local_ufrag: str) -> DropReason | None:
    """The USERNAME of a request to us must be `<our ufrag>:<theirs>` (RFC 8445 §7.3)."""
    username = message.attributes.get("USERNAME")
    if not isinstance(username, str) or not username.startswith(local_ufrag + ":"):
        return DropReason.UNKNOWN_UFRAG
    return None


def binding_request(
    transaction_id: bytes,
    username: str,
    priority: int,
    controlling: bool,
    tie_breaker: int,
    nominate: bool,
    key: str,
) -> bytes:
    """An ICE connectivity check (RFC 8445 §7.2.2) signed with the remote password."""
    msg = stun.Message(stun.Method.BINDING, stun.Class.REQUEST, transaction_id)
    msg.attributes["USERNAME"] = username
    msg.attributes["PRIORITY"] = priority
    if controlling:
        msg.attributes["ICE-CONTROLLING"] = tie_breaker
        if nominate:
            msg.attributes["USE-CANDIDATE"] = None
    else:
        msg.attributes["ICE-CONTROLLED"] = tie_breaker
    msg.add_message_integrity(key.encode())
    return bytes(msg)


def binding_success(transaction_id: bytes, source: Address, key: str) -> bytes:
    """The answer to a check: XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT."""
    msg = stun.Message(stun.Method.BINDING, stun.Class.RESPONSE, transaction_id)
    msg.attributes["XOR-MAPPED-ADDRESS"] = source
    msg.add_message_integrity(key.encode())
    return bytes(msg)


def role_conflict(transaction_id: bytes, key: str) -> bytes:
    """487 Role Conflict (RFC 8445 §7.3.1.1)."""
    msg = stun.Message(stun.Method.BINDING, stun.Class.ERROR, transaction_id)
    msg.attributes["ERROR-CODE"] = (487, "Role Conflict")
    msg.add_message_integrity(key.encode())
    return bytes(msg)

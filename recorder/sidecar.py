"""The recording sidecar's JSON document, as types (docs/recording-sidecar.md is its contract).

Built by recorder.recording (the recording's own fields) and rtpvault.recording (call, parties,
SDP), completed by recorder.spool (final status, size, hash). Documents read back from disk
(recorder.recovery, rtpvault.archive, the search CLI) stay plain dicts checked key by key: a
file is only as complete as the version that wrote it and readers ignore keys they do not know
(hence also total=False here).
"""

from __future__ import annotations

from typing import TypedDict

__all__ = [
    "Sidecar",
    "SidecarCodec",
    "SidecarMedia",
    "SidecarParty",
    "SidecarPause",
    "SidecarSdp",
    "SidecarStream",
]

VERSION = 1


class SidecarCodec(TypedDict):
    pt: int
    name: str
    rate: int


class SidecarMedia(TypedDict, total=False):
    type: str
    address: str | None
    port: int
    codecs: list[SidecarCodec]


class SidecarParty(TypedDict, total=False):
    tag: str
    label: str | None
    role: str  # offerer | answerer
    user: str | None  # the SDP o= user name
    media: list[SidecarMedia]


# "in" is a keyword: the functional form
SidecarSdp = TypedDict(
    "SidecarSdp",
    {"direction": str, "party": str, "in": str, "out": str, "time": float},
)


class SidecarPause(TypedDict):
    start: float
    end: float | None  # None while paused


class SidecarStream(TypedDict, total=False):
    ssrc: int | None
    kind: str  # rtp | rtcp
    party: str | None
    src: str
    dst: str
    payload_types: list[int]
    codec: str | None
    packets: int
    bytes: int
    lost: int
    out_of_order: int
    duplicates: int
    jitter_ms: float
    max_jitter_ms: float
    loss_pct: float
    mos: float | None
    first: float | None
    last: float | None


class Sidecar(TypedDict, total=False):
    version: int
    id: str
    series: str  # the id of the recording's first part (= `id` for part 1)
    part: int  # 1, 2, … (a restored call goes on recording into part n+1)
    node: str
    call_id: str
    tags: list[str]
    metadata: str | None
    meta: dict[str, str]
    caller: str | None
    callee: str | None
    format: str  # pcap | pcapng
    link: str  # eth | raw
    path: str | None
    metadata_path: str | None
    sidecar_path: str
    started: float
    ended: float | None
    status: str  # recording | complete | interrupted | failed
    reason: str | None
    size: int | None
    sha256: str | None
    parties: list[SidecarParty]
    codecs: list[str]
    sdp: list[SidecarSdp]
    pauses: list[SidecarPause]
    streams: list[SidecarStream]

"""Seeded random codec negotiations against rtpengine 10.5 and rtpvault (docs/spec/sdp.md §1.11a).

Each case: an offer drawn from 14 codecs (static, dynamic, unknown to rtpengine, several
telephone-event clock rates) with random codec flags (`transcode`, `mask`, `strip`, `offer`,
`accept`, `consume`, `except`, `ptime`, `ptime-reverse`, `always-transcode`), a random answer
(`single-codec` at times), then a re-offer from either side or a second answer. Both relays
must print the same SDPs (ports masked) and show the same media flags in `query`.

Left out, as docs/spec/sdp.md §1.11a says: sequences rtpvault refuses because a plan would
need an encoder it lacks (the refusal must name G729, GSM or speex), and offers holding
nothing but telephone-event (rtpengine's renumbering there is not reproduced).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import daemons
from tests.support.daemons import Daemon
from tests.support.ng import NgClient, to_str

CRLF = "\r\n"
POOL = (
    ("0", "PCMU/8000", None), ("8", "PCMA/8000", None), ("9", "G722/8000", None),
    ("18", "G729/8000", "annexb=no"), ("3", "GSM/8000", None), ("13", "CN/8000", None),
    ("96", "opus/48000/2", "useinbandfec=1"), ("111", "opus/48000/2", "minptime=10;useinbandfec=1"),
    ("101", "telephone-event/8000", "0-16"), ("110", "telephone-event/48000", "0-15"),
    ("102", "telephone-event/16000", None), ("97", "AMR/8000", "octet-align=1"),
    ("98", "speex/16000", None), ("4", "G723/8000", None),
)
UNENCODABLE = ("18", "3", "98")
NAMES = ("opus", "PCMA", "PCMU", "G722", "G729", "telephone-event", "CN", "GSM", "speex", "all",
         "opus/48000/2", "PCMU/8000", "AMR")
SEEDS = (11, 12, 13)
CASES = 60


class Case:
    """One random call sequence (pure: the same seed gives the same requests)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.offer, self.offer_flags = self.sdp("alice", "192.0.2.10", 16000), self.flags()
        self.answer = self.sdp("bob", "192.0.2.20", 17000)
        self.answer_flags = {"flags": ["single-codec"]} if rng.random() < 0.1 else {}
        self.re_flags = self.flags()
        self.re_offer = self.offer if rng.random() < 0.5 else self.sdp("alice", "192.0.2.10", 16000)
        self.re_answer = (
            self.answer if rng.random() < 0.5 else self.sdp("bob", "192.0.2.20", 17000)
        )
        self.mode = rng.random()

    def sdp(self, user: str, ip: str, port: int) -> str:
        rng = self.rng
        pool = POOL if rng.random() < 0.2 else [p for p in POOL if p[0] not in UNENCODABLE]
        chosen = rng.sample(pool, rng.randint(1, 5))
        lines = ["v=0", f"o={user} 1 1 IN IP4 {ip}", "s=-", f"c=IN IP4 {ip}", "t=0 0",
                 f"m=audio {port} RTP/AVP " + " ".join(n for n, _, _ in chosen)]
        for number, name, fmtp in chosen:
            lines.append(f"a=rtpmap:{number} {name}")
            if fmtp:
                lines.append(f"a=fmtp:{number} {fmtp}")
        if rng.random() < 0.3:
            lines.append(f"a=ptime:{rng.choice([20, 30, 40])}")
        return CRLF.join([*lines, "a=sendrecv"]) + CRLF

    def flags(self) -> dict[str, Any]:
        rng = self.rng
        out: dict[str, Any] = {}
        codec = {kind: rng.sample(NAMES, rng.randint(1, 2))
                 for kind in ("transcode", "mask", "strip", "offer", "accept", "consume", "except")
                 if rng.random() < 0.3}
        if codec:
            out["codec"] = codec
        if rng.random() < 0.1:
            out["ptime"] = rng.choice([20, 30, 40])
        if rng.random() < 0.1:
            out["ptime-reverse"] = rng.choice([20, 30])
        if rng.random() < 0.1:
            out["flags"] = ["always-transcode"]
        return out

    def only_dtmf(self) -> bool:
        return all(re.search(r"telephone-event", line) for line in self.offer.split(CRLF)
                   if line.startswith("a=rtpmap"))

    def requests(self, cid: str) -> Iterator[dict[str, Any]]:
        def req(command: str, frm: str, to: str | None, sdp: str | None, extra: dict[str, Any]
                ) -> dict[str, Any]:
            body: dict[str, Any] = {"command": command, "call-id": cid, "from-tag": frm}
            if to is not None:
                body["to-tag"] = to
            if sdp is not None:
                body["sdp"] = sdp
            return {**body, **extra}

        yield req("offer", "ft", None, self.offer, self.offer_flags)
        yield req("answer", "ft", "tt", self.answer, self.answer_flags)
        yield req("query", "ft", None, None, {})
        if self.mode < 0.4:
            yield req("offer", "ft", "tt", self.re_offer, self.re_flags)
            yield req("answer", "ft", "tt", self.re_answer, {})
        elif self.mode < 0.6:
            yield req("offer", "tt", "ft", self.re_answer, self.re_flags)
            yield req("answer", "tt", "ft", self.re_offer, {})
        elif self.mode < 0.7:
            yield req("answer", "ft", "tt", self.re_answer, {})
        yield req("query", "ft", None, None, {})


def _normalised(reply: dict[str, Any]) -> Any:
    reply = to_str(reply)
    if "tags" in reply:
        return {tag: [m["flags"] for m in v.get("medias", [])]
                for tag, v in sorted(reply["tags"].items())}
    sdp = reply.get("sdp")
    if sdp:
        sdp = re.sub(r"a=rtcp:\d+", "a=rtcp:P", re.sub(r"m=audio \d+", "m=audio P", sdp))
    return reply.get("result"), reply.get("error-reason"), sdp


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Daemon, Daemon]]:
    work: Path = tmp_path_factory.mktemp("random-codecs")
    # deleted calls give their ports back at once, and the range outlasts every case
    extra = ["--delete-delay=0"]
    engine = daemons.start("rtpengine", work, ports=3000, extra=extra)
    try:
        vault = daemons.start("rtpvault", work, ports=3000, extra=extra)
    except BaseException:
        engine.stop()
        raise
    try:
        yield engine, vault
    finally:
        vault.stop()
        engine.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_codec_negotiations(pair: tuple[Daemon, Daemon], seed: int) -> None:
    rng = random.Random(seed)
    clients: list[NgClient] = [d.client() for d in pair]
    compared = 0
    for i in range(CASES):
        case, cid = Case(rng), f"rnd-{seed}-{i}"
        if case.only_dtmf():
            continue
        results = []
        for client in clients:
            results.append([_normalised(client.call(r)) for r in case.requests(cid)])
            client.call({"command": "delete", "call-id": cid, "from-tag": "ft"})
        engine, vault = results
        refusals = [str(r[1]) for r in vault if isinstance(r, tuple) and r[0] == "error"]
        if refusals:
            assert all(re.search(r"G729|GSM|speex", r) for r in refusals), refusals
            continue
        assert vault == engine, (
            f"seed {seed} case {i}: offer flags {case.offer_flags}, mode {case.mode:.2f}\n"
            f"offer {case.offer!r}\nanswer {case.answer!r}\nrtpengine {engine}\nrtpvault {vault}"
        )
        compared += 1
    assert compared >= CASES // 2  # most cases are compared, not skipped

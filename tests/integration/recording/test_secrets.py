"""No SDES key, MIKEY message or ICE password of a recorded call is stored or shipped (issue 17
item 5, docs/recording.md "Secrets in recorded SDP"): a real rtpvault records an SDES + ICE call
(docs/spec/sdp.md §1.9a, §1.12) as pcapng with its SQLite index and an ng trace to a HEP
receiver; not one byte of the spool (sidecar, metadata, pcapng, index), of the HEP datagrams or of
`rtpvault show` holds a key or password of either side or of rtpvault's own, and tshark still
dissects the pcapng's SDP, redacted."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from rtpvault.cli import cli
from storage.db import open_index
from storage.models import Recording
from tests.support import daemons
from tests.support.hep_receiver import HepReceiver
from tests.support.tools import require

from .conftest import sidecars, wait_until
from .media import Leg

pytestmark = pytest.mark.integration

"""The experimental switch SRTP/ICE SDP rewriting is behind today; drop it once it is gone."""

R40 = "REDACTED" * 5  # the marker of a 30-byte key-salt (40 base64 characters)


def _key(size: int = 30) -> str:
    return base64.b64encode(os.urandom(size)).decode()


def _pwd() -> str:
    return base64.b64encode(os.urandom(18)).decode()  # 24 ice-chars


def _sdp(leg: Leg, session: int, keys: list[str], ufrag: str, pwd: str, mikey: str) -> str:
    crypto = "".join(f"a=crypto:{i} {suite} inline:{key}{life}\r\n" for i, (suite, key, life) in
                     enumerate(zip(("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"), keys,
                                   ("|2^31", ""), strict=False), 1))  # fmt: skip
    return (
        f"v=0\r\no=- {session} 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"a=key-mgmt:mikey {mikey}\r\n"
        f"m=audio {leg.port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n{crypto}"
        f"a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\n"
        f"a=candidate:1 1 UDP 2130706431 127.0.0.1 {leg.port} typ host\r\na=sendrecv\r\n"
    )


def _secrets_of(sdp: str) -> list[str]:
    """The key-salts and ICE passwords an SDP carries (base64 padding off: found either way)."""
    keys = re.findall(r"inline:([A-Za-z0-9+/]+)", sdp)
    pwds = re.findall(r"a=ice-pwd:(\S+)", sdp)
    mikey = re.findall(r"a=key-mgmt:mikey ([A-Za-z0-9+/]+)", sdp)
    return keys + pwds + mikey


def _leaks(secrets: list[str], blobs: dict[str, bytes]) -> list[tuple[str, str]]:
    """(where, secret) for every secret found in any of the blobs, as text or as JSON text."""
    found = []
    for where, data in blobs.items():
        for s in secrets:
            forms = {s.encode(), json.dumps(s)[1:-1].encode()}
            if any(f in data for f in forms):
                found.append((where, s))
    return found


def test_no_key_or_ice_password_is_stored_or_shipped(
    recording_relay: Callable[..., daemons.Daemon], tmp_path: Path
) -> None:
    rx = HepReceiver()
    rx.start()
    spool = tmp_path / "spool"
    relay = recording_relay("pcapng", extra=[
        f"--homer-ng=udp:127.0.0.1:{rx.port}"])  # fmt: skip
    caller, callee = Leg(), Leg()
    ng = relay.client()
    call_id = "sdes-ice@pbx"
    offer_in = _sdp(caller, 111, [_key(), _key()], "F7gI", _pwd(), _key(40))
    answer_in = _sdp(callee, 222, [_key()], "Rq5z", _pwd(), _key(40))
    try:
        offer = ng.call({"command": "offer", "call-id": call_id, "from-tag": "ft",
                         "sdp": offer_in, "record-call": "yes"})  # fmt: skip
        assert offer["result"] == "ok", offer
        answer = ng.call({"command": "answer", "call-id": call_id, "from-tag": "ft",
                          "to-tag": "tt", "sdp": answer_in})  # fmt: skip
        assert answer["result"] == "ok", answer
        secrets = [*_secrets_of(offer_in), *_secrets_of(answer_in),
                   *_secrets_of(str(offer["sdp"])), *_secrets_of(str(answer["sdp"]))]  # fmt: skip
        # both sides' keys, passwords and MIKEY data, and rtpvault's own keys and passwords
        assert len(secrets) >= 3 + 2 + 2 + 2 and all(len(s) >= 16 for s in secrets), secrets
        assert re.search(r"a=ice-pwd:\S+", str(offer["sdp"]))  # rtpvault's own ICE password
        r = ng.call({"command": "delete", "call-id": call_id, "from-tag": "ft",
                     "delete-delay": 0})  # fmt: skip
        assert r["result"] == "ok", r
        assert wait_until(lambda: [d["status"] for d in sidecars(spool)] == ["complete"])
        index = open_index(f"sqlite:///{spool}/recordings.db", create=False)
        doc = sidecars(spool)[0]

        def indexed() -> bool:
            with index.session() as s:
                row = s.get(Recording, doc["id"])
                return row is not None and row.status == "complete"

        assert wait_until(indexed)
        assert rx.wait(lambda rs: sum(r.proto_type == 61 for r in rs) >= 6)
        shown = CliRunner().invoke(cli, ["show", "--db", f"sqlite:///{spool}/recordings.db",
                                         call_id], env={"COLUMNS": "200"})  # fmt: skip
        shown_json = CliRunner().invoke(cli, ["show", "--db", f"sqlite:///{spool}/recordings.db",
                                              call_id, "--json"])  # fmt: skip
        assert shown.exit_code == 0 and shown_json.exit_code == 0, shown.output
    finally:
        ng.close()
        caller.close()
        callee.close()
        relay.stop()
        rx.stop()

    files = {str(p.relative_to(spool)): p.read_bytes() for p in spool.rglob("*") if p.is_file()}
    kinds = {Path(name).suffix for name in files}
    assert {".json", ".txt", ".pcapng", ".db"} <= kinds, sorted(files)
    blobs = {**files, "rtpvault show": shown.output.encode(),
             "rtpvault show --json": shown_json.output.encode(),
             "daemon log": relay.log().encode()}  # fmt: skip
    blobs.update({f"HEP datagram {i}": r.payload for i, r in enumerate(rx.records)})
    assert _leaks(secrets, blobs) == []

    # … and what they say instead: the redacted SDP, everywhere the SDP went
    doc = sidecars(spool)[0]
    assert [s["direction"] for s in doc["sdp"]] == ["offer", "answer"]
    for entry in doc["sdp"]:
        for text in (entry["in"], entry["out"]):
            assert f"inline:{R40}" in text and "a=ice-pwd:REDACTED\r\n" in text, text
            assert "a=key-mgmt:REDACTED\r\n" in text
    (meta,) = [v for k, v in files.items() if k.startswith("metadata/")]
    assert meta.count(b"a=ice-pwd:REDACTED\r\n") == 2 and f"inline:{R40}".encode() in meta
    ng_trace = b"".join(r.payload for r in rx.records if r.proto_type == 61)
    assert ng_trace.count(b"a=ice-pwd:REDACTED\r\n") == 4  # offer and answer, in and out
    assert "a=ice-pwd:REDACTED" in shown.output and "a=ice-pwd:REDACTED" in shown_json.output

    (pcap,) = (spool / "pcaps").glob("*.pcapng")
    fields = subprocess.run(
        [require("tshark"), "-r", str(pcap), "-Y", "sdp", "-T", "fields", "-e", "sdp.media_attr",
         "-e", "_ws.malformed", "-E", "occurrence=a", "-E", "aggregator=|"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(fields) == 2, fields  # the offer's and the answer's SDP packets, both dissected
    for line in fields:
        attrs, _, malformed = line.partition("\t")
        assert malformed == "", line
        assert f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{R40}" in attrs.split("|"), attrs
        assert "ice-pwd:REDACTED" in attrs.split("|") and "sendrecv" in attrs.split("|"), attrs

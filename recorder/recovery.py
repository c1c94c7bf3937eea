"""Crash recovery at start-up: finalise what a killed daemon left open.

* every sidecar with status `recording`: its pcap/pcapng is cut back to the last whole record,
  hashed, its per-stream statistics are rebuilt from the file, its metadata file gets the
  trailer and moves from tmp/ to metadata/, and the sidecar says `interrupted`;
* every rtpengine-style `tmp/rtpengine-meta-*.tmp` without such a sidecar (left by rtpengine,
  or by rtpvault before its sidecar was written): same, with a sidecar made from the file names.

Blocking file I/O: run it in a worker thread.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import struct
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from recorder import filelock, metafile, pcap, pcapng
from recorder.recording import STATUS_INTERRUPTED, STATUS_RECORDING, RtcpCounter
from recorder.rtpstats import RtpStats
from recorder.sdpinfo import summarise
from recorder.spool import sha256_file, write_json_atomic
from rtp.demux import is_rtcp
from rtp.redact import redact_sidecar

__all__ = ["recover", "streams_from_file"]

logger = logging.getLogger("rtpvault.recorder")

_PREFIX_END = 17  # "-" + 16 hex digits


def _frames(data: bytes) -> list[tuple[float, bytes]]:
    """(time, Ethernet-or-raw frame) of every record of a pcap or pcapng file, media only."""
    out: list[tuple[float, bytes]] = []
    if data[:4] == struct.pack("<I", pcapng.SHB):
        pos = 0
        while pos + 12 <= len(data):
            kind, n = struct.unpack_from("<II", data, pos)
            if n < 12:
                break
            if kind == pcapng.EPB and n >= 32:
                iface, hi, lo, cap = struct.unpack_from("<IIII", data, pos + 8)
                if iface == pcapng.MEDIA_IF:
                    out.append((((hi << 32) | lo) / 1e6, b"E" + data[pos + 28 : pos + 28 + cap]))
            pos += n
        return out
    link = struct.unpack_from("<I", data, 20)[0] if len(data) >= 24 else 1
    pos = pcap.PCAP_HEADER_LEN
    while pos + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, pos)
        tag = b"E" if link == 1 else b"R"
        out.append((sec + usec / 1e6, tag + data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return out


def _udp(frame: bytes) -> tuple[str, str, bytes] | None:
    import ipaddress

    body = frame[15:] if frame[:1] == b"E" else frame[1:]
    if not body:
        return None
    if body[0] >> 4 == 4 and len(body) >= 28:
        src, dst = ipaddress.ip_address(body[12:16]), ipaddress.ip_address(body[16:20])
        sport, dport = struct.unpack_from("!HH", body, 20)
        return f"{src}:{sport}", f"{dst}:{dport}", body[28:]
    if body[0] >> 4 == 6 and len(body) >= 48:
        src, dst = ipaddress.ip_address(body[8:24]), ipaddress.ip_address(body[24:40])
        sport, dport = struct.unpack_from("!HH", body, 40)
        return f"[{src}]:{sport}", f"[{dst}]:{dport}", body[48:]
    return None


def streams_from_file(path: str) -> list[dict[str, Any]]:
    """Per-stream statistics rebuilt from a recording (the sidecar's `streams`, no party)."""
    with open(path, "rb") as f:
        data = f.read()
    counters: dict[tuple[str, str, str, int | None], RtpStats | RtcpCounter] = {}
    for when, frame in _frames(data):
        parsed = _udp(frame)
        if parsed is None:
            continue
        src, dst, payload = parsed
        rtcp = is_rtcp(payload)
        if len(payload) < 8 or (not rtcp and len(payload) < 12):
            continue
        ssrc = struct.unpack_from("!I", payload, 4 if rtcp else 8)[0]
        key = (src, dst, "rtcp" if rtcp else "rtp", ssrc)
        c = counters.get(key)
        if c is None:
            c = counters[key] = RtcpCounter(ssrc) if rtcp else RtpStats()
        c.update(payload, when)
    out = []
    for (src, dst, kind, _), c in counters.items():
        snap = c.snapshot()
        doc = {"ssrc": snap.pop("ssrc"), "kind": kind, "party": None, "src": src, "dst": dst,
               "codec": None}  # fmt: skip
        doc.update(snap)
        out.append(doc)
    return out


def _senders(doc: dict[str, Any]) -> dict[int, str]:
    """Relay port → tag of the party that sends to it, from the SDPs the relay sent out: an
    offer goes to the answerer (who then sends to its ports), an answer to the offerer. RTCP:
    the port after each RTP port, or the one `a=rtcp:` names."""
    roles = {p.get("role"): p.get("tag") for p in doc.get("parties") or [] if isinstance(p, dict)}
    out: dict[int, str] = {}
    for entry in doc.get("sdp") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("out"), str):
            continue
        sender = roles.get("answerer" if entry.get("direction") == "offer" else "offerer")
        if not isinstance(sender, str):
            continue
        for m in summarise(entry["out"])["media"]:
            if m["port"]:
                out[m["port"]] = out[m["port"] + 1] = sender
        for line in entry["out"].splitlines():
            port = line[7:].split()[0] if line.startswith("a=rtcp:") and line[7:].split() else ""
            if port.isdigit():
                out[int(port)] = sender
    return out


def _codecs(doc: dict[str, Any]) -> dict[tuple[Any, Any], Any]:
    """(party tag, payload type) → codec name, from each party's own SDP (values as the
    sidecar's JSON has them)."""
    table: dict[tuple[Any, Any], Any] = {}
    for party in doc.get("parties") or []:
        if not isinstance(party, dict):
            continue
        for m in party.get("media") or []:
            for c in m.get("codecs") or []:
                table.setdefault((party.get("tag"), c.get("pt")), c.get("name"))
    return table


def _trim(path: str) -> int:
    """Cut `path` to its whole records; returns the bytes removed."""
    with open(path, "rb") as f:
        data = f.read()
    valid = (
        pcapng.valid_prefix(data)
        if data[:4] == struct.pack("<I", pcapng.SHB)
        else (pcap.valid_prefix(data))
    )
    if data and valid == 0:
        valid = len(data)  # not a file we can parse: leave it as it is
    if valid < len(data):
        with open(path, "r+b") as f:
            f.truncate(valid)
            f.flush()
            os.fsync(f.fileno())
    return len(data) - valid


def _finish_meta(root: str, prefix: str, started: float, ended: float, metadata: str | None) -> str:
    tmp = os.path.join(root, "tmp", f"rtpengine-meta-{prefix}.tmp")
    final = os.path.join(root, "metadata", f"rtpengine-meta-{prefix}.txt")
    if os.path.exists(tmp):
        with open(tmp, "ab") as f:
            f.write(metafile.trailer(0.0, started, ended, metadata))
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, final)
    return final


def _recover_one(root: str, prefix: str, doc: dict[str, Any]) -> dict[str, Any]:
    path = doc.get("path") or os.path.join(root, "pcaps", f"{prefix}.pcap")
    removed = 0
    ended = float(doc.get("started") or time.time())
    if os.path.exists(path):
        removed = _trim(path)
        doc["size"], doc["sha256"] = sha256_file(path)
        streams = streams_from_file(path)
        if streams:
            ended = max(s["last"] or ended for s in streams)
            # the party of each stream: as the last sidecar said, else from the SDPs sent out
            # (the streams are only written at the finish, which a crash never reached)
            parties = {s["dst"]: s["party"] for s in doc.get("streams") or []}
            senders = _senders(doc)
            codecs = _codecs(doc)
            for s in streams:
                port = s["dst"].rsplit(":", 1)[-1]
                s["party"] = parties.get(s["dst"]) or senders.get(int(port) if port else -1)
                names = [codecs.get((s["party"], pt)) for pt in s["payload_types"]]
                s["codec"] = next((n for n in names if n), None)
            doc["streams"] = streams
            # as a finished recording's: the codecs its streams used (docs/recording-sidecar.md)
            doc["codecs"] = sorted({s["codec"] for s in streams if s["codec"]}) or doc.get(
                "codecs", [])  # fmt: skip
        reason = f"daemon stopped while recording; recovered at start-up, trimmed {removed} bytes"
    else:
        doc["size"] = doc["sha256"] = None
        reason = "daemon stopped while recording; no media file was found"
    if isinstance(doc.get("ended"), (int, float)):  # the call's `delete` was already seen
        ended = float(doc["ended"])
    doc["metadata_path"] = _finish_meta(
        root, prefix, float(doc.get("started") or ended), ended, doc.get("metadata")
    )
    doc["ended"] = ended
    doc["status"] = STATUS_INTERRUPTED
    doc["reason"] = reason
    for p in doc.get("pauses") or []:
        if p.get("end") is None:
            p["end"] = ended
    return doc


def _read_sidecar(side: str) -> dict[str, Any] | None:
    try:
        with open(side, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        logger.error("unreadable sidecar %s: %s", side, exc)
        return None
    return doc if isinstance(doc, dict) else None


def _media_files(root: str, prefix: str, named: Any) -> list[str]:
    """Every media file the recording `prefix` may have: the one its sidecar or metadata file
    names, and both names rtpvault gives (a live writer locks its file before the metadata
    file or the sidecar exists, so this finds it whatever recovery found first)."""
    pcaps = os.path.join(root, "pcaps", prefix)
    out = [f"{pcaps}.pcap", f"{pcaps}.pcapng"]
    if isinstance(named, str) and named:
        out.insert(0, named)
    return out


def recover(root: str, node: str, fmt_link: str) -> list[dict[str, Any]]:
    """Finalise every unfinished recording under `root` that no live process is writing
    (recorder.filelock); returns their new sidecars."""
    with filelock.recovery_lock(root):
        return _recover_all(root, node, fmt_link)


def _recover_all(root: str, node: str, fmt_link: str) -> list[dict[str, Any]]:
    done: list[dict[str, Any]] = []
    seen: set[str] = set()
    for side in sorted(glob.glob(os.path.join(glob.escape(root), "sidecars", "*.json"))):
        prefix = os.path.basename(side)[: -len(".json")]
        doc = _read_sidecar(side)
        if doc is None or doc.get("status") != STATUS_RECORDING:
            continue
        seen.add(prefix)
        work = partial(_from_sidecar, root, prefix, side)
        got = _locked(root, prefix, side, doc.get("path"), work)
        if got is not None:
            done.append(got)
    for tmp in sorted(glob.glob(os.path.join(glob.escape(root), "tmp", "rtpengine-meta-*.tmp"))):
        prefix = os.path.basename(tmp)[len("rtpengine-meta-") : -len(".tmp")]
        if prefix in seen:
            continue
        try:
            with open(tmp, "rb") as f:
                first = f.readline().decode("utf-8", "replace").strip()
        except OSError as exc:
            logger.error("cannot recover %s: %s", tmp, exc)
            continue
        path = first if first.endswith((".pcap", ".pcapng")) else None
        work = partial(_from_metadata, root, prefix, tmp, path, node, fmt_link)
        got = _locked(root, prefix, tmp, path, work)
        if got is not None:
            done.append(got)
    return done


def _locked(
    root: str, prefix: str, what: str, path: Any, work: Callable[[], dict[str, Any] | None]
) -> dict[str, Any] | None:
    """`work()` with the recording's media files locked; None when a live process writes
    them, or when there was nothing (left) to do."""
    held = filelock.claim(_media_files(root, prefix, path))
    if held is None:
        logger.info("recording %s is being written by a live process: left to it", what)
        return None
    try:
        return work()
    except OSError as exc:
        logger.error("cannot recover %s: %s", what, exc)
        return None
    finally:
        filelock.release(held)


def _from_sidecar(root: str, prefix: str, side: str) -> dict[str, Any] | None:
    # read again under the lock: its writer may have finished it since the scan read it
    doc = _read_sidecar(side)
    if doc is None or doc.get("status") != STATUS_RECORDING:
        return None
    doc.setdefault("sidecar_path", side)  # written by versions that did not say
    doc = redact_sidecar(_recover_one(root, prefix, doc))  # may predate redaction
    write_json_atomic(side, json.dumps(doc), fsync=True)
    logger.warning("recovered interrupted recording %s (%s)", doc.get("path"), doc["reason"])
    return doc


def _from_metadata(
    root: str, prefix: str, tmp: str, path: str | None, node: str, fmt_link: str
) -> dict[str, Any] | None:
    if not os.path.exists(tmp):
        return None  # its writer finished it since the scan
    side = os.path.join(root, "sidecars", f"{prefix}.json")
    if os.path.exists(side):
        # its sidecar appeared after the scan (the writer died since), or the writer ended
        # the recording but could not move this file (a `failed` one, killed before its finish)
        doc = _read_sidecar(side)
        if doc is not None and doc.get("status") == STATUS_RECORDING:
            return _from_sidecar(root, prefix, side)
        if doc is not None:
            started = float(doc.get("started") or 0.0)
            ended = float(doc.get("ended") or started)
            _finish_meta(root, prefix, started, ended, doc.get("metadata"))
            return None
    started = os.stat(tmp).st_mtime
    call_id = unquote_to_bytes(prefix[:-_PREFIX_END]).decode("utf-8", "surrogateescape")
    doc = {"version": 1, "id": str(uuid.uuid4()), "node": node, "call_id": call_id,
           "tags": [], "metadata": None, "meta": {}, "caller": None, "callee": None,
           "format": "pcapng" if path and path.endswith(".pcapng") else "pcap",
           "link": fmt_link, "path": path, "started": started, "parties": [],
           "codecs": [], "sdp": [], "pauses": [], "streams": []}  # fmt: skip
    doc["sidecar_path"] = side
    doc = _recover_one(root, prefix, doc)
    if path is None:
        doc["path"] = None
    write_json_atomic(side, json.dumps(doc), fsync=True)
    logger.warning("recovered leftover metadata %s", tmp)
    return doc

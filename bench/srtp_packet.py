"""Per-packet cost of relay.srtp protect/unprotect (172-byte RTP, best of 3 x 20 000 packets).

Not the issue-17 benchmark (bench/srtp.py, against rtpengine); a micro-measure of the crypto
layer alone: `.venv/bin/python bench/srtp_packet.py`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from relay.srtp import open_context, suite
from relay.srtp.libsrtp import supports

N = 20000


def rtp(seq):
    return (
        bytes([0x80, 0])
        + (seq & 0xFFFF).to_bytes(2, "big")
        + (seq * 160 & 0xFFFFFFFF).to_bytes(4, "big")
        + b"\x11\x22\x33\x44"
        + b"\x55" * 160
    )


pkts = [rtp(i) for i in range(N)]
for name in (
    "AES_CM_128_HMAC_SHA1_80",
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_256_CM_HMAC_SHA1_80",
    "F8_128_HMAC_SHA1_80",
):
    s = suite(name)
    k = bytes(range(s.inline_len))
    for lib in (True, False) if supports(s) else (False,):
        tx = open_context(s, k, outbound=True, use_libsrtp=lib)
        rx = open_context(s, k, outbound=False, use_libsrtp=lib)
        kind = type(tx).__name__
        best_p = best_u = 1e9
        for _rep in range(3):
            tx = open_context(s, k, outbound=True, use_libsrtp=lib)
            rx = open_context(s, k, outbound=False, use_libsrtp=lib)
            t0 = time.perf_counter()
            out = [tx.protect_rtp(p) for p in pkts]
            t1 = time.perf_counter()
            for o in out:
                rx.unprotect_rtp(o)
            t2 = time.perf_counter()
            best_p = min(best_p, (t1 - t0) / N)
            best_u = min(best_u, (t2 - t1) / N)
        print(
            f"{name:26s} {kind:15s} protect {best_p * 1e6:6.2f} us"
            f"  unprotect {best_u * 1e6:6.2f} us"
        )

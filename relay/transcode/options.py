"""Daemon-wide settings of the transcoding chain, from rtpengine 10.5's config keys
(docs/spec/config.md §2.9). Kept apart from relay.transcode.chain so that the daemon can hold
them without importing PyAV.

* `dtmf_no_suppress` (`dtmf-no-suppress`): audio a sender keeps sending during a DTMF event is
  transcoded and sent too; by default it is dropped while the event lasts.
* `silence` (`silence-detect`, percent / 100): a transcoded frame whose samples all stay below
  this fraction of full scale is sent as CN (`cn_out_pt`) instead, when the receiver accepts
  CN; 0 is off.
* `cn_payload` (`cn-payload`): the CN payload sent for such frames: the noise level (-dBov,
  0-127), then optional reflection coefficients (0-254), RFC 3389; default 32.
* `dtx_noise` (`dtx-cn-params`, same format): a frame the DTX buffer makes up is this CN
  payload decoded (FFmpeg's RFC 3389 decoder); empty (the default): silence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ChainOptions", "cn_payload"]


@dataclass(frozen=True, slots=True)
class ChainOptions:
    dtmf_no_suppress: bool = False
    silence: float = 0.0
    cn_payload: bytes = b"\x20"
    dtx_noise: bytes = b""


def cn_payload(values: Iterable[str], default: bytes = b"\x20") -> bytes:
    """`cn-payload` values → the payload; ValueError (rtpengine: 'Invalid CN payload
    specified') for a non-number, a level above 127 or a coefficient outside 0-254."""
    out = bytearray()
    for i, text in enumerate(values):
        try:
            v = int(text.strip(), 0)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not 0 <= v <= (127 if i == 0 else 254):
            raise ValueError(f"{v} is out of range ({'0-127' if i == 0 else '0-254'})")
        out.append(v)
    return bytes(out) or default

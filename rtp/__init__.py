"""RTP/RTCP basics every part may import: a leaf that imports the standard library only.

* `rtp.demux`: is this datagram RTCP? (RFC 5761 §4, and rtpengine's looser rule)
* `rtp.header`: the RTP fixed header (RFC 3550 §5.1): `RtpHeader` and a fast SSRC read
* `rtp.rtcp`: RTCP compound packets (RFC 3550 §6): SR, RR, SDES parsed, the rest kept as bytes
* `rtp.payload_types`: the static payload types of RFC 3551 §6
* `rtp.redact`: SDES keys, MIKEY data and ICE passwords out of an SDP before it is stored or
  shipped (here because recorder, the HEP trace and storage all need it)

All pure: bytes in, values out; no sockets, clock or logging.
"""

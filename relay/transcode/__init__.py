"""Transcoding (issue 19): codec negotiation results and the per-direction media chain.

`relay.transcode.plan` is the contract between codec negotiation (relay.sdp / relay.call: what
rtpengine 10.5 would negotiate for the codec flags) and the media side (this package's chain,
run by the userspace plane): one `DirectionPlan` per direction of a media section that needs
more than plain forwarding. See docs/design/transcoding.md.
"""

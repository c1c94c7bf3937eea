"""Which payload types an SDP lists after codec flags, the way rtpengine 10.5 decides (pure).

Measured against rtpengine 10.5 (differential scenarios `codec_*`):

* A codec name in `strip`/`mask`/`except` matches case-insensitively the encoding name
  (`PCMA`), the name with its parameters as printed (`PCMA/8000`, `opus/48000/2`) or the name
  with the full parameters, channels included (`PCMA/8000/1`). `opus/48000` does not match
  `opus/48000/2`, and payload type numbers match nothing.
* `all` (or `full`) strips/masks every codec except those named in `except`; `except` does
  nothing without `all`.
* When stripping would leave no codec, nothing is stripped. After stripping or masking, a
  supplementary codec (telephone-event, CN) stays only next to a remaining codec of its clock
  rate; with none left at all the format list becomes empty.
* Masked codecs are not offered to the other side but stay acceptable in its answer.
* The answer going back to the offerer lists the answered payload types that were offered to
  the answerer; failing that, those the offerer can still use (masked ones). A payload type
  counts only with the offerer's codec under it (`8 G722/8000` is not the offered PCMA).
* With none of those, rtpengine 10.5 transcodes to the offerer's first codec (query: media
  flag "transcoding"; differential scenarios `tc_*`): an answer with only codecs not offered,
  with an offered codec under another payload type (opus 111 for opus 96), or with a codec
  the offer stripped. telephone-event alone, a subset, extra codecs next to a common one and
  a masked codec are answered without. An answered payload type that the offer used for
  another codec (`8 G722/8000` next to a common PCMU) gets a transcoder too (media flag
  "transcoding" on the answerer's side only), though the SDP only lists PCMU. Such answers
  (`answer_transcodes`) go to the codec-store negotiation of relay.call.transcoding
  (docs/spec/sdp.md §1.11a); a rejected (port 0) line without a common codec only prints the
  offerer's first payload type and shows "transcoding", as rtpengine does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

SUPPLEMENTARY = frozenset({"telephone-event", "cn"})


def codec_matches(wanted: str, codec: str) -> bool:
    """`wanted` (a flag's codec name) names `codec` (`<encoding>/<clock>[/<channels>]`)."""
    parts = codec.split("/")
    if not parts[0]:
        return False
    name = parts[0]
    forms = {name.lower()}
    if len(parts) >= 2:
        channels = parts[2] if len(parts) > 2 else "1"
        forms.add(f"{name}/{parts[1]}".lower() + ("" if channels == "1" else f"/{channels}"))
        forms.add(f"{name}/{parts[1]}/{channels}".lower())
    return wanted.lower() in forms


def _selected(codec: str, names: Sequence[str], keep: Sequence[str]) -> bool:
    for wanted in names:
        if wanted in ("all", "full"):
            if not any(codec_matches(k, codec) for k in keep):
                return True
        elif codec_matches(wanted, codec):
            return True
    return False


def _remove(
    formats: tuple[str, ...], names_of: Mapping[str, str], names: Sequence[str], keep: Sequence[str]
) -> tuple[str, ...]:
    """rtpengine's codec_store_strip: may leave nothing."""
    if not names:
        return formats
    return tuple(pt for pt in formats if not _selected(names_of.get(pt, ""), names, keep))


def _settle(
    formats: tuple[str, ...], out: tuple[str, ...], names_of: Mapping[str, str]
) -> tuple[str, ...]:
    """codec_store_check_empty, then the codec tracker: nothing left means everything comes
    back; once something was removed, telephone-event and CN stay only next to a remaining
    codec of their clock rate (with none left at all, the list is empty)."""
    if not out:
        return formats  # nothing may remain to talk with: then nothing goes
    if len(out) == len(formats):
        return formats  # nothing touched: orphaned telephone-event/CN stay too
    return drop_orphans(out, names_of)


def _supplementary(names_of: Mapping[str, str], pt: str) -> bool:
    return names_of.get(pt, "").split("/")[0].lower() in SUPPLEMENTARY


def _clock(codec: str) -> str:
    parts = codec.split("/")
    return parts[1] if len(parts) > 1 else ""


def offer_formats(
    formats: tuple[str, ...], names_of: Mapping[str, str], codec: Mapping[str, Sequence[str]]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(formats offered to the other side, formats the offerer keeps) after strip and mask."""
    stripped, masked = _strip_mask(formats, names_of, codec)
    return _settle(formats, masked, names_of), _settle(formats, stripped, names_of)


def _strip_mask(
    formats: tuple[str, ...], names_of: Mapping[str, str], codec: Mapping[str, Sequence[str]]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(after strip, after strip and mask), before the empty check."""
    keep = codec.get("except", [])
    stripped = _remove(formats, names_of, codec.get("strip", []), keep)
    return stripped, _remove(stripped, names_of, codec.get("mask", []), keep)


def _same_codec(
    pt: str, answered_names: Mapping[str, str], offered_names: Mapping[str, str]
) -> bool:
    """The answer's codec under `pt` is the offerer's (unknown names count as the same)."""
    mine, theirs = answered_names.get(pt), offered_names.get(pt)
    if not mine or not theirs:
        return True
    return _full(mine) == _full(theirs)


@lru_cache(maxsize=256)  # a handful of codec names recur in every offer and answer
def _full(codec: str) -> str:
    parts = codec.lower().split("/")
    return "/".join(parts + (["1"] if len(parts) == 2 else []))


def _common(
    answered: tuple[str, ...],
    sent: tuple[str, ...],
    kept: tuple[str, ...],
    answered_names: Mapping[str, str],
    offered_names: Mapping[str, str],
) -> tuple[str, ...]:
    for allowed in (sent, kept):
        out = tuple(
            pt for pt in answered
            if pt in allowed and _same_codec(pt, answered_names, offered_names)
        )
        if out:
            return out
    return ()


def answer_transcodes(
    answered: Iterable[str],
    sent: tuple[str, ...],
    kept: tuple[str, ...],
    answered_names: Mapping[str, str] | None = None,
    offered_names: Mapping[str, str] | None = None,
) -> bool:
    """rtpengine 10.5 would transcode this answer: none of its payload types carries a codec
    the offerer offered to the answerer or can still use, or one of them is an offered
    payload type naming another codec (see the module docstring)."""
    answered = tuple(answered)
    answered_names, offered_names = answered_names or {}, offered_names or {}
    if not answer_has_common(answered, sent, kept, answered_names, offered_names):
        return True
    return any(
        pt in offered_names and not _same_codec(pt, answered_names, offered_names)
        for pt in answered
    )


def answer_has_common(
    answered: Iterable[str],
    sent: tuple[str, ...],
    kept: tuple[str, ...],
    answered_names: Mapping[str, str] | None = None,
    offered_names: Mapping[str, str] | None = None,
) -> bool:
    """Some answered payload type carries a codec the offerer offered or can still use."""
    return bool(_common(tuple(answered), sent, kept, answered_names or {}, offered_names or {}))


def answer_formats(
    answered: Iterable[str],
    sent: tuple[str, ...],
    kept: tuple[str, ...],
    answered_names: Mapping[str, str] | None = None,
    offered_names: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The answered payload types the offerer gets back (see the module docstring). Where
    rtpengine transcodes (refused by rtpvault except on a rejected line) this is the offerer's
    first payload type, as rtpengine prints it."""
    answered = tuple(answered)
    out = _common(answered, sent, kept, answered_names or {}, offered_names or {})
    if out:
        return out
    return kept[:1] or answered


def single_codec(formats: tuple[str, ...], names_of: Mapping[str, str]) -> tuple[str, ...]:
    """`single-codec` in an answer: the first real codec and every supplementary one."""
    out: list[str] = []
    seen_real = False
    for pt in formats:
        if _supplementary(names_of, pt):
            out.append(pt)
        elif not seen_real:
            seen_real = True
            out.append(pt)
    return tuple(out)


def drop_orphans(formats: tuple[str, ...], names_of: Mapping[str, str]) -> tuple[str, ...]:
    """telephone-event/CN only next to a codec of their clock rate (rtpengine's codec tracker,
    which runs where codec flags touched the list)."""
    clocks = {_clock(names_of.get(pt, "")) for pt in formats if not _supplementary(names_of, pt)}
    return tuple(
        pt for pt in formats if not _supplementary(names_of, pt) or _clock(names_of[pt]) in clocks
    )


def codecs_touched(
    formats: tuple[str, ...], names_of: Mapping[str, str], codec: Mapping[str, Sequence[str]]
) -> bool:
    """Whether strip or mask removed anything (even if the empty check restored it all)."""
    stripped, masked = _strip_mask(formats, names_of, codec)
    return stripped != formats or masked != stripped

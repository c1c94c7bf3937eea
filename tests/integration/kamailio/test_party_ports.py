"""The sipp parties' ports are drawn so that no two of them collide (sipcall._party_ports).

A draw checks what is bound now; the UAS's and the UAC's media blocks are both drawn before
either sipp binds, so without the cross-check two overlapping blocks made the second sipp exit
at start (one lost call in a full suite run)."""

from __future__ import annotations

import pytest

from . import sipcall


def test_overlapping_media_blocks_are_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = iter([(30000, 30003), (30002, 30005), (30000, 30003), (30010, 30013)])
    monkeypatch.setattr(sipcall, "free_port_range", lambda *a, **k: next(blocks))
    sip = iter([30011, 40000, 40000, 40002])
    monkeypatch.setattr(sipcall, "free_port", lambda *a, **k: next(sip))
    assert sipcall._party_ports(None) == (30000, 30010, 40000, 40002)


def test_media_blocks_stay_out_of_the_relay_range(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = iter([(30098, 30101), (30200, 30203), (30300, 30303)])
    monkeypatch.setattr(sipcall, "free_port_range", lambda *a, **k: next(blocks))
    sip = iter([40000, 40001])
    monkeypatch.setattr(sipcall, "free_port", lambda *a, **k: next(sip))
    assert sipcall._party_ports((30000, 30099)) == (30200, 30300, 40000, 40001)


def test_real_draws_are_distinct() -> None:
    for _ in range(50):
        uas_mp, uac_mp, uas_port, uac_port = sipcall._party_ports(None)
        assert abs(uas_mp - uac_mp) >= 4
        assert len({uas_port, uac_port}) == 2
        for port in (uas_port, uac_port):
            assert not (uas_mp <= port <= uas_mp + 3 or uac_mp <= port <= uac_mp + 3)

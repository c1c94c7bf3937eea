"""Audit checkpoints: the document, the key order, the prefix, the local head file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from storage.audit.anchor import (
    KEY_TOP,
    AnchorError,
    Checkpoint,
    CheckpointStore,
    HeadFile,
    checkpoint_prefix,
)

H = "ab" * 32


def test_checkpoint_round_trip_and_errors() -> None:
    cp = Checkpoint(7, H, 1764028800.5)
    assert Checkpoint.parse(cp.to_json()) == cp
    for data, error in [
        (b"{", "checkpoint is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"seq": 0, "hash": "' + H.encode() + b'", "time": 1}', "seq 0 is not a positive"),
        (b'{"seq": true, "hash": "' + H.encode() + b'", "time": 1}', "seq True"),
        (b'{"seq": 1, "hash": "AB", "time": 1}', "hash 'AB' is not 64 hex digits"),
        (b'{"seq": 1, "hash": "' + H.encode() + b'", "time": "x"}', "time 'x' is not a number"),
    ]:
        with pytest.raises(AnchorError, match=error):
            Checkpoint.parse(data)


def test_keys_list_newest_first() -> None:
    store = CheckpointStore(None, "b", "audit/checkpoints/")
    keys = [store.key(Checkpoint(seq, H, 0.0)) for seq in (1, 2, 10, 11, KEY_TOP)]
    assert sorted(keys) == list(reversed(keys))
    assert keys[0] == f"audit/checkpoints/{KEY_TOP - 1:020d}-{H[:16]}.json"


@pytest.mark.parametrize(
    ("template", "prefix"),
    [("{yyyy}/{mm}/{dd}/", "audit/checkpoints/"), ("recordings/", "recordings/audit/checkpoints/"),
     ("rec/{node}/{yyyy}/", "rec/audit/checkpoints/"), ("a/b-{yyyy}/", "a/audit/checkpoints/"),
     ("x{id}", "audit/checkpoints/")],
)  # fmt: skip
def test_checkpoint_prefix_is_the_literal_folder(template: str, prefix: str) -> None:
    assert checkpoint_prefix(template) == prefix


def test_head_file_only_moves_forward(tmp_path: Path) -> None:
    head = HeadFile(str(tmp_path / "audit-head.json"))
    assert head.read() is None
    assert head.advance(Checkpoint(5, H, 1.0))
    assert not head.advance(Checkpoint(4, "cd" * 32, 2.0))  # an older head never replaces it
    threads = [threading.Thread(target=head.advance, args=(Checkpoint(n, H, 3.0),))
               for n in range(6, 30)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = head.read()
    assert got is not None and got.seq == 29
    (tmp_path / "audit-head.json").write_text("garbage")
    with pytest.raises(AnchorError):
        head.read()
    assert head.advance(Checkpoint(30, H, 4.0))  # an unreadable file is replaced

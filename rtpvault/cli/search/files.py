"""`rtpvault fetch | export`: the recording files themselves, on local disk or in S3 (`verify`
is rtpvault.cli.search.verify).

Every byte read is hashed on the way (SHA-256) and compared with the index before anything is
called done; a copy is written as `<name>.part`, fsynced, and renamed only when its hash
matched, so the final name never holds a short file, even after a crash.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from rtpvault.cli.search.ctx import OneLineCommand, Vault, friendly, source_options

__all__ = ["COMMANDS", "Copy", "copies", "read_verified"]

CHUNK = 1 << 20
PROGRESS_BYTES = 4 << 20  # show a bar for more than this much, or for several files


@dataclass(frozen=True)
class Copy:
    """One stored copy of a recording: on local disk, or an S3 object (key, version)."""

    where: str  # "local" | "s3"
    name: str  # path or s3://bucket/key[?versionId=…]
    path: str | None = None
    bucket: str | None = None
    key: str | None = None
    version: str | None = None

    def chunks(self, vault: Vault) -> Iterator[bytes]:
        if self.where == "local":
            assert self.path is not None
            with open(self.path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
            return
        extra = {"VersionId": self.version} if self.version else {}
        body = vault.s3.get_object(Bucket=self.bucket, Key=self.key, **extra)["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()


def copies(vault: Vault, rec: Any) -> list[Copy]:
    """Where this recording should be, local first: its path (if the file is there) and its
    S3 object (if the index says it was uploaded)."""
    from rtpvault.cli.search.rows import object_ref

    out = []
    if rec.path and os.path.exists(rec.path):
        out.append(Copy("local", rec.path, path=rec.path))
    ref = object_ref(rec, vault.bucket)
    if ref is not None:
        bucket, key, version = ref
        name = f"s3://{bucket}/{key}" + (f"?versionId={version}" if version else "")
        out.append(Copy("s3", name, bucket=bucket, key=key, version=version))
    return out


def _expected(rec: Any) -> str:
    if not rec.sha256:
        raise click.ClickException(
            f"recording {rec.id} has no SHA-256 in the index yet (status {rec.status})"
        )
    return str(rec.sha256)


def read_verified(vault: Vault, rec: Any) -> bytes:
    """The whole recording from the first copy whose SHA-256 matches the index."""
    expected, problems = _expected(rec), []
    for copy in copies(vault, rec):
        data = b"".join(copy.chunks(vault))
        got = hashlib.sha256(data).hexdigest()
        if got == expected:
            return data
        problems.append(f"{copy.name}: SHA-256 {got[:16]}… is not the indexed {expected[:16]}…")
    raise click.ClickException(
        f"no intact copy of recording {rec.id}" + (f" ({'; '.join(problems)})" if problems
                                                    else ": no local file and no S3 object")
    )  # fmt: skip


def _write_synced(path: Path, data: bytes) -> None:
    """Write all of `data` to `path` and fsync it (the caller renames it into place)."""
    from recorder.spool import write_all

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _target_name(rec: Any) -> str:
    if rec.path:
        return os.path.basename(str(rec.path))
    return f"{rec.id}.{rec.format or 'pcap'}"


def _copy_to(vault: Vault, rec: Any, dest: Path, bar: Any) -> str:
    """Write the first intact copy to `dest`; returns where it came from."""
    expected, problems = _expected(rec), []
    part = dest.with_name(dest.name + ".part")
    for copy in copies(vault, rec):
        h = hashlib.sha256()
        with open(part, "wb") as out:
            for chunk in copy.chunks(vault):
                h.update(chunk)
                out.write(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename makes it the final file
        if h.hexdigest() == expected:
            os.replace(part, dest)
            return copy.name
        problems.append(f"{copy.name}: SHA-256 mismatch")
        part.unlink()
    raise click.ClickException(
        f"no intact copy of recording {rec.id}: " + ("; ".join(problems) or
                                                      "no local file and no S3 object")
    )  # fmt: skip


@click.command("fetch", cls=OneLineCommand)
@source_options
@click.argument("refs", nargs=-1, required=True, metavar="ID|CALL-ID…")
@click.option("-o", "--output-dir", type=click.Path(file_okay=False), default=".",
              show_default=True, help="Directory to write the files into.")  # fmt: skip
@friendly
def fetch_cmd(vault: Vault, refs: tuple[str, ...], output_dir: str) -> None:
    """Copy recordings here from local disk or S3; SHA-256 checked before "done"."""
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with vault.session() as session:
        recs = vault.resolve(session, "fetch", refs, "all")  # every part of a Call-ID
        for rec in recs:
            with vault.attempt("fetch", rec.id, failures_only=True, call_id=rec.call_id):
                _expected(rec)
        total = sum(int(r.size or 0) for r in recs)
        show = total > PROGRESS_BYTES or len(recs) > 1
        label = f"fetching {len(recs)} recording{'s' if len(recs) > 1 else ''}"
        with click.progressbar(length=total, label=label, file=sys.stderr, hidden=not show,
                               show_pos=False) as bar:  # fmt: skip
            for rec in recs:
                dest = out_dir / _target_name(rec)
                with vault.attempt("fetch", rec.id, to=str(dest.resolve())) as att:
                    att.details["source"] = source = _copy_to(vault, rec, dest, bar)
                click.echo(f"done {dest} (sha256 {rec.sha256} ok, from {source})")


@click.command("export", cls=OneLineCommand)
@source_options
@click.argument("ref", metavar="ID|CALL-ID")
@click.option(
    "--wav",
    "as_wav",
    is_flag=True,
    required=True,
    help="Stereo WAV: left the caller, right the callee (G.711 decoded).",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="File to write.")
@friendly
def export_cmd(vault: Vault, ref: str, as_wav: bool, output: str | None) -> None:
    """Export a recording as audio."""
    from recorder.wav import export_wav
    from rtpvault.cli.search.rows import sidecar_of

    with vault.session() as session:
        (rec,) = vault.resolve(session, "export", (ref,))
        dest = Path(output or Path(_target_name(rec)).with_suffix(".wav").name)
        with vault.attempt("export", rec.id, format="wav", to=str(dest.resolve())):
            data = read_verified(vault, rec)
            wav = export_wav(data, sidecar_of(rec))
            tmp = dest.with_name(dest.name + ".part")
            _write_synced(tmp, wav)
            os.replace(tmp, dest)
    seconds = (len(wav) - 44) / 32000
    click.echo(f"done {dest} (stereo 8000 Hz, {seconds:.1f} s)")


COMMANDS = [fetch_cmd, export_cmd]

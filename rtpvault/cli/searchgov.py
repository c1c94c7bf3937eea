"""`rtpvault hold | release | purge`: legal hold and retention (rules in storage.retention)."""

from __future__ import annotations

import time
from typing import Any

import click

from rtpvault.cli.searchctx import OneLineCommand, Vault, friendly, source_options
from rtpvault.cli.searchopts import DurationType

__all__ = ["COMMANDS"]


def _store(vault: Vault) -> Any:
    return vault.s3 if vault.bucket else None


def _set(vault: Vault, refs: tuple[str, ...], on: bool, reason: str | None) -> None:
    from rtpvault.cli.searchrows import resolve
    from storage.retention import set_hold

    with vault.session() as session:
        recs = [resolve(session, ref) for ref in refs]  # all found before anything changes
    for rec_ref in recs:
        with vault.session() as session:
            rec = session.merge(rec_ref)
            s3 = set_hold(session, rec, on, reason, store=_store(vault), bucket=vault.bucket,
                          object_lock=vault.object_lock)  # fmt: skip
        action = "hold" if on else "release"
        vault.audit(action, rec.id, call_id=rec.call_id, reason=reason, s3_legal_hold=s3)
        where = " (and S3 legal hold)" if s3 else ""
        click.echo(f"{'held' if on else 'released'} {rec.id} {rec.call_id}{where}")


@click.command("hold", cls=OneLineCommand)
@source_options
@click.argument("refs", nargs=-1, required=True, metavar="ID|CALL-ID…")
@click.option("--reason", required=True, help="Why (case number, request); kept and audited.")
@friendly
def hold_cmd(vault: Vault, refs: tuple[str, ...], reason: str) -> None:
    """Put recordings on legal hold: never purged; S3 legal hold set when Object Lock is on."""
    if not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="--reason")
    _set(vault, refs, True, reason)


@click.command("release", cls=OneLineCommand)
@source_options
@click.argument("refs", nargs=-1, required=True, metavar="ID|CALL-ID…")
@friendly
def release_cmd(vault: Vault, refs: tuple[str, ...]) -> None:
    """Release the legal hold of recordings (retention applies to them again)."""
    _set(vault, refs, False, None)


@click.command("purge", cls=OneLineCommand)
@source_options
@click.option(
    "--older-than",
    type=DurationType(),
    required=True,
    metavar="DURATION",
    help="Delete recordings started longer ago than this (90d, 12w …).",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted.")
@friendly
def purge_cmd(vault: Vault, older_than: float, dry_run: bool) -> None:
    """Delete old recordings (object, files, index row); held ones are skipped."""
    from storage.models import Recording
    from storage.retention import purge_one, purge_query

    now = time.time()
    cutoff = now - older_than
    with vault.session() as session:
        ids = list(session.scalars(purge_query(cutoff, now).with_only_columns(Recording.id)))
        held = (
            session.query(Recording)
            .filter(Recording.started < cutoff, Recording.legal_hold.is_(True))
            .count()
        )
    purged: list[str] = []
    failed = 0
    for rid in ids:
        with vault.session() as session:
            rec = session.get(Recording, rid)
            if rec is None:
                continue
            if dry_run:
                click.echo(f"would purge {rec.id} {rec.call_id} {rec.path}")
                purged.append(rec.id)
                continue
            res = purge_one(session, rec, store=_store(vault), bucket=vault.bucket)
        if res.error:
            failed += 1
            click.echo(f"kept {res.id} {res.call_id}: {res.error}", err=True)
        else:
            purged.append(res.id)
            click.echo(f"purged {res.id} {res.call_id} ({len(res.removed)} copies removed)")
    vault.audit(
        "purge",
        older_than_s=older_than,
        cutoff=cutoff,
        dry_run=dry_run,
        count=len(purged),
        ids=purged[:1000],
        failed=failed,
        skipped_held=held,
    )
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {len(purged)} recordings; {held} held ones skipped; {failed} failed")
    if failed:
        raise SystemExit(1)


COMMANDS = [hold_cmd, release_cmd, purge_cmd]

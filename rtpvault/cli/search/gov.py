"""`rtpvault hold | release | purge`: legal hold and retention (rules in storage.retention)."""

from __future__ import annotations

import time
from typing import Any

import click

from rtpvault.cli.search.ctx import OneLineCommand, Vault, friendly, source_options
from rtpvault.cli.search.opts import DurationType
from rtpvault.cli.search.out import plural

__all__ = ["COMMANDS"]


def _store(vault: Vault) -> Any:
    return vault.s3 if vault.bucket else None


def _set(vault: Vault, refs: tuple[str, ...], on: bool, reason: str | None) -> None:
    from storage.retention import set_hold

    action = "hold" if on else "release"
    from storage.series import parts_query, series_key

    with vault.session() as session:
        named = vault.resolve(session, action, refs, "first")  # all found first
        # a hold is about a call: every part of its recording (docs/storage.md "Parts")
        recs = list({r.id: r for n in named for r in session.scalars(
            parts_query(series_key(n)))}.values())  # fmt: skip
    for rec_ref in recs:
        if not on and not rec_ref.legal_hold:
            vault.audit(action, rec_ref.id, call_id=rec_ref.call_id, was_held=False)
            click.echo(f"not held: {rec_ref.id} {rec_ref.call_id} (nothing to release)")
            continue
        with vault.attempt(action, rec_ref.id, call_id=rec_ref.call_id, reason=reason) as att:
            with vault.session() as session:
                rec = session.merge(rec_ref)
                s3 = set_hold(session, rec, on, reason, store=_store(vault),
                              bucket=vault.bucket, object_lock=vault.object_lock)  # fmt: skip
            att.details["s3_legal_hold"] = s3
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
    from storage.retention import kept_counts, purge_query

    now = time.time()
    cutoff = now - older_than
    with vault.session() as session:
        ids = list(session.scalars(purge_query(cutoff, now).with_only_columns(Recording.id)))
        kept = kept_counts(session, cutoff, now)
    purged: list[str] = []
    failed = 0
    for rid in ids:
        if dry_run:
            with vault.session() as session:
                rec = session.get(Recording, rid)
                if rec is not None:
                    click.echo(f"would purge {rec.id} {rec.call_id} {rec.path}")
                    purged.append(rec.id)
            continue
        ok = _purge(vault, rid, cutoff, now)
        if ok is not None:
            purged += [rid] if ok else []
            failed += 0 if ok else 1
    vault.audit("purge", older_than_s=older_than, cutoff=cutoff, dry_run=dry_run,
                count=len(purged), ids=purged[:1000], failed=failed, kept=kept)  # fmt: skip
    verb = "would purge" if dry_run else "purged"
    click.echo(f"{verb} {plural(len(purged), 'recording')}; kept {kept['held']} on hold, "
               f"{kept['recording']} still recording, {kept['retained']} under retention, "
               f"{kept['uploading']} not yet archived"
               + (f", {kept['series']} with another part of the call kept" if kept["series"]
                  else "")
               + f"; {failed} failed")  # fmt: skip
    if failed:
        raise SystemExit(1)


def _purge(vault: Vault, rid: str, cutoff: float, now: float) -> bool | None:
    """Purge one recording and audit it under its own id (so `audit --recording` finds it
    after the row is gone), failure included. None: gone already, put on hold meanwhile, or
    being purged by another purge running at once (storage.retention.purge_claim)."""
    from storage.retention import purge_claim, purge_one

    with vault.session() as session:
        rec = session.scalars(purge_claim(rid, cutoff, now)).first()
        if rec is None:
            return None
        res = purge_one(session, rec, store=_store(vault), bucket=vault.bucket)
    details = {"call_id": res.call_id, "started": res.started, "cutoff": cutoff,
               "removed": list(res.removed)}  # fmt: skip
    if res.left_to is not None:
        details["files_left_to_node"] = res.left_to
    vault.audit("purge", res.id, **details, **({"error": res.error} if res.error else {}))
    if res.error:
        click.echo(f"kept {res.id} {res.call_id}: {res.error}", err=True)
        return False
    n = len(res.removed)
    left = (f"; its files are on node {res.left_to}, whose daemon removes them and the row"
            if res.left_to is not None else "")  # fmt: skip
    click.echo(f"purged {res.id} {res.call_id} ({plural(n, 'copy', 'copies')} removed{left})")
    return True


COMMANDS = [hold_cmd, release_cmd, purge_cmd]

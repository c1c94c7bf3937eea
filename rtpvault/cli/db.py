"""`rtpvault db upgrade | current | reindex`: the recordings index schema and contents.

The index is named by `--db URL` or by `--config-file` (its `recording-db`, else the embedded
default: SQLite `recordings.db` inside `recording-dir`).
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any

import click


def _url(config_file: str | None, section: str, db: str | None) -> tuple[str, Any]:
    settings = None
    if config_file:  # read as the search CLI does: storage keys checked, no listener needed
        from rtpvault.cli.search.ctx import read_settings

        settings = read_settings(config_file, section)
    if db:
        return db, settings
    if settings is not None and settings.recording_db:
        return str(settings.recording_db), settings
    if settings is not None and settings.recording_dir:
        from storage.db import default_url

        return default_url(settings.recording_dir), settings
    raise click.UsageError("no recording index: pass --db URL or --config-file")


def _options(f: Any) -> Any:
    f = click.option("--db", "db", metavar="URL", help="SQLAlchemy URL of the index.")(f)
    f = click.option("--config-section", default="rtpengine", show_default=True)(f)
    return click.option(
        "--config-file",
        type=click.Path(dir_okay=False),
        help="rtpengine.conf with recording-db / recording-dir.",
    )(f)


def _fail(exc: Exception) -> None:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    click.echo(f"rtpvault db: {text}", err=True)
    sys.exit(1)


@click.group("db")
def db_group() -> None:
    """The recordings index: schema migrations and rebuilding from sidecars."""


@db_group.command("upgrade")
@_options
@click.option("--revision", default="head", show_default=True)
def upgrade_cmd(
    config_file: str | None, config_section: str, db: str | None, revision: str
) -> None:
    """Migrate the index schema to the newest (or the given) revision."""
    from storage.db import head_revision, make_engine, schema_revision, upgrade

    url, _ = _url(config_file, config_section, db)
    try:
        if url.startswith("sqlite:///"):
            os.makedirs(os.path.dirname(url[len("sqlite:///") :]) or ".", exist_ok=True)
        upgrade(url, revision)
        engine = make_engine(url)
        current = schema_revision(engine)
        engine.dispose()
    except Exception as exc:
        _fail(exc)
    click.echo(f"schema at {current} (newest {head_revision()})")


@db_group.command("current")
@_options
def current_cmd(config_file: str | None, config_section: str, db: str | None) -> None:
    """Show the schema revision of the index; exit 3 when it is not the newest."""
    from storage.db import head_revision, make_engine, schema_revision

    url, _ = _url(config_file, config_section, db)
    try:
        engine = make_engine(url)
        current = schema_revision(engine)
        engine.dispose()
    except Exception as exc:
        _fail(exc)
    head = head_revision()
    click.echo(f"schema at {current or 'none'} (newest {head})")
    if current != head:
        sys.exit(3)


@db_group.command("reindex")
@_options
@click.option("--recording-dir", type=click.Path(file_okay=False), help="Spool to read.")
def reindex_cmd(
    config_file: str | None, config_section: str, db: str | None, recording_dir: str | None
) -> None:
    """Rebuild index rows from the sidecars in recording-dir/sidecars (idempotent).

    With s3-bucket configured (--config-file), finished recordings without an upload job are
    queued; the daemon's uploader first looks whether S3 already holds each one (uploaded before
    the index was lost) and only uploads what is missing."""
    import time

    from storage.db import open_index
    from storage.ingest import upsert_sidecar
    from storage.uploader import S3Settings, enqueue

    url, settings = _url(config_file, config_section, db)
    s3 = S3Settings.from_settings(settings) if settings is not None else None
    root = recording_dir or (settings.recording_dir if settings is not None else None)
    if not root:
        raise click.UsageError("pass --recording-dir or --config-file with recording-dir")
    try:
        index = open_index(url, create=False)
    except Exception as exc:
        _fail(exc)
    done = bad = queued = 0
    for path in sorted(glob.glob(os.path.join(root, "sidecars", "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            with index.session() as s:
                rec = upsert_sidecar(s, doc)
                if s3 is not None and rec.status in ("complete", "interrupted"):
                    queued += enqueue(s, rec, s3, time.time(), maybe_stored=True) is not None
            done += 1
        except Exception as exc:
            bad += 1
            click.echo(f"skipped {path}: {str(exc).splitlines()[0]}", err=True)
    index.close()
    from rtpvault.cli.search.out import plural

    click.echo(f"indexed {plural(done, 'recording')}, skipped {bad}, queued {queued} for S3")
    if bad:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(db_group)

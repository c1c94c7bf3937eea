"""What the search commands share: where the index and bucket are, who is asking, and errors.

`Vault` is built from `--config-file` (rtpengine.conf format; `recording-db` and `s3-*` keys) or
`--db URL`, lazily: nothing touches the database or S3 until a command needs it. `friendly`
turns every failure into one line on stderr and a non-zero exit (1 for bad input or an
unreachable service, 2 for a problem found by `verify`), never a traceback; RTPVAULT_DEBUG=1
shows the traceback for developers.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click

__all__ = ["Vault", "Attempt", "source_options", "friendly", "os_user", "terminal_width",
           "OneLineCommand"]  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


def os_user() -> str:
    """The OS account running the command (the invoking user under sudo, marked as such)."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = f"uid:{os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (sudo as {name})" if sudo and sudo != name else name


def terminal_width() -> int:
    return shutil.get_terminal_size((120, 24)).columns


def read_settings(path: str, section: str) -> Any:
    """The daemon's config file as relay.config reads it, for its recording and s3 keys.

    The CLI may run on another host than the daemon, where the file's `interface` names do not
    exist, and it never listens: those two keys are overridden with harmless values (so they
    need not resolve here); every other key is read and checked as the daemon would."""
    from types import MappingProxyType

    from relay.config import CommandLine, ConfigError, settings_from_text
    from relay.config.interfaces import Resolver

    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read config file {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"config file {path!r} is not UTF-8") from None
    cmd = CommandLine(config_file=path, config_section=section, options=MappingProxyType(
        {"interface": "127.0.0.1", "listen-ng": "127.0.0.1:2223"}))  # fmt: skip
    try:
        settings, _ = settings_from_text(
            text, cmd, resolver=Resolver({}, lambda _name: ()), source=path, cwd=os.getcwd()
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    return settings


@dataclass
class Vault:
    """Lazy handles on the index database and the bucket the configuration names."""

    config_file: str | None = None
    config_section: str = "rtpengine"
    db_url: str | None = None
    user: str = field(default_factory=os_user)
    _settings: Any = None
    _index: Any = None
    _s3: Any = None
    _appended: bool = False

    @property
    def settings(self) -> Any:
        """relay.config.Settings of --config-file, or of rtpengine's default file when it
        exists and no --db was given (None: no file)."""
        if self._settings is None:
            from relay.config import DEFAULT_CONFIG_FILE

            path = self.config_file
            if path is None and self.db_url is None and os.path.exists(DEFAULT_CONFIG_FILE):
                path = DEFAULT_CONFIG_FILE
            if path is not None:
                self._settings = read_settings(path, self.config_section)
        return self._settings

    def url(self) -> str:
        if self.db_url:
            return self.db_url
        s = self.settings
        if s is not None and s.recording_db:
            return str(s.recording_db)
        raise click.ClickException(
            "no recording index: pass --db URL or --config-file with recording-dir/recording-db"
        )

    @property
    def index(self) -> Any:
        """storage.db.Index, opened without creating or migrating anything."""
        if self._index is None:
            from storage.db import open_index

            url = self.url()
            if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
                path = url[len("sqlite:///") :].split("?", 1)[0]
                if not os.path.exists(path):  # SQLite would create an empty file
                    source = f" (from {self.settings.config_file})" if self.settings else ""
                    raise click.ClickException(f"no recording index at {path}{source}")
            self._index = open_index(url, create=False)
        return self._index

    def session(self) -> Any:
        """A session committed when the block ends without error."""
        return self.index.session()

    def audit(self, action: str, recording_id: str | None = None, **details: Any) -> None:
        """Append this access to the hash-chained audit log, attributed to the OS user."""
        from storage.audit import chain as audit

        audit.append(self.index, action, recording_id or "", details or None, user=self.user)
        self._appended = True

    @contextlib.contextmanager
    def attempt(self, action: str, recording_id: str | None = None, *,
                failures_only: bool = False, **details: Any) -> Iterator[Attempt]:  # fmt: skip
        """Audit one access whatever its outcome: the entry is appended when the block ends,
        with `error` (the one-line reason) when it failed (`failures_only`: only then). The
        block may fill in the recording and details as it learns them."""
        att = Attempt(recording_id, dict(details))
        try:
            yield att
        except BaseException as exc:
            att.details["error"] = _reason(exc)
            try:
                self.audit(action, att.recording_id, **att.details)
            except Exception:  # noqa: BLE001 - the index itself failed: the original error wins
                pass
            raise
        if not failures_only:
            self.audit(action, att.recording_id, **att.details)

    def resolve(self, session: Any, action: str, refs: tuple[str, ...],
                series: str | None = None) -> list[Any]:  # fmt: skip
        """The recordings `refs` name (rtpvault.cli.search.rows.resolve; `series` says what a
        Call-ID of a recording in several parts gives); a ref that names none or several is an
        error, and that refused attempt is audited too."""
        from rtpvault.cli.search.rows import resolve

        with self.attempt(action, None, failures_only=True, refs=list(refs)):
            return [rec for ref in refs for rec in resolve(session, ref, series)]

    def anchors(self) -> tuple[Any, Any]:
        """(HeadFile or None, CheckpointStore or None) this configuration names: the head file
        in recording-dir (when that directory exists here), checkpoints in the bucket."""
        from storage.audit.anchor import HEAD_FILE, CheckpointStore, HeadFile, checkpoint_prefix

        s = self.settings
        head = None
        if s is not None and s.recording_dir and os.path.isdir(s.recording_dir):
            head = HeadFile(os.path.join(s.recording_dir, HEAD_FILE))
        store = None
        if self.bucket:
            store = CheckpointStore(
                self.s3, self.bucket, checkpoint_prefix(s.s3_prefix or "{yyyy}/{mm}/{dd}/"),
                lock_mode=s.s3_object_lock_mode or "none", lock_days=s.s3_object_lock_days or 0,
            )
        return head, store

    def checkpoint(self) -> list[str]:
        """Anchor the chain's current head (storage.audit.anchor); returns warnings. The entries
        are already in the index: a failed checkpoint loses nothing, the next one covers it."""
        from storage.audit.anchor import head

        cp = head(self.index, time.time())
        if cp is None:
            return []
        head_file, store = self.anchors()
        warnings = []
        for name, target in (("local head file", head_file), ("S3 checkpoint", store)):
            if target is None:
                continue
            try:
                target.advance(cp) if name == "local head file" else target.put(cp)
            except Exception as exc:  # noqa: BLE001 - reported; the next command retries
                warnings.append(f"warning: audit {name} not written ({describe(exc)}); "
                                "the next command writes a newer one")  # fmt: skip
        return warnings

    @property
    def bucket(self) -> str | None:
        s = self.settings
        return None if s is None else s.s3_bucket

    @property
    def object_lock(self) -> bool:
        s = self.settings
        return s is not None and s.s3_object_lock_mode not in ("none", "", None)

    @property
    def s3(self) -> Any:
        """A boto3 S3 client for the configured endpoint/region (credentials: boto3's chain)."""
        if self._s3 is None:
            import boto3
            from botocore.config import Config

            s = self.settings
            self._s3 = boto3.client(
                "s3",
                endpoint_url=getattr(s, "s3_endpoint_url", None),
                region_name=getattr(s, "s3_region", None) or "us-east-1",
                config=Config(retries={"max_attempts": 2, "mode": "standard"},
                              connect_timeout=5, read_timeout=30),
            )  # fmt: skip
        return self._s3

    def close(self, quiet: bool = False) -> None:
        """Checkpoint the audit chain if this command appended to it, then close the index.
        `quiet`: the command failed and says why; a checkpoint warning would only add noise."""
        if self._index is not None:
            try:
                if self._appended:
                    for line in self.checkpoint():
                        if not quiet:
                            click.echo(line, err=True)
            finally:
                self._index.close()


@dataclass
class Attempt:
    """What `Vault.attempt` will write: the recording (once known) and the details."""

    recording_id: str | None
    details: dict[str, Any]


def source_options(f: F) -> F:
    """--config-file / --config-section / --db, turned into a `vault` keyword argument."""

    @click.option(
        "--config-file",
        "config_file",
        metavar="PATH",
        help="rtpengine.conf with recording-dir / recording-db / s3-* keys.",
    )
    @click.option("--config-section", default="rtpengine", show_default=True, metavar="NAME")
    @click.option(
        "--db",
        "db_url",
        metavar="URL",
        help="SQLAlchemy URL of the index (overrides the config file).",
    )
    @functools.wraps(f)
    def wrapper(*args: Any, config_file: str | None, config_section: str,
                db_url: str | None, **kwargs: Any) -> Any:  # fmt: skip
        vault = Vault(config_file, config_section, db_url)
        try:
            result = f(*args, vault=vault, **kwargs)
        except BaseException as exc:
            vault.close(quiet=not isinstance(exc, SystemExit))
            raise
        vault.close()
        return result

    return wrapper  # type: ignore[return-value]


class OneLineCommand(click.Command):
    """A command whose bad option values print one line, not the usage text; a command line
    click cannot parse (unknown option, extra argument) gets the usage and the `Try '… --help'`
    hint, as the top-level `rtpvault` gives them."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:  # fmt: skip
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.BadParameter as exc:
            exc.ctx = None  # UsageError.show prints the usage and a hint only with a context
            raise


def _reason(exc: BaseException) -> str:
    """Why an attempt failed, for its audit entry."""
    if isinstance(exc, click.ClickException):
        return exc.format_message()
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        return "interrupted"
    if isinstance(exc, SystemExit):
        return f"exit status {exc.code}"
    return describe(exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def describe(exc: BaseException) -> str:
    """A one-line, user-facing description of a failure from any layer."""
    from botocore.exceptions import BotoCoreError, ClientError
    from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

    from storage.db import SchemaError

    if isinstance(exc, SchemaError):
        return str(exc).splitlines()[0] if str(exc) else "recording index unusable"
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return f"bad database URL: {_one_line(exc)}"
    if isinstance(exc, DBAPIError):
        return f"recording index unavailable: {_one_line(exc.orig or exc)}"
    if isinstance(exc, SQLAlchemyError):
        return f"recording index error: {_one_line(exc)}"
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"S3 error: {err.get('Code', '?')}: {err.get('Message') or _one_line(exc)}"
    if isinstance(exc, BotoCoreError):
        return f"S3 unavailable: {_one_line(exc)}"
    if isinstance(exc, OSError):
        where = f" {exc.filename!r}" if exc.filename else ""
        return f"{exc.strerror or _one_line(exc)}{where}"
    if isinstance(exc, ValueError):
        return _one_line(exc)
    return f"internal error ({type(exc).__name__}): {_one_line(exc)}"


def friendly(f: F) -> F:
    """Run a command; any failure becomes `Error: <one line>` and exit status 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("RTPVAULT_DEBUG"):
                raise
            raise click.ClickException(describe(exc)) from None

    return wrapper  # type: ignore[return-value]

"""The `rtpvault` command: `run` (the daemon), and the operator and compliance commands.

Each further group of subcommands lives in its own module of this package with a function
`register(cli: click.Group) -> None`; SUBCOMMAND_MODULES lists them.
"""

from __future__ import annotations

import importlib
import sys

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rtpvault")
def cli() -> None:
    """rtpvault: media relay and call recorder, a drop-in for rtpengine."""


@cli.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                      "help_option_names": []},
    add_help_option=False,
)
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
def run(options: tuple[str, ...]) -> None:
    """Run the relay in the foreground. Takes rtpengine's long options, e.g.

    rtpvault run --config-file /etc/rtpengine/rtpengine.conf [--config-section NAME]
    """
    from rtpvault.daemon import main as daemon_main

    if "--help" in options or "-h" in options:
        click.echo(run.__doc__ or "")
        click.echo("Every rtpengine long option (--interface, --listen-ng, --port-min, ...) and")
        click.echo("every config-file key as --KEY=VALUE; see docs/configuration.md.")
        return
    sys.exit(daemon_main(list(options)))


SUBCOMMAND_MODULES = ("db", "search", "ctl")


def _register_subcommands() -> None:
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"rtpvault.cli.{name}").register(cli)


_register_subcommands()


def main() -> None:
    cli()

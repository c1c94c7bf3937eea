"""Configuration: rtpengine.conf + command line → frozen Settings (docs/configuration.md).

The package owns the key table (`keys`), the GLib key file reader (`keyfile`), the command line
(`cli`), value parsers (`values`), the `interface` rules (`interfaces`, `netifs`) and the
assembly into `Settings` (`settings`). Callers import the public names from here.
"""

from .cli import CommandLine, parse_args, usage
from .interfaces import Interface, Resolver
from .keyfile import ConfigError
from .settings import DEFAULT_CONFIG_FILE, Settings, load_settings, settings_from_text
from .values import HepTarget, Listen

__all__ = [
    "DEFAULT_CONFIG_FILE",
    "CommandLine",
    "ConfigError",
    "HepTarget",
    "Interface",
    "Listen",
    "Resolver",
    "Settings",
    "load_settings",
    "parse_args",
    "settings_from_text",
    "usage",
]

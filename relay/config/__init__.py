"""Configuration: rtpengine.conf + command line → frozen Settings (docs/configuration.md).

The package owns the key table (`keys`), the GLib key file reader (`keyfile`), the command line
(`cli`), value parsers (`values`), the `interface` rules (`interfaces`, `netifs`) and the
assembly into `Settings` (`settings`). Callers import the public names from here.
"""

from .settings import (
    DEFAULT_CONFIG_FILE,
    CommandLine,
    ConfigError,
    HepTarget,
    Interface,
    Listen,
    Resolver,
    Settings,
    load_settings,
    parse_args,
    settings_from_text,
    usage,
)

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

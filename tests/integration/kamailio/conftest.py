"""Fixtures for this package come from rig.py (importable by other test packages too)."""

from .rig import kamailio_factory, relay_factory, sip_rig

__all__ = ["kamailio_factory", "relay_factory", "sip_rig"]

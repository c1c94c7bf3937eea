"""A Kamailio + sipp call through the relay comes from the Kamailio package's rig."""

from tests.integration.kamailio.rig import kamailio_factory, relay_factory, sip_rig  # noqa: F401

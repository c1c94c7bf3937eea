from tests.integration.kamailio.rig import kamailio_factory, relay_factory, sip_rig  # noqa: F401

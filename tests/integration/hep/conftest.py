"""A Kamailio + sipp call through the relay comes from the Kamailio package's rig; the HEP
capture server (`receiver`) from tests.support.hep_receiver."""

from tests.integration.kamailio.rig import kamailio_factory, relay_factory, sip_rig  # noqa: F401
from tests.support.hep_receiver import receiver  # noqa: F401

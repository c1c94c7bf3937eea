"""rtpengine-ctl's control interface: the `listen-cli` server (`server`), the command table
(`commands`), runtime parameters (`params`), shared state (`state`) and the text renderers
(`text`), also served as HTTP `/cli/...` by rtpvault.http.
"""

from .server import CtlServer, attach

__all__ = ["CtlServer", "attach"]

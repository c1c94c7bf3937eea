"""The media relay: ng control, call model, SDP, forwarding planes (docs/ARCHITECTURE.md)."""

from relay import compiled

compiled.guard()  # before any compiled module is imported: see relay/compiled.py

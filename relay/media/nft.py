"""libnftables through ctypes: run nft commands in-process, read JSON output.

Hand-written because no well-kept PyPI package binds libnftables: the official Python binding
(`nftables`, Debian's python3-nftables) ships only with the system Python, not on PyPI, and is
itself a thin ctypes wrapper like this one. In-process matters: a forked `nft` per change costs
milliseconds on the event loop, a libnftables call a netlink round trip.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
from typing import Any

OUTPUT_JSON = 1 << 4  # NFT_CTX_OUTPUT_JSON in nftables/libnftables.h
LIBRARY = "libnftables.so.1"


class NftError(RuntimeError):
    """An nft command failed; the message is libnftables' error text."""


class Nft:
    """One libnftables context; `run` executes a command buffer and returns its output."""

    def __init__(self, library: str | None = None) -> None:
        name = library or ctypes.util.find_library("nftables") or LIBRARY
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise NftError(
                f"libnftables not found ({exc}); install the 'nftables' package"
            ) from exc
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_get_flags.restype = ctypes.c_uint
        lib.nft_ctx_output_get_flags.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        if not self._ctx:
            raise NftError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        self._flags = lib.nft_ctx_output_get_flags(self._ctx)

    def run(self, commands: str, as_json: bool = False) -> str:
        """Run `commands` (nft syntax, several lines allowed, applied as one transaction)."""
        lib, ctx = self._lib, self._ctx
        lib.nft_ctx_output_set_flags(ctx, self._flags | (OUTPUT_JSON if as_json else 0))
        rc = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        if rc != 0:
            raise NftError(err.strip() or f"nft failed ({rc})")
        return out

    def json(self, command: str) -> list[dict[str, Any]]:
        """Run a `list …` command and return its `nftables` items."""
        out = self.run(command, as_json=True)
        items: list[dict[str, Any]] = json.loads(out).get("nftables", []) if out.strip() else []
        return items

    def close(self) -> None:
        if self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None


def ip_forwarding() -> bool:
    """Whether this network namespace routes IPv4 (needed to send kernel-forwarded packets on)."""
    try:
        with open("/proc/sys/net/ipv4/ip_forward") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


def can_admin_network() -> bool:
    """CAP_NET_ADMIN in the effective set (root, or granted by systemd's AmbientCapabilities)."""
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 12))
    except OSError:
        pass
    return False

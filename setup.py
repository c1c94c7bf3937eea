"""Build hook: compiles the modules listed in relay/compiled.py with mypyc (issue 18 item 6)
and builds relay/transcode/_avcodec.c against the system's FFmpeg (issue 19), when pkg-config
finds its headers (Debian's libavcodec-dev, libavutil-dev, libswresample-dev; .ci/bootstrap
installs them); without them the extension is skipped and relay uses PyAV.

Everything else is in pyproject.toml. mypy (which ships mypyc) is a build requirement, so every
`pip install .` / `pip install -e .` compiles them; RTPVAULT_PURE=1 at build time skips it.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
from typing import Any

from setuptools import Extension, setup

FFMPEG = ("libavcodec", "libavutil", "libswresample")


def avcodec_extension() -> list[Any]:
    """relay.transcode._avcodec, or nothing when pkg-config does not find FFmpeg's headers."""
    pkg_config = shutil.which("pkg-config")
    if pkg_config is None:
        return []
    try:
        cflags = subprocess.run([pkg_config, "--cflags", *FFMPEG], capture_output=True,
                                text=True, check=True).stdout.split()
        libs = subprocess.run([pkg_config, "--libs", *FFMPEG], capture_output=True, text=True,
                              check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return []
    # optional: a compiler error leaves the extension out instead of failing the install
    return [Extension("relay.transcode._avcodec", ["relay/transcode/_avcodec.c"],
                      extra_compile_args=[*cflags, "-O2"], extra_link_args=libs, optional=True)]


def ext_modules() -> list[Any]:
    if os.environ.get("RTPVAULT_PURE", "") not in ("", "0"):
        return []
    native = avcodec_extension()
    from mypyc.build import mypycify

    # read without importing the relay package (its __init__ runs the guard)
    names = runpy.run_path("relay/compiled.py")["MODULES"]
    # The build environment holds setuptools and mypy only (pip's build isolation): the
    # third-party packages the compiled modules' imports lead to are absent, so those imports
    # are taken as Any instead of failing the type check (the strict check is `mypy` in CI).
    options = ["--ignore-missing-imports", "--follow-imports=silent"]
    compiled = mypycify([*options, *(n.replace(".", "/") + ".py" for n in names)], opt_level="3")
    return [*compiled, *native]


setup(ext_modules=ext_modules())

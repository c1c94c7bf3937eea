"""Build hook: compiles the modules listed in relay/compiled.py with mypyc (issue 18 item 6).

Everything else is in pyproject.toml. mypy (which ships mypyc) is a build requirement, so every
`pip install .` / `pip install -e .` compiles them; RTPVAULT_PURE=1 at build time skips it.
"""

from __future__ import annotations

import os
import runpy
from typing import Any

from setuptools import setup


def ext_modules() -> list[Any]:
    if os.environ.get("RTPVAULT_PURE", "") not in ("", "0"):
        return []
    from mypyc.build import mypycify

    # read without importing the relay package (its __init__ runs the guard)
    names = runpy.run_path("relay/compiled.py")["MODULES"]
    # The build environment holds setuptools and mypy only (pip's build isolation): the
    # third-party packages the compiled modules' imports lead to are absent, so those imports
    # are taken as Any instead of failing the type check (the strict check is `mypy` in CI).
    options = ["--ignore-missing-imports", "--follow-imports=silent"]
    return mypycify([*options, *(n.replace(".", "/") + ".py" for n in names)], opt_level="3")


setup(ext_modules=ext_modules())

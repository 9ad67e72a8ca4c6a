"""Lazy public names of a subpackage: its `__init__` names them, the modules load on first use.

A stage's modules pull in the geospatial stack or torch; importing them when a package is first
touched would make `cropmap --help` (and every step's start) pay for all of them. Python reads a
package's `__getattr__` for a name it does not hold (PEP 562), so a name is imported from its
module only when someone asks for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(`__getattr__`, `__dir__`) of `package` whose public `exports` map each name to the module
    (relative to the package) that defines it."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__

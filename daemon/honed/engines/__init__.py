"""Engines behind one protocol (engines.base.Engine); `get_engine` is the one place one is chosen."""

from __future__ import annotations

from honed.engines.base import Engine
from honed.errors import InvalidRequest


def get_engine(name: str = "auto") -> Engine:
    if name in ("auto", "torch"):
        from honed.engines.torch_engine import TorchEngine

        return TorchEngine()
    raise InvalidRequest(f"unknown engine '{name}'; available here: torch", param="engine")

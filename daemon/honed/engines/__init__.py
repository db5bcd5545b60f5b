"""Engines behind one protocol (engines.base.Engine); `get_engine` is the one place one is chosen."""

from __future__ import annotations

import importlib.util
import platform

from honed.engines.base import Engine
from honed.errors import InvalidRequest

MLX_MISSING = "engine 'mlx' needs mlx-lm: pip install 'honed[mlx]'"


def _mlx_installed() -> bool:
    return importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None


def default_engine_name() -> str:
    """What "auto" means on this machine: MLX on Apple Silicon with Metal (and mlx installed), torch elsewhere,
    including Linux with mlx[cpu], where MLX runs but torch is faster."""
    if platform.system() == "Darwin" and platform.machine() == "arm64" and _mlx_installed():
        try:
            import mlx.core as mx

            if mx.metal.is_available():
                return "mlx"
        except ImportError:  # a broken install: torch still works
            pass
    return "torch"


def get_engine(name: str = "auto") -> Engine:
    """The engine called `name` ("auto": default_engine_name()). Raises InvalidRequest for an unknown name,
    or for "mlx" where mlx-lm is not installed."""
    if name == "auto":
        name = default_engine_name()
    if name == "torch":
        from honed.engines.torch_engine import TorchEngine

        return TorchEngine()
    if name == "mlx":
        if not _mlx_installed():
            raise InvalidRequest(MLX_MISSING, param="honed.engine")
        try:
            from honed.engines.mlx_engine import MLXEngine
        except ImportError as exc:
            raise InvalidRequest(f"{MLX_MISSING} ({exc})", param="honed.engine") from exc
        return MLXEngine()
    if name == "llamacpp":
        from honed.engines.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine()
    raise InvalidRequest(f"unknown engine '{name}'; choose auto, torch or mlx", param="honed.engine")

"""hone: the Python SDK and CLI for the honed fine-tuning daemon."""

from hone.client import AsyncClient, Client, HoneError

__all__ = ["Client", "AsyncClient", "HoneError"]
__version__ = "0.1.0"

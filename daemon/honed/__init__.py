"""honed: a local fine-tuning daemon (API, queue, worker, serving)."""

__version__ = "0.1.0"

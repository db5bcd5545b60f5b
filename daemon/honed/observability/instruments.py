"""What only the API process sees, measured where it happens: requests, generated tokens, time to first token.

These live in one registry per process (the API's); job numbers come from the store instead
(`store_metrics`), so no number has two sources.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # *_created series double what Prometheus stores and no panel uses them
REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "honed_request_duration_seconds", "HTTP request handling time, until the response starts", ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0), registry=REGISTRY)
GENERATED_TOKENS = Counter("honed_generated_tokens", "Tokens generated for API requests", ["model"],
                           registry=REGISTRY)
TIME_TO_FIRST_TOKEN = Histogram(
    "honed_time_to_first_token_seconds", "From a generation request reaching the model to its first text",
    ["model"], buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0), registry=REGISTRY)
LOADED_ADAPTERS = Gauge("honed_loaded_adapters", "Fine-tuned adapters held in memory for serving", registry=REGISTRY)
RESIDENT_MEMORY = Gauge("honed_process_resident_memory_bytes", "Resident memory of the API process",
                        registry=REGISTRY)

"""GET /v1/hardware, POST /v1/estimate and POST /v1/fine_tuning/suggest: what this machine is, what a job would
cost on it, and what to train it with."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
from litestar import Request, get, post

import msgspec

from hone.types import Estimate, FineTuneCreate, Hardware, Suggestions
from honed.api.common import decode_body, services
from honed.api.datasets import tokenizer_for
from honed.api.fine_tuning import check_training_files
from honed.jobs.spec import resolve_spec, validate_request, with_suite_datasets
from honed.planning.hardware import detect
from honed.planning.job_plan import data_facts, estimate_job, plan_job
from honed.planning.model_shape import read_shape
from honed.planning.suggest import suggest

HYPERPARAMETERS = ("n_epochs", "batch_size")
"""Suggestions that go in the create request's `hyperparameters`; the rest go in `honed`."""

_probing = threading.Lock()
"""One probe at a time: two would share the cores and both measure a slower machine."""


@get("/v1/hardware", sync_to_thread=True)
def hardware() -> Hardware:
    return detect()


def _estimate(svc: Any, body: FineTuneCreate, model: str) -> Estimate:
    spec = resolve_spec(body, model, svc.store.get_file(body.training_file).examples)
    model_dir = svc.catalog.local_dir(model)
    job = plan_job(svc.settings, svc.store, spec, model_dir, tokenizer_for(svc, model))
    with _probing:
        found = estimate_job(svc.settings, job, model_dir, model)
    if svc.store.job_counts().get(("ftjob", "running")):
        found.warnings.append("a job is training now: it shares the machine with the measurement, so the times "
                              "are longer than this job alone would take")
    return found


async def _with_job_body(request: Request, answer: Callable[[Any, FineTuneCreate, str], Any]) -> Any:
    """A create-job body checked as POST /v1/fine_tuning/jobs checks it (nothing is created), then answered off the
    event loop: both answers read the model and tokenize the data."""
    svc = services(request)
    body = with_suite_datasets(decode_body(await request.body(), FineTuneCreate), svc.file_bytes)
    validate_request(body)
    source = svc.catalog.resolve(body.model)
    check_training_files(svc, body)
    return await anyio.to_thread.run_sync(answer, svc, body, source.name)


@post("/v1/estimate", status_code=200)
async def estimate(request: Request) -> Estimate:
    """The body of POST /v1/fine_tuning/jobs; nothing is created. The first estimate of a kind of job measures
    a few real steps (seconds to a minute); later ones reuse that measurement."""
    return await _with_job_body(request, _estimate)


def _suggest(svc: Any, body: FineTuneCreate, model: str) -> Suggestions:
    spec = resolve_spec(body, model, svc.store.get_file(body.training_file).examples)
    spec = msgspec.structs.replace(spec, unset=["n_epochs", "batch_size", "learning_rate"])  # what honed would pick
    model_dir = svc.catalog.local_dir(model)
    job = plan_job(svc.settings, svc.store, spec, model_dir, tokenizer_for(svc, model))
    parameters = read_shape(model_dir).parameters
    facts = data_facts(job.train)
    hyper = suggest(parameters, spec.options.adapter or "lora", facts)
    machine = [c for c in job.plan.choices if c.field not in {h.field for h in hyper}]
    honed = {c.field: c.value for c in hyper + machine if c.field not in HYPERPARAMETERS}
    return Suggestions("fine_tuning.suggestions", model, parameters, facts.examples, round(facts.mean_tokens, 1),
                       facts.longest, hyper + machine, {c.field: c.value for c in hyper if c.field in HYPERPARAMETERS},
                       honed)


@post("/v1/fine_tuning/suggest", status_code=200)
async def suggestions(request: Request) -> Suggestions:
    """The body of POST /v1/fine_tuning/jobs (model and training_file are what count); nothing is created. Each
    suggestion comes with the reason for it."""
    return await _with_job_body(request, _suggest)


ROUTES = [hardware, estimate, suggestions]

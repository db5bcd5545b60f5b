"""/v1/models: the base models ready on this machine, every succeeded fine-tuned model, GGUF exports (served by
llama.cpp under their export id), and the aliases."""

from __future__ import annotations

from litestar import Request, get

from hone.types import ModelList, ModelObject
from honed.api.common import services
from honed.errors import NotFound


def _all_models(request: Request) -> list[ModelObject]:
    svc = services(request)
    found = [ModelObject(id=source.name, created=0, owned_by="honed") for source in svc.catalog.available()]
    for job in svc.store.list_jobs(limit=10_000, statuses={"succeeded"}):
        if job.fine_tuned_model:
            found.append(ModelObject(id=job.fine_tuned_model, created=job.finished_at or job.created_at,
                                     owned_by="honed-local"))
        elif job.id.startswith("export-") and job.spec.get("format", "").startswith("gguf"):
            found.append(ModelObject(id=job.id, created=job.finished_at or job.created_at, owned_by="honed-gguf"))
    found += [ModelObject(id=alias.name, created=alias.created_at, owned_by="honed-alias")
              for alias in svc.store.aliases()]
    return found


@get("/v1/models")
async def list_models(request: Request) -> ModelList:
    return ModelList(data=_all_models(request))


@get("/v1/models/{model_id:path}")
async def retrieve_model(request: Request, model_id: str) -> ModelObject:
    wanted = model_id.lstrip("/")
    for model in _all_models(request):
        if model.id == wanted:
            return model
    raise NotFound(f"The model '{wanted}' does not exist. GET /v1/models lists the models served here.",
                   param="model", code="model_not_found")

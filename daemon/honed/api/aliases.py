"""/v1/aliases: deploying. An alias is a stable model name (`support-bot`) for whichever fine-tuned model or
checkpoint serves it now; client code keeps calling the alias while newer models are promoted behind it, and a
rollback points it back at the one before."""

from __future__ import annotations

import re

from litestar import Request, delete, get, post, put

from hone.types import ModelAlias, ModelAliasList, ModelAliasUpdate
from honed.api.common import decode_body, services
from honed.errors import Conflict, InvalidRequest, NotFound
from honed.jobs.store import AliasRow

ALIAS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def alias_object(row: AliasRow) -> ModelAlias:
    return ModelAlias(name=row.name, model=row.target, created_at=row.created_at, history=row.history)


def _check_name(svc, name: str) -> None:
    if not ALIAS_NAME.fullmatch(name):
        raise InvalidRequest(f"alias '{name}' is not a valid name: use 1-64 letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit", param="name")
    try:
        svc.catalog.resolve(name)
    except NotFound:
        return
    raise Conflict(f"'{name}' already names a base model; choose another alias", param="name")


@get("/v1/aliases")
async def list_aliases(request: Request) -> ModelAliasList:
    return ModelAliasList(data=[alias_object(row) for row in services(request).store.aliases()])


@get("/v1/aliases/{name:str}")
async def get_alias(request: Request, name: str) -> ModelAlias:
    row = services(request).store.get_alias(name)
    if row is None:
        raise NotFound(f"No alias '{name}'. GET /v1/aliases lists them.", param="name")
    return alias_object(row)


@put("/v1/aliases/{name:str}")
async def point_alias(request: Request, name: str) -> ModelAlias:
    """Create the alias or point it at another model (the previous one stays in its history)."""
    svc = services(request)
    body = decode_body(await request.body(), ModelAliasUpdate)
    _check_name(svc, name)
    if svc.store.get_alias(body.model) is not None:
        raise InvalidRequest(f"'{body.model}' is itself an alias; point '{name}' at the model it serves",
                             param="model")
    svc.registry.lookup_reference(body.model)  # 404 naming the model when it is not servable
    current = svc.store.get_alias(name)
    if current is not None and current.target == body.model:
        return alias_object(current)
    return alias_object(svc.store.point_alias(name, body.model))


@post("/v1/aliases/{name:str}/rollback", status_code=200)
async def roll_back_alias(request: Request, name: str) -> ModelAlias:
    return alias_object(services(request).store.roll_back_alias(name))


@delete("/v1/aliases/{name:str}", status_code=200)
async def delete_alias(request: Request, name: str) -> dict:
    services(request).store.delete_alias(name)
    return {"name": name, "object": "model.alias", "deleted": True}


ROUTES = [list_aliases, get_alias, point_alias, roll_back_alias, delete_alias]

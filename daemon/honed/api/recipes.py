"""/v1/recipes: the bundled recipes, and a recipe's data stored as files with the job that runs it.

Preparing stores the data and returns the job body rather than starting the job, so the caller (the studio's
form) can show the recipe's settings, change them, estimate the job and start it through the same endpoints as
any other job. Preparing twice stores nothing new: the same content under the same name is the same file.
"""

from __future__ import annotations

import hashlib
from typing import Any

import anyio
from litestar import Request, get, post

from hone.recipes import Recipe, RecipeError, list_recipes, load_recipe, recipe_request
from hone.suites import load_suite
from hone.types import DataFormat, FileObject, PreparedRecipe, RecipeInfo, RecipeList, RecipePrepareRequest
from honed.api.common import decode_body, services
from honed.api.files import file_object, spool_bytes, store_file
from honed.errors import InvalidRequest, NotFound


def _info(recipe: Recipe) -> RecipeInfo:
    train = recipe.path(recipe.train).read_bytes()
    return RecipeInfo(name=recipe.name, description=recipe.description, primary_metric=recipe.primary_metric,
                      base_model=recipe.base_model, recommended_models=recipe.recommended_models,
                      method=recipe.method, hyperparameters=recipe.hyperparameters, honed=recipe.honed,
                      train_examples=sum(1 for line in train.splitlines() if line.strip()),
                      test_cases=len(load_suite(recipe.path(recipe.suite)).cases))


def _bundled(name: str) -> Recipe:
    """A bundled recipe by name only: the API never reads a folder a request names."""
    known = {recipe.name: recipe for recipe in list_recipes()}
    if name not in known:
        raise NotFound(f"No recipe '{name}'. Known: {', '.join(known) or 'none installed'}", param="name")
    return known[name]


def _keep(svc: Any, data: bytes, filename: str) -> FileObject:
    existing = svc.store.find_file(hashlib.sha256(data).hexdigest(), filename, "fine-tune")
    if existing is not None:
        return file_object(existing)
    temp, sha256, size = spool_bytes(svc.settings.files_dir, data)
    return file_object(store_file(svc, temp, sha256, size, filename, "fine-tune", DataFormat()))


def _prepare(svc: Any, name: str, body: RecipePrepareRequest) -> PreparedRecipe:
    recipe = _bundled(name)
    if body.model is not None:
        svc.catalog.resolve(body.model)
    try:
        request = recipe_request(recipe, body.model, body.subset)
    except RecipeError as exc:
        raise InvalidRequest(str(exc), param="subset") from None
    training = _keep(svc, request.train, request.train_filename)
    validation = None if request.validation is None else _keep(svc, request.validation, request.validation_filename)
    job = {**request.job, "training_file": training.id, "validation_file": validation and validation.id}
    return PreparedRecipe(recipe=_info(recipe), training_file=training, validation_file=validation, job=job)


@get("/v1/recipes", sync_to_thread=True)
def recipes() -> RecipeList:
    return RecipeList(data=[_info(recipe) for recipe in list_recipes()])


@post("/v1/recipes/{name:str}/prepare", status_code=200)
async def prepare(request: Request, name: str) -> PreparedRecipe:
    svc = services(request)
    raw = await request.body()
    body = decode_body(raw, RecipePrepareRequest) if raw.strip() else RecipePrepareRequest()
    return await anyio.to_thread.run_sync(_prepare, svc, name, body)


ROUTES = [recipes, prepare]

"""/v1/preferences: votes between two answers, kept as preference data (JSON, or DPO-ready JSONL pairs)."""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from hone.types import Preference, PreferenceCreate, PreferenceList
from honed.api.common import decode_body, new_id, services
from honed.errors import InvalidRequest

MAX_TEXT = 100_000


@post("/v1/preferences", status_code=200)
async def create_preference(request: Request) -> Preference:
    body = decode_body(await request.body(), PreferenceCreate)
    for field in ("prompt", "model_a", "model_b"):
        if not getattr(body, field).strip():
            raise InvalidRequest(f"{field} must not be empty", param=field)
    for field in ("prompt", "answer_a", "answer_b"):
        if len(getattr(body, field)) > MAX_TEXT:
            raise InvalidRequest(f"{field} is longer than {MAX_TEXT:,} characters", param=field)
    preference = Preference(id=new_id("pref"), created_at=int(time.time()), **msgspec.structs.asdict(body))
    record = msgspec.to_builtins(preference)
    services(request).store.add_preference(preference.id, preference.created_at, record)
    return preference


@get("/v1/preferences")
async def list_preferences(request: Request, format: str | None = None) -> Any:
    """Every vote, oldest first; `format=dpo` gives JSONL {prompt, chosen, rejected} lines (ties left out),
    ready to train a preference method on."""
    rows = [msgspec.convert(record, Preference) for _, _, record in services(request).store.preferences()]
    if format is None:
        return PreferenceList(data=rows)
    if format != "dpo":
        raise InvalidRequest("format must be 'dpo' (or left out)", param="format")
    lines = []
    for p in rows:
        if p.winner == "tie":
            continue
        chosen, rejected = (p.answer_a, p.answer_b) if p.winner == "a" else (p.answer_b, p.answer_a)
        messages = ([{"role": "system", "content": p.system}] if p.system else []) + [
            {"role": "user", "content": p.prompt}]
        lines.append(json.dumps({"prompt": messages, "chosen": [{"role": "assistant", "content": chosen}],
                                 "rejected": [{"role": "assistant", "content": rejected}]}, ensure_ascii=False))
    return Response("".join(line + "\n" for line in lines).encode(), media_type="application/x-ndjson")


ROUTES = [create_preference, list_preferences]

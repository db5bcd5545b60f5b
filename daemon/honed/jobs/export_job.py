"""The worker's side of exports: write a fine-tuned model out in one format, with its model card.

The export is written into a hidden staging directory beside its destination and renamed into place when
complete, so the destination holds a whole export or nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from honed.config import Settings
from honed.errors import NotFound
from honed.export.card import model_card
from honed.export.writers import WRITERS
from honed.jobs.lifecycle import claim, fail
from honed.jobs.store import Store
from honed.serving.registry import ModelRegistry


def run_export_job(export_id: str, settings: Settings, store: Store) -> None:
    job = claim(store, export_id, "Export started")
    if job is None:
        return
    spec = job.spec
    destination = Path(spec["output_dir"])
    staging = destination.with_name(f".{destination.name}.partial-{export_id}")

    def progress(message: str, fraction: float) -> None:
        store.append_event(export_id, "log", message, {"progress": round(fraction, 3)})

    try:
        served = ModelRegistry(settings, store).lookup(spec["model"])
        source = store.get_job(spec["job_id"])
        shutil.rmtree(staging, ignore_errors=True)  # what an export interrupted by a restart left behind
        staging.mkdir(parents=True)
        checks = WRITERS[spec["format"]](served, staging, progress, spec)
        adapter_config = staging / "adapter_config.json"
        if adapter_config.is_file():  # name the base as the job did (a hub id), not this machine's copy of it
            config = json.loads(adapter_config.read_text())
            config["base_model_name_or_path"] = source.spec["model"]
            adapter_config.write_text(json.dumps(config, indent=2))
        progress("Writing the model card", 0.95)
        try:
            data = store.get_file(source.spec["training_file"])
        except NotFound:
            data = None
        card = model_card(source, spec["model"], spec["format"], data, settings.base_url)
        (staging / "README.md").write_text(card)
        if destination.exists():  # checked empty when the export was asked for; still empty, or it is not ours
            destination.rmdir()
        os.replace(staging, destination)
        files = [{"name": str(p.relative_to(destination)), "bytes": p.stat().st_size}
                 for p in sorted(destination.rglob("*")) if p.is_file()]
        total = sum(f["bytes"] for f in files)
        store.transition(export_id, "succeeded", expect={"running"},
                         message=f"Exported {spec['model']} as {spec['format']}: {len(files)} files, "
                                 f"{total / 2**20:.1f} MiB in {destination}",
                         result={"files": files, "checks": checks})
    except Exception as exc:  # the export ends failed with its reason; nothing half-written is left
        shutil.rmtree(staging, ignore_errors=True)
        fail(store, export_id, exc, "export_failed", "Export")

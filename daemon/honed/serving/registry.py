"""Which models are servable and loaded: base models once each, fine-tuned adapters hot-loaded on top.

A fine-tuned LoRA model is its base plus a named peft adapter; all adapters of one base share its weights
(peft multi-adapter), and the first request for a newly succeeded job loads its adapter without a restart.
Loaded adapters are kept in LRU order within a memory budget; the coldest are unloaded first. Requests on one
base are serialised by a lock, because the active adapter is state of the shared model.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

from honed.config import Settings
from honed.errors import InvalidRequest, NotFound
from honed.jobs.store import CheckpointRow, JobRow, Store
from honed.models.catalog import ModelCatalog
from honed.models.trust import model_load_options, tokenizer_load_options


CHECKPOINT_NAME = re.compile(r":ckpt-step-(\d+)$")


class ServedModel(msgspec.Struct, frozen=True):
    """What a model name in a request means: a base directory and, for fine-tuned LoRA, an adapter."""

    name: str
    base_key: str
    base_dir: Path
    adapter_name: str | None = None
    adapter_dir: Path | None = None
    engine: str = "torch"
    """Which engine generates: torch for HF weights, llamacpp for a GGUF export."""
    gguf_file: Path | None = None
    gguf_lora: Path | None = None


class _LoadedBase:
    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.lock = threading.Lock()
        self.adapters: OrderedDict[str, int] = OrderedDict()  # name -> bytes, least recently used first

    @property
    def has_peft(self) -> bool:
        return bool(self.adapters)


def adapter_bytes(model: Any, name: str) -> int:
    """Memory held by one named adapter's weights."""
    marker = f".{name}."
    return sum(p.numel() * p.element_size() for key, p in model.named_parameters() if marker in key)


class ModelRegistry:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.catalog = ModelCatalog(settings.models_dir)
        self.adapter_budget = settings.adapter_memory_bytes
        self._bases: dict[str, _LoadedBase] = {}
        self._loading = threading.Lock()
        self._used: dict[str, ServedModel] = {}  # every name asked for, to say which are in memory now

    def resolve_alias(self, name: str) -> str:
        """The model an alias serves now; any other name as it is. Read from the store on every call, so
        pointing an alias at a newer model (or rolling it back) takes effect at the next request."""
        alias = self.store.get_alias(name)
        return name if alias is None else alias.target

    def lookup(self, name: str) -> ServedModel:
        """Map a request's model name to what must be loaded; NotFound says which names exist."""
        target = self.resolve_alias(name)
        if target != name:
            return msgspec.structs.replace(self.lookup(target), name=name)
        if CHECKPOINT_NAME.search(name):
            return self._checkpoint(name)
        if name.startswith("export-"):
            return self._gguf_export(name)
        if name.startswith("ft:"):
            job = self._finished_job(name)
            output = self.settings.home / job.result["output_path"]
            if job.spec["options"]["adapter"] == "full":
                return ServedModel(name, f"full:{job.id}", output)
            base = self.catalog.local_dir(job.spec["model"])
            return ServedModel(name, f"base:{base}", base, job.id, output)
        try:
            source = self.catalog.resolve(name)
        except NotFound as exc:
            raise NotFound(f"The model '{name}' does not exist. GET /v1/models lists the models served here.",
                           param="model", code="model_not_found") from exc
        base = self.catalog.local_dir(source.name)
        return ServedModel(source.name, f"base:{base}", base)

    def lookup_reference(self, name: str) -> None:
        """Check that `name` is servable without loading or preparing anything; NotFound otherwise."""
        name = self.resolve_alias(name)
        if CHECKPOINT_NAME.search(name):
            self._checkpoint_row(name)
        elif name.startswith("export-"):
            self._gguf_export(name)
        elif name.startswith("ft:"):
            self._finished_job(name)
        else:
            self.catalog.resolve(name)

    def source_job(self, name: str) -> JobRow:
        """The fine-tuning job behind a fine-tuned model, one of its checkpoints, or an alias of either."""
        name = self.resolve_alias(name)
        if CHECKPOINT_NAME.search(name):
            return self._checkpoint_row(name)[0]
        if name.startswith("ft:"):
            return self._finished_job(name)
        self.catalog.resolve(name)  # NotFound for a name that is nothing at all
        raise InvalidRequest(f"'{name}' is a base model, not a fine-tuned one: there is nothing of yours to export",
                             param="model")

    def _checkpoint_row(self, name: str) -> tuple[JobRow, CheckpointRow]:
        """The job and checkpoint behind "<fine-tuned model or ft:JOB>:ckpt-step-N" (OpenAI's checkpoint
        names), for a finished job or one still training; NotFound otherwise."""
        found = CHECKPOINT_NAME.search(name)
        owner, step = name[:found.start()], int(found.group(1))
        job = (self.store.job_for_model(owner) if owner.count(":") > 1
               else self._job_or_none(owner.removeprefix("ft:")))
        row = next((c for c in self.store.checkpoints(job.id) if c.step == step), None) if job else None
        if row is None or not (self.settings.home / row.path).is_dir():
            raise NotFound(f"The checkpoint '{name}' does not exist; GET /v1/fine_tuning/jobs/JOB/checkpoints "
                           "lists a job's checkpoints", param="model", code="model_not_found")
        return job, row

    def _job_or_none(self, job_id: str) -> JobRow | None:
        try:
            return self.store.get_job(job_id)
        except NotFound:
            return None

    def _gguf_export(self, name: str) -> ServedModel:
        """A finished GGUF export, served by llama.cpp (with its LoRA file, for a gguf-lora export)."""
        from honed.export.writers import GGUF_FILES

        export = self._job_or_none(name)
        if export is None or export.status != "succeeded" or export.spec.get("format") not in GGUF_FILES:
            raise NotFound(f"The model '{name}' does not exist: only a finished GGUF export is served under its "
                           "export id (GET /v1/exports lists them)", param="model", code="model_not_found")
        folder = Path(export.spec["output_dir"])
        model_file = folder / GGUF_FILES[export.spec["format"]].format(q=export.spec.get("quantization") or "f16")
        lora = folder / "adapter.gguf" if export.spec["format"] == "gguf-lora" else None
        return ServedModel(name, f"gguf:{model_file}:{lora}", folder, engine="llamacpp", gguf_file=model_file,
                           gguf_lora=lora)

    def _checkpoint(self, name: str) -> ServedModel:
        job, row = self._checkpoint_row(name)
        directory = self.settings.home / row.path
        if job.spec["options"]["adapter"] == "full":
            return ServedModel(name, f"full:{job.id}:{row.step}", directory)
        base = self.catalog.local_dir(job.spec["model"])
        return ServedModel(name, f"base:{base}", base, f"{job.id}-step-{row.step}", directory)

    def _finished_job(self, name: str) -> JobRow:
        """The succeeded job behind a fine-tuned model's name; NotFound for anything else."""
        job = self.store.job_for_model(name)
        if job is None or job.status != "succeeded" or not job.result:
            raise NotFound(f"The model '{name}' does not exist. GET /v1/models lists the models served here.",
                           param="model", code="model_not_found")
        return job

    def _base(self, served: ServedModel) -> _LoadedBase:
        with self._loading:
            loaded = self._bases.get(served.base_key)
            if loaded is None and served.engine == "llamacpp":
                from transformers import AutoTokenizer

                from honed.engines.llamacpp_engine import load_gguf

                assert served.gguf_file is not None
                loaded = self._bases[served.base_key] = _LoadedBase(
                    load_gguf(served.gguf_file, served.gguf_lora), AutoTokenizer.from_pretrained(served.base_dir, **tokenizer_load_options()))
            if loaded is None:
                from transformers import AutoModelForCausalLM, AutoTokenizer

                from honed.engines.torch_train import pick_device

                tokenizer = AutoTokenizer.from_pretrained(served.base_dir, **tokenizer_load_options())
                model = AutoModelForCausalLM.from_pretrained(served.base_dir, **model_load_options(served.base_dir))
                model.to(pick_device()).eval()
                loaded = self._bases[served.base_key] = _LoadedBase(model, tokenizer)
            return loaded

    def _activate(self, loaded: _LoadedBase, served: ServedModel) -> None:
        """Make served.adapter_name the active adapter, loading (and evicting) as needed. Lock held."""
        from peft import PeftModel

        name, directory = served.adapter_name, served.adapter_dir
        assert name is not None and directory is not None
        if name not in loaded.adapters:
            if isinstance(loaded.model, PeftModel):
                loaded.model.load_adapter(directory, adapter_name=name)
            else:
                loaded.model = PeftModel.from_pretrained(loaded.model, directory, adapter_name=name)
            loaded.adapters[name] = adapter_bytes(loaded.model, name)
            self._evict(loaded, keep=name)
        loaded.adapters.move_to_end(name)
        loaded.model.set_adapter(name)
        loaded.model.eval()

    def _evict(self, loaded: _LoadedBase, keep: str) -> None:
        """Unload least recently used adapters until the loaded ones fit the budget (never `keep`)."""
        while sum(loaded.adapters.values()) > self.adapter_budget and len(loaded.adapters) > 1:
            coldest = next(name for name in loaded.adapters if name != keep)
            loaded.adapters.pop(coldest)
            loaded.model.delete_adapter(coldest)

    @contextmanager
    def use(self, name: str) -> Iterator[tuple[Any, Any, ServedModel]]:
        """Hold a model ready to generate for `name`: (model, tokenizer, served), exclusive while held."""
        served = self.lookup(name)
        loaded = self._base(served)
        self._used[name] = served
        with loaded.lock:
            if served.adapter_name is not None:
                self._activate(loaded, served)
                yield loaded.model, loaded.tokenizer, served
            elif loaded.has_peft:
                with loaded.model.disable_adapter():
                    yield loaded.model, loaded.tokenizer, served
            else:
                yield loaded.model, loaded.tokenizer, served

    def loaded_models(self) -> list[str]:
        """Model names whose weights are in memory now (a fine-tuned one: its adapter is still loaded)."""
        return sorted(name for name, served in list(self._used.items())
                      if served.base_key in self._bases and (served.adapter_name is None
                                                             or served.adapter_name in self._bases[served.base_key].adapters))

    def loaded_adapters(self) -> list[str]:
        """Names of the adapters in memory, coldest first."""
        return [name for base in self._bases.values() for name in base.adapters]

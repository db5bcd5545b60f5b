"""The serving registry: adapters hot-loaded over one shared base, LRU-evicted within a memory budget."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from honed.config import load_settings
from honed.jobs.store import Store
from honed.serving.registry import ModelRegistry


def make_adapter(tiny_model, directory, seed):
    """A random (non-zero) LoRA adapter, standing in for a trained one: it changes the model's outputs."""
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(directory)
    return directory


def register_job(store, home, job_id, tiny_model, adapter_dir):
    spec = {"model": str(tiny_model), "options": {"adapter": "lora"}, "training_file": "file-x",
            "validation_file": None}
    store.create_job(job_id, spec)
    store.transition(job_id, "queued")
    store.transition(job_id, "running")
    name = f"ft:tiny::{job_id}"
    store.transition(job_id, "succeeded", fine_tuned_model=name,
                     result={"output_path": str(adapter_dir.relative_to(home))})
    return name


def logits(registry, name, ids):
    with registry.use(name) as (model, _tokenizer, _served):
        with torch.no_grad():
            return model(input_ids=ids).logits[0, -1]


def setup(tmp_path, tiny_model, budget_mb):
    home = tmp_path / "home"
    settings = load_settings(home=str(home), adapter_memory_bytes=int(budget_mb * 1024 * 1024))
    settings.ensure_dirs()
    store = Store(settings.db_path)
    names = [register_job(store, home, f"ftjob-{i}", tiny_model,
                          make_adapter(tiny_model, home / "jobs" / f"ftjob-{i}" / "adapter", seed=i))
             for i in range(3)]
    return ModelRegistry(settings, store), names


def test_adapters_share_one_base_and_do_not_leak_into_each_other(tmp_path, tiny_model):
    registry, names = setup(tmp_path, tiny_model, budget_mb=100)
    ids = torch.tensor([[5, 6, 7, 8]])
    base_before = logits(registry, str(tiny_model), ids)
    first = logits(registry, names[0], ids)
    second = logits(registry, names[1], ids)
    assert not torch.allclose(first, base_before) and not torch.allclose(first, second)
    assert torch.allclose(logits(registry, str(tiny_model), ids), base_before)  # base stays the base
    assert torch.allclose(logits(registry, names[0], ids), first)  # switching back gives the same model
    assert registry.loaded_adapters() == ["ftjob-1", "ftjob-0"]
    assert len(registry._bases) == 1  # one copy of the base weights for all of them


def test_the_coldest_adapter_is_unloaded_past_the_memory_budget(tmp_path, tiny_model):
    registry, names = setup(tmp_path, tiny_model, budget_mb=0.4)  # each adapter is ~0.3 MB
    ids = torch.tensor([[5, 6, 7, 8]])
    expected = {name: None for name in names}
    for name in names:
        expected[name] = logits(registry, name, ids)
        assert registry.loaded_adapters() == [name.rsplit(":", 1)[1]]
    for name in names:  # reloading an evicted adapter gives the same model back
        assert torch.allclose(logits(registry, name, ids), expected[name])

"""The memory-saving training options change how a step is computed, not what it computes."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from honed.data.example import Example, Message
from honed.data.tokenize import tokenize_example
from honed.engines.base import TrainCallbacks, TrainConfig
from honed.engines.schedule import micro_batches
from honed.engines.torch_train import train


def _examples(tiny_model: Path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    pairs = [(f"What is item {i}?" + " please" * (i % 5), f"Item {i} is" + " very" * (i % 4) + " fine.")
             for i in range(16)]
    return [tokenize_example(tokenizer, Example((Message("user", q), Message("assistant", a)), line=i + 1), 128)
            for i, (q, a) in enumerate(pairs)]


def _losses(tiny_model: Path, out: Path, **options) -> list[float]:
    losses: list[float] = []

    def event(type_, message, data, level="info"):
        if type_ == "metrics":
            losses.append(data["train_loss"])

    config = TrainConfig(model_dir=tiny_model, output_dir=out, lora_rank=8, learning_rate=5e-3, n_epochs=1,
                         batch_size=8, checkpoint_interval=1000, lora_dropout=0.0, seed=3, **options)
    train(config, _examples(tiny_model), [], TrainCallbacks(event, lambda *a: None, lambda: None))
    return losses


def test_micro_batches_cover_the_batch_once():
    assert micro_batches([5, 1, 7, 3, 9], 2) == [[5, 1, 7], [3, 9]]
    assert micro_batches([5, 1], 4) == [[5], [1]]


@pytest.fixture(scope="module")
def plain(tiny_model, tmp_path_factory) -> list[float]:
    return _losses(tiny_model, tmp_path_factory.mktemp("plain"))


@pytest.mark.parametrize("options", [{"gradient_accumulation": 4}, {"gradient_checkpointing": True}],
                         ids=["accumulation", "checkpointing"])
def test_memory_options_train_the_same_steps(tiny_model, tmp_path, options, plain):
    changed = _losses(tiny_model, tmp_path / "changed", **options)
    assert len(plain) == len(changed) == 2
    # same batches, same update: the second step's loss (after one update) agrees too
    assert changed == pytest.approx(plain, rel=1e-4)


def test_bf16_autocast_on_cpu_stays_close_to_fp32(tiny_model, tmp_path, plain):
    bf16 = _losses(tiny_model, tmp_path / "bf16", precision="bf16")
    assert bf16 != plain  # it really computed in bf16
    assert bf16 == pytest.approx(plain, rel=0.02)


def test_only_a_frozen_base_is_kept_in_bf16_on_a_gpu(tiny_model, tmp_path):
    import torch

    from honed.engines.torch_train import weights_dtype

    def dtype(adapter: str, device: str, precision: str = "bf16") -> torch.dtype:
        config = TrainConfig(model_dir=tiny_model, output_dir=tmp_path, adapter=adapter, precision=precision)
        return weights_dtype(config, torch.device(device))

    assert dtype("lora", "cuda") == torch.bfloat16
    # trained weights stay fp32 masters (bf16 AdamW updates round away; see benchmarks/cuda_check.py)
    assert dtype("full", "cuda") == torch.float32
    assert dtype("lora", "cpu") == torch.float32
    assert dtype("lora", "cuda", precision="fp32") == torch.float32

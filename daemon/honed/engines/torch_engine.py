"""The PyTorch engine (transformers + peft) on CPU, CUDA or MPS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from honed.data.tokenize import TokenizedExample
from honed.engines.base import GeneratedToken, GenerationParams, TrainCallbacks, TrainConfig, TrainResult


class TorchEngine:
    name = "torch"

    def train(self, config: TrainConfig, train: list[TokenizedExample], valid: list[TokenizedExample],
              callbacks: TrainCallbacks) -> TrainResult:
        from honed.engines.torch_train import train as run_training

        return run_training(config, train, valid, callbacks)

    def generate(self, model: Any, prompt_ids: list[int], params: GenerationParams,
                 stop_ids: set[int]) -> Iterator[GeneratedToken]:
        from honed.engines.torch_generate import generate_tokens

        return generate_tokens(model, prompt_ids, params, stop_ids)

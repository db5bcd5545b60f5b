"""llama.cpp (llama-cpp-python) for serving GGUF exports: the same token stream as the torch engine.

llama.cpp evaluates the model; picking each token stays honed's (engines.torch_generate.next_token), so
temperature, top_p, seeds and logprobs mean the same whichever engine serves a model, and a greedy answer from
a GGUF F16 export can be compared token for token with torch's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from honed.data.tokenize import TokenizedExample
from honed.engines.base import GeneratedToken, GenerationParams, TrainCallbacks, TrainConfig, TrainResult
from honed.errors import InvalidRequest

LLAMACPP_MISSING = "serving GGUF needs llama-cpp-python: pip install 'honed[llamacpp]' (scripts/setup.sh installs it)"


def load_gguf(path: Path, lora: Path | None = None, context: int = 4096) -> Any:
    """A llama.cpp model from a GGUF file, with a GGUF LoRA adapter applied when given."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise InvalidRequest(f"{LLAMACPP_MISSING} ({exc})", param="model") from None
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Llama(model_path=str(path), lora_path=str(lora) if lora else None, n_ctx=context, n_threads=threads,
                 n_batch=512, logits_all=False, verbose=False)


class LlamaCppEngine:
    name = "llamacpp"

    def train(self, config: TrainConfig, train: list[TokenizedExample], valid: list[TokenizedExample],
              callbacks: TrainCallbacks) -> TrainResult:
        raise InvalidRequest("the llama.cpp engine serves GGUF exports; training runs on torch or mlx",
                             param="honed.engine")

    def generate(self, model: Any, prompt_ids: list[int], params: GenerationParams,
                 stop_ids: set[int]) -> Iterator[GeneratedToken]:
        import llama_cpp
        import numpy as np
        import torch

        from honed.engines.torch_generate import next_token

        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        vocab = model.n_vocab()
        model.reset()
        model.eval(prompt_ids)
        for _ in range(params.max_new_tokens):
            # the last position's logits: llama.cpp keeps them after every eval, with or without logits_all
            raw = llama_cpp.llama_get_logits_ith(model.ctx, -1)
            logits = torch.from_numpy(np.ctypeslib.as_array(raw, shape=(vocab,)).copy())
            chosen = next_token(logits, params, generator)
            yield chosen
            if chosen.id in stop_ids:
                return
            model.eval([chosen.id])

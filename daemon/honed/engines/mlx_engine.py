"""The MLX engine (mlx-lm): Metal on Apple Silicon, mlx[cpu] elsewhere (slow but the same code path).

Training is mlx_train's loop; generation yields one token at a time over mlx-lm's KV cache, with torch_generate's
sampling rules, so the server streams, stops and counts the same way whichever engine is behind it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlx.core as mx

from honed.data.tokenize import TokenizedExample
from honed.engines.base import GeneratedToken, GenerationParams, TrainCallbacks, TrainConfig, TrainResult
from honed.engines.mlx_convert import MLX_WEIGHTS, PEFT_WEIGHTS, AdapterConversionError, peft_to_mlx


def _pick(logits: mx.array, params: GenerationParams, key: mx.array | None) -> int:
    """The next token: argmax at temperature <= 0, else a draw from the tempered distribution, cut to the
    smallest prefix whose mass reaches top_p (always at least the most likely token)."""
    if params.temperature <= 0:
        return int(mx.argmax(logits).item())
    scaled = logits / params.temperature
    if params.top_p < 1.0:
        order = mx.argsort(-scaled)
        ranked = scaled[order]
        probs = mx.softmax(ranked)
        keep = mx.cumsum(probs) - probs < params.top_p
        choice = mx.random.categorical(mx.where(keep, ranked, -mx.inf), key=key)
        return int(order[choice].item())
    return int(mx.random.categorical(scaled, key=key).item())


def generate_tokens(model: Any, prompt_ids: list[int], params: GenerationParams,
                    stop_ids: set[int]) -> Iterator[GeneratedToken]:
    """Yield generated tokens one by one (a stop id is yielded too, then generation ends).

    Logprobs are those of the model's distribution before temperature, as OpenAI reports them."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    key = mx.random.key(params.seed) if params.seed is not None else None
    inputs = mx.array([prompt_ids])
    for _ in range(params.max_new_tokens):
        logits = model(inputs, cache=cache)[0, -1].astype(mx.float32)
        logprobs = logits - mx.logsumexp(logits)
        step_key = None
        if key is not None:
            key, step_key = mx.random.split(key)
        token = _pick(logits, params, step_key)
        top = None
        if params.top_logprobs:
            ids = mx.argsort(-logprobs)[:params.top_logprobs].tolist()
            values = logprobs[mx.array(ids)].tolist()
            top = list(zip(ids, values))
        yield GeneratedToken(token, logprobs[token].item(), top)
        if token in stop_ids:
            return
        inputs = mx.array([[token]])


def _mlx_adapter_dir(adapter_dir: Path, scratch: Path) -> Path:
    """Where mlx-lm's files for this adapter are: the directory itself, its mlx/ (what honed writes beside a
    PEFT adapter), or a conversion of its PEFT files into `scratch`."""
    for candidate in (adapter_dir, adapter_dir / "mlx"):
        if (candidate / MLX_WEIGHTS).is_file():
            return candidate
    if (adapter_dir / PEFT_WEIGHTS).is_file():
        return peft_to_mlx(adapter_dir, scratch)
    raise AdapterConversionError(f"{adapter_dir} holds neither {MLX_WEIGHTS} (mlx-lm) nor {PEFT_WEIGHTS} (PEFT)")


class MLXEngine:
    name = "mlx"

    def train(self, config: TrainConfig, train: list[TokenizedExample], valid: list[TokenizedExample],
              callbacks: TrainCallbacks) -> TrainResult:
        from honed.engines.mlx_train import train as run_training

        return run_training(config, train, valid, callbacks)

    def generate(self, model: Any, prompt_ids: list[int], params: GenerationParams,
                 stop_ids: set[int]) -> Iterator[GeneratedToken]:
        return generate_tokens(model, prompt_ids, params, stop_ids)

    def load(self, model_dir: Path, adapter_dir: Path | None = None) -> tuple[Any, Any]:
        """(model in eval mode, mlx-lm tokenizer) for a Hugging Face base directory, with a LoRA adapter in
        either format on it: mlx-lm's (adapters.safetensors) or PEFT's (converted on the fly).

        Raises AdapterConversionError for a PEFT adapter mlx-lm cannot express (DoRA, per-module ranks...)."""
        from mlx_lm.utils import load

        if adapter_dir is None:
            model, tokenizer = load(str(model_dir))
            return model, tokenizer
        with tempfile.TemporaryDirectory(prefix="honed-mlx-adapter-") as scratch:
            source = _mlx_adapter_dir(Path(adapter_dir), Path(scratch))
            model, tokenizer = load(str(model_dir), adapter_path=str(source))
            mx.eval(model.parameters())  # read the adapter before its temporary copy goes
        model.eval()
        return model, tokenizer

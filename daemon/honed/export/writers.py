"""The export formats. Each writes into an empty staging directory and reports progress; the export job moves
the finished directory into place, so a failed or interrupted export never leaves a half-written model where a
person would look for it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from honed.errors import InvalidRequest
from honed.models.trust import model_load_options, tokenizer_load_options
from honed.serving.registry import ServedModel

Progress = Callable[[str, float], None]
"""progress(what is happening, fraction done)"""
Writer = Callable[[ServedModel, Path, Progress, dict[str, Any]], dict[str, Any]]
"""writer(model, staging folder, progress, the export's spec) -> what was checked"""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json")
MAX_SHARD_SIZE = "2GB"


def _copy_tokenizer(base_dir: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, out / name)


def write_adapter(served: ServedModel, out: Path, progress: Progress, spec: dict[str, Any]) -> dict[str, Any]:
    """The PEFT adapter directory as training wrote it, with the base's tokenizer: loads with
    PeftModel.from_pretrained / AutoPeftModelForCausalLM on any machine that has the base model."""
    if served.adapter_dir is None:
        raise InvalidRequest(f"'{served.name}' is a full fine-tune: it has no adapter; export it as 'merged'",
                             param="format")
    progress("Copying the adapter", 0.2)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy2(served.adapter_dir / name, out / name)
    _copy_tokenizer(served.base_dir, out)
    return {}


def load_merged(served: ServedModel, progress: Progress) -> tuple[Any, Any]:
    """The fine-tuned model as one plain transformers model (a LoRA folded into its base weights), in fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    progress("Loading the base model", 0.1)
    model = AutoModelForCausalLM.from_pretrained(served.base_dir, dtype=torch.float32,
                                                 **model_load_options(served.base_dir))
    tokenizer = AutoTokenizer.from_pretrained(served.base_dir, **tokenizer_load_options())
    if served.adapter_dir is not None:
        from peft import PeftModel

        progress("Merging the adapter into the base", 0.35)
        model = PeftModel.from_pretrained(model, served.adapter_dir).merge_and_unload()
    return model.eval(), tokenizer


def write_merged(served: ServedModel, out: Path, progress: Progress, spec: dict[str, Any]) -> dict[str, Any]:
    """safetensors shards of the merged model, its config and tokenizer: loads with
    AutoModelForCausalLM.from_pretrained and needs neither peft nor the base model."""
    model, tokenizer = load_merged(served, progress)
    progress("Writing safetensors", 0.6)
    model.save_pretrained(out, safe_serialization=True, max_shard_size=MAX_SHARD_SIZE)
    tokenizer.save_pretrained(out)
    return {}


class _LogitsOnly:
    """forward(input_ids, attention_mask) -> logits, without the cache: the graph ONNX needs."""

    def __new__(cls, model: Any) -> Any:
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):  # noqa: ANN001 - traced tensors
                return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

        return Wrapped()


ONNX_TOLERANCE = 1e-3
"""Largest next-token logit difference (onnxruntime vs torch, fp32) accepted as the same model."""


def write_onnx(served: ServedModel, out: Path, progress: Progress, spec: dict[str, Any]) -> dict[str, Any]:
    """model.onnx (inputs input_ids and attention_mask, output logits, batch and length dynamic) with the
    tokenizer, checked after writing: onnxruntime must give torch's next-token logits within ONNX_TOLERANCE."""
    import numpy as np
    import torch

    model, tokenizer = load_merged(served, progress)
    wrapped = _LogitsOnly(model).eval()
    ids, mask = _sample(tokenizer)
    progress("Tracing the model to ONNX", 0.5)
    path = out / "model.onnx"
    with torch.no_grad():
        torch.onnx.export(wrapped, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], opset_version=18, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch", 1: "length"},
                                        "attention_mask": {0: "batch", 1: "length"},
                                        "logits": {0: "batch", 1: "length"}})
        expected = wrapped(ids, mask)[:, -1].numpy()
    tokenizer.save_pretrained(out)
    model.config.save_pretrained(out)
    progress("Checking the ONNX model with onnxruntime", 0.85)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    difference = float(np.abs(logits[:, -1] - expected).max())
    same_token = bool((logits[:, -1].argmax(-1) == expected.argmax(-1)).all())
    if difference > ONNX_TOLERANCE or not same_token:
        raise RuntimeError(f"the ONNX model's next-token logits differ from torch's by {difference:.2e} "
                           f"(tolerance {ONNX_TOLERANCE:g}); the export is not kept")
    return {"onnxruntime_max_logit_difference": difference, "same_next_token": same_token,
            "onnxruntime": onnxruntime.__version__}


def _sample(tokenizer: Any) -> tuple[Any, Any]:
    """A short chat prompt as (input_ids, attention_mask): what exported models are checked on."""
    sample = tokenizer.apply_chat_template([{"role": "user", "content": "Hello! What can you do?"}],
                                           add_generation_prompt=True, return_dict=True, return_tensors="pt")
    return sample["input_ids"], sample["attention_mask"]


GGUF_TOLERANCE = {"f16": 0.05}
"""Largest next-token logit difference accepted after reading the GGUF back (F16 rounds every weight; Q8_0's
agreement is recorded, not required)."""


def write_gguf_export(served: ServedModel, out: Path, progress: Progress, spec: dict[str, Any]) -> dict[str, Any]:
    """model-<quantisation>.gguf of the merged model, read back by transformers' GGUF loader (an implementation
    independent of the writer) and compared with the torch model on the next token."""
    import contextlib
    import io

    import torch
    from transformers import AutoModelForCausalLM

    from honed.export.gguf_file import write_gguf

    quantisation = spec.get("quantization") or "f16"
    model, tokenizer = load_merged(served, progress)
    name = f"model-{quantisation}.gguf"
    progress(f"Writing {name}", 0.5)
    write_gguf(model, tokenizer, out / name, quantisation, spec["model"])
    tokenizer.save_pretrained(out)
    progress("Reading the GGUF back to check it", 0.8)
    ids, mask = _sample(tokenizer)
    with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
        expected = model(input_ids=ids, attention_mask=mask).logits[:, -1]
        reread = AutoModelForCausalLM.from_pretrained(out, gguf_file=name, dtype=torch.float32).eval()
        found = reread(input_ids=ids, attention_mask=mask).logits[:, -1]
    difference = float((found - expected).abs().max())
    same_token = bool((found.argmax(-1) == expected.argmax(-1)).all())
    tolerance = GGUF_TOLERANCE.get(quantisation)
    if tolerance is not None and (difference > tolerance or not same_token):
        raise RuntimeError(f"the GGUF read back gives next-token logits {difference:.2e} away from torch's "
                           f"(tolerance {tolerance:g}); the export is not kept")
    return {"quantization": quantisation, "reread_max_logit_difference": difference, "same_next_token": same_token}


def write_gguf_lora_export(served: ServedModel, out: Path, progress: Progress,
                           spec: dict[str, Any]) -> dict[str, Any]:
    """base-<quantisation>.gguf (the base model, unmerged) and adapter.gguf (the LoRA): llama.cpp applies the
    adapter at load time, so several adapters can share one base file."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from honed.export.gguf_file import write_gguf, write_gguf_lora

    if served.adapter_dir is None:
        raise InvalidRequest(f"'{served.name}' is a full fine-tune: it has no adapter; export it as 'gguf'",
                             param="format")
    quantisation = spec.get("quantization") or "f16"
    progress("Loading the base model", 0.1)
    base = AutoModelForCausalLM.from_pretrained(served.base_dir, dtype=torch.float32,
                                                 **model_load_options(served.base_dir))
    tokenizer = AutoTokenizer.from_pretrained(served.base_dir, **tokenizer_load_options())
    progress(f"Writing base-{quantisation}.gguf", 0.3)
    write_gguf(base, tokenizer, out / f"base-{quantisation}.gguf", quantisation, f"{spec['model']} (base)")
    progress("Writing adapter.gguf", 0.8)
    write_gguf_lora(served.adapter_dir, base.config, out / "adapter.gguf", spec["model"])
    tokenizer.save_pretrained(out)
    return {"quantization": quantisation}


GGUF_FILES = {"gguf": "model-{q}.gguf", "gguf-lora": "base-{q}.gguf"}
"""The model file each GGUF format writes ({q}: the quantisation), for serving an export by its id."""

WRITERS: dict[str, Writer] = {"adapter": write_adapter, "merged": write_merged, "onnx": write_onnx,
                              "gguf": write_gguf_export, "gguf-lora": write_gguf_lora_export}

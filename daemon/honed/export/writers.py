"""The export formats. Each writes into an empty staging directory and reports progress; the export job moves
the finished directory into place, so a failed or interrupted export never leaves a half-written model where a
person would look for it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from honed.errors import InvalidRequest
from honed.serving.registry import ServedModel

Progress = Callable[[str, float], None]
"""progress(what is happening, fraction done)"""

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "tokenizer.model", "generation_config.json")
MAX_SHARD_SIZE = "2GB"


def _copy_tokenizer(base_dir: Path, out: Path) -> None:
    for name in TOKENIZER_FILES:
        if (base_dir / name).is_file():
            shutil.copy2(base_dir / name, out / name)


def write_adapter(served: ServedModel, out: Path, progress: Progress) -> dict[str, Any]:
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
    model = AutoModelForCausalLM.from_pretrained(served.base_dir, dtype=torch.float32, use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(served.base_dir)
    if served.adapter_dir is not None:
        from peft import PeftModel

        progress("Merging the adapter into the base", 0.35)
        model = PeftModel.from_pretrained(model, served.adapter_dir).merge_and_unload()
    return model.eval(), tokenizer


def write_merged(served: ServedModel, out: Path, progress: Progress) -> dict[str, Any]:
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


def write_onnx(served: ServedModel, out: Path, progress: Progress) -> dict[str, Any]:
    """model.onnx (inputs input_ids and attention_mask, output logits, batch and length dynamic) with the
    tokenizer, checked after writing: onnxruntime must give torch's next-token logits within ONNX_TOLERANCE."""
    import numpy as np
    import torch

    model, tokenizer = load_merged(served, progress)
    wrapped = _LogitsOnly(model).eval()
    sample = tokenizer.apply_chat_template([{"role": "user", "content": "Hello! What can you do?"}],
                                           add_generation_prompt=True, return_dict=True, return_tensors="pt")
    ids, mask = sample["input_ids"], sample["attention_mask"]
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


WRITERS: dict[str, Callable[[ServedModel, Path, Progress], dict[str, Any]]] = {
    "adapter": write_adapter, "merged": write_merged, "onnx": write_onnx}

"""How big a model is, read from its directory without loading it: config.json and the safetensors headers."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import msgspec

# transformer-block linear layers by their place in the weight names (the same set as peft's "all-linear":
# every Linear except the output head; embeddings and norms are not Linear)
BLOCK_LINEAR = re.compile(r"\.layers\.\d+\..*\.weight$")
DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I8": 1, "U8": 1, "I32": 4, "I64": 8}


class ModelShape(msgspec.Struct, frozen=True):
    parameters: int
    layers: int
    hidden: int
    vocab: int
    max_positions: int
    weight_bytes: int
    """As stored on disk (the dtype it was saved in)."""
    block_linears: list[tuple[str, int, int]]
    """(short name, in_features, out_features) of every Linear inside the transformer blocks: where LoRA goes."""

    def lora_parameters(self, rank: int, targets: list[str] | None = None) -> int:
        """Trainable parameters of a LoRA adapter of this rank on `targets` (None: every block Linear)."""
        return sum(rank * (i + o) for name, i, o in self.block_linears if targets is None or name in targets)


def _headers(model_dir: Path) -> dict[str, dict]:
    tensors: dict[str, dict] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        header.pop("__metadata__", None)
        tensors.update(header)
    return tensors


def read_shape(model_dir: Path) -> ModelShape:
    """The shape of a local HF model directory (safetensors weights)."""
    config = json.loads((model_dir / "config.json").read_text())
    text = config.get("text_config", config)  # multimodal configs nest the language model's
    tensors = _headers(model_dir)
    if not tensors:
        raise ValueError(f"{model_dir} has no .safetensors weights")
    parameters, weight_bytes = 0, 0
    linears: list[tuple[str, int, int]] = []
    for name, info in tensors.items():
        count = 1
        for dim in info["shape"]:
            count *= dim
        parameters += count
        weight_bytes += count * DTYPE_BYTES.get(info["dtype"], 4)
        if len(info["shape"]) == 2 and BLOCK_LINEAR.search(name):
            out_features, in_features = info["shape"]
            linears.append((name.rsplit(".", 2)[-2], in_features, out_features))
    return ModelShape(
        parameters=parameters, layers=int(text.get("num_hidden_layers", 0)), hidden=int(text.get("hidden_size", 0)),
        vocab=int(text.get("vocab_size", 0)), max_positions=int(text.get("max_position_embeddings", 2048)),
        weight_bytes=weight_bytes, block_linears=linears,
    )

"""LoRA adapters between mlx-lm's layout and PEFT's, both ways, exactly.

The two hold the same numbers in different clothes:

    mlx-lm  adapters.safetensors  "<module>.lora_a" (in, r), "<module>.lora_b" (r, out); y += scale * x @ a @ b
            adapter_config.json   {"fine_tune_type": "lora", "num_layers", "lora_parameters": {rank, scale, ...}}
    PEFT    adapter_model.safetensors  "base_model.model.<module>.lora_A.weight" (r, in), "....lora_B.weight" (out, r)
            adapter_config.json   {"peft_type": "LORA", "r", "lora_alpha", "target_modules", ...}; scale = alpha / r

so lora_A = a.T, lora_B = b.T and lora_alpha = scale * r; module paths are the Hugging Face names in both
(mlx-lm's models keep them). Weights are only transposed, never recomputed: a round trip gives back the same
bytes. Anything that has no counterpart on the other side (DoRA, per-module ranks or alphas, extra trained
modules, biases) is refused with an error that says so, rather than converted into something that differs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import mlx.core as mx

from honed.errors import HonedError

MLX_WEIGHTS = "adapters.safetensors"
PEFT_WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
PEFT_PREFIX = "base_model.model."
ALL_LAYERS = -1  # mlx-lm's num_layers: model.layers[-max(n, 0):], so -1 is every block
LAYER_PATH = re.compile(r"^(?P<blocks>.*\blayers)\.(?P<index>\d+)\.(?P<inner>.+)$")

# PEFT options that change what an adapter computes and that an mlx-lm LoRA adapter cannot express.
_PEFT_EMPTY = {"rank_pattern": "per-module ranks (rank_pattern)", "alpha_pattern": "per-module alphas (alpha_pattern)",
               "modules_to_save": "fully trained extra modules (modules_to_save)",
               "trainable_token_indices": "trainable token embeddings", "target_parameters": "LoRA on parameters",
               "layer_replication": "layer replication", "alora_invocation_tokens": "activated LoRA"}
_PEFT_FALSE = {"use_dora": "DoRA", "fan_in_fan_out": "fan_in_fan_out (Conv1D) layers", "lora_bias": "LoRA biases",
               "use_qalora": "QA-LoRA"}


class AdapterConversionError(HonedError):
    """An adapter that cannot be carried to the other format without changing what it computes."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise AdapterConversionError(f"{path.parent} holds no {path.name}; is it an adapter directory?") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _tidy(value: float) -> float | int:
    """scale * r back to the alpha a person wrote: 32, not 32.00000000000001."""
    nearest = round(value)
    return int(nearest) if abs(value - nearest) < 1e-9 * max(1.0, abs(value)) else value


def _num_layers(config: dict[str, Any]) -> int | None:
    text = config.get("text_config") or {}
    return config.get("num_hidden_layers") or text.get("num_hidden_layers")


def _peft_target_modules(paths: list[str], base_model_dir: Path | None) -> list[str]:
    """Module last names (what people write, and what PEFT's own saves hold) when the adapter covers those
    modules in every block; otherwise the full paths, so PEFT adds LoRA exactly where the weights are."""
    layers = _num_layers(_read_json(base_model_dir / "config.json")) if base_model_dir is not None else None
    matches = [LAYER_PATH.match(p) for p in paths]
    if layers and all(matches):
        blocks = {m["blocks"] for m in matches}
        inner = {m["inner"] for m in matches}
        names = {s.rsplit(".", 1)[-1] for s in inner}
        every_block = {f"{b}.{i}.{s}" for b in blocks for i in range(layers) for s in inner}
        if len(blocks) == 1 and len(names) == len(inner) and set(paths) == every_block:
            return sorted(names)
    return sorted(paths)


def mlx_to_peft(src: Path, dst: Path, base_model_dir: Path | None = None) -> Path:
    """Write the mlx-lm LoRA adapter in `src` as a PEFT adapter directory `dst` (created; files in it are
    replaced) for the base model in `base_model_dir` (its path is recorded as base_model_name_or_path, and
    its config tells whether every block is adapted). Returns `dst`.

    Raises AdapterConversionError for DoRA, full fine-tunes, and adapters whose modules do not all share one
    rank (the only rank an mlx-lm config has)."""
    src, dst = Path(src), Path(dst)
    config = _read_json(src / CONFIG)
    kind = config.get("fine_tune_type", "lora")
    if kind != "lora":
        raise AdapterConversionError(f"{src} is an mlx-lm '{kind}' adapter; only LoRA converts to PEFT")
    params = config.get("lora_parameters") or {}
    rank, scale = int(params["rank"]), float(params["scale"])
    weights = mx.load(str(src / MLX_WEIGHTS))
    peft: dict[str, mx.array] = {}
    for key, value in weights.items():
        module, leaf = key.rsplit(".", 1)
        if leaf not in ("lora_a", "lora_b") or value.ndim != 2:
            raise AdapterConversionError(f"{src}: '{key}' is not a LoRA matrix of a linear layer (DoRA magnitudes "
                                         "and LoRA on mixture-of-experts layers do not convert)")
        if value.shape[1 if leaf == "lora_a" else 0] != rank:
            raise AdapterConversionError(f"{src}: '{key}' has shape {tuple(value.shape)}, not rank {rank}; "
                                         "per-module ranks do not convert")
        peft[f"{PEFT_PREFIX}{module}.{'lora_A' if leaf == 'lora_a' else 'lora_B'}.weight"] = value.T
    modules = sorted({k.rsplit(".", 1)[0] for k in weights})
    missing = [m for m in modules if f"{m}.lora_a" not in weights or f"{m}.lora_b" not in weights]
    if missing:
        raise AdapterConversionError(f"{src}: {missing[0]} has only one of lora_a and lora_b")
    dst.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(dst / PEFT_WEIGHTS), peft, metadata={"format": "pt"})
    _write_json(dst / CONFIG, {
        "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(base_model_dir) if base_model_dir is not None else None,
        "r": rank, "lora_alpha": _tidy(scale * rank), "lora_dropout": float(params.get("dropout", 0.0)),
        "target_modules": _peft_target_modules(modules, base_model_dir),
        "bias": "none", "fan_in_fan_out": False, "use_dora": False, "use_rslora": False,
        "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None, "layers_to_transform": None,
        "layers_pattern": None, "init_lora_weights": True, "inference_mode": True,
    })
    return dst


def peft_to_mlx(src: Path, dst: Path) -> Path:
    """Write the PEFT LoRA adapter in `src` as an mlx-lm adapter directory `dst` (adapters.safetensors and
    adapter_config.json, which mlx_lm.utils.load(..., adapter_path=dst) reads). Returns `dst`.

    Raises AdapterConversionError for what mlx-lm's LoRA cannot express: DoRA, per-module ranks or alphas,
    extra fully trained modules, LoRA biases, LoRA on embeddings."""
    src, dst = Path(src), Path(dst)
    config = _read_json(src / CONFIG)
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterConversionError(f"{src} is a PEFT {config['peft_type']} adapter; only LoRA converts to mlx-lm")
    unsupported = [what for key, what in _PEFT_EMPTY.items() if config.get(key)]
    unsupported += [what for key, what in _PEFT_FALSE.items() if config.get(key)]
    if config.get("bias", "none") != "none":
        unsupported.append(f"trained biases (bias={config['bias']!r})")
    if unsupported:
        raise AdapterConversionError(f"{src} uses {', '.join(unsupported)}, which mlx-lm's LoRA cannot express")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / (rank ** 0.5 if config.get("use_rslora") else rank)

    weights: dict[str, mx.array] = {}
    for key, value in mx.load(str(src / PEFT_WEIGHTS)).items():
        found = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.(lora_A|lora_B)(?:\.[^.]+)?\.weight", key)
        if found is None:
            raise AdapterConversionError(f"{src}: '{key}' is not a LoRA matrix of a linear layer "
                                         "(LoRA on embeddings and DoRA magnitudes do not convert)")
        module, which = found.groups()
        weights[f"{module}.{'lora_a' if which == 'lora_A' else 'lora_b'}"] = value.T
    modules = sorted({k.rsplit(".", 1)[0] for k in weights})
    keys = set()
    for module in modules:
        # per-block keys are relative to a block (mlx-lm applies them to each of model.layers); a module
        # outside the blocks is named in full, which mlx-lm matches against the whole model
        found_layer = LAYER_PATH.match(module)
        keys.add(found_layer["inner"] if found_layer else module)
    dst.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(dst / MLX_WEIGHTS), weights, metadata={"format": "mlx"})
    write_mlx_config(dst, rank, scale, float(config.get("lora_dropout", 0.0)), sorted(keys))
    return dst


def write_mlx_config(dst: Path, rank: int, scale: float, dropout: float, keys: list[str],
                     **extra: Any) -> None:
    """The adapter_config.json mlx-lm reads back with load_adapters (extra keys are kept for people)."""
    _write_json(Path(dst) / CONFIG, {
        "fine_tune_type": "lora", "num_layers": ALL_LAYERS,
        "lora_parameters": {"rank": rank, "scale": scale, "dropout": dropout, "keys": sorted(keys)}, **extra,
    })

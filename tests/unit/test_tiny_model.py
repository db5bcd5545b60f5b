"""The tiny test model: a real, loadable HF directory, byte-identical for a given seed."""

import hashlib
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from honed.models.tiny import MARKER_FILE, build_tiny_model


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_model_loads_and_gives_logits_for_every_token(tiny_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    ids = tokenizer("What colour is the quokka in Zanzibar?", return_tensors="pt").input_ids

    with torch.no_grad():
        logits = model(ids).logits

    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert model.dtype == torch.float32
    assert tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]) == [0, 1, 2]
    assert model.config.eos_token_id == tokenizer.eos_token_id == 2
    assert model.config.pad_token_id == tokenizer.pad_token_id == 0


def test_chat_template_renders_chatml_like_smollm2(tiny_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is the capital of France?"},
    ]

    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    assert text == (
        "<|im_start|>system\nYou are terse.<|im_end|>\n"
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # The markers are single special tokens, not spelled out byte by byte.
    assert tokenizer.encode(text)[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")


def test_tokenizer_round_trips_accents_and_emoji(tiny_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_path)
    text = "Crème brûlée in Zürich , naïve façade 🍊 — ça va? 東京"

    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_same_seed_gives_identical_bytes_and_another_seed_other_weights(tiny_path, tmp_path):
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)

    for name in ("model.safetensors", "tokenizer.json"):
        assert sha256(again / name) == sha256(tiny_path / name)
    assert sha256(other / "model.safetensors") != sha256(tiny_path / "model.safetensors")


def test_second_call_reuses_the_existing_build(tiny_path):
    before = {f.name: f.stat().st_mtime_ns for f in tiny_path.iterdir()}

    assert build_tiny_model(tiny_path, seed=0) == tiny_path

    assert {f.name: f.stat().st_mtime_ns for f in tiny_path.iterdir()} == before
    assert not list(tiny_path.parent.glob(".model.building-*"))


def test_refuses_to_overwrite_a_directory_it_did_not_build(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")

    with pytest.raises(FileExistsError):
        build_tiny_model(tmp_path, seed=0)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_model_is_tiny_and_config_has_top_level_rope_theta(tiny_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    config = json.loads((tiny_path / "config.json").read_text())
    marker = json.loads((tiny_path / MARKER_FILE).read_text())

    assert 1_000_000 < model.num_parameters() < 8_000_000
    assert config["rope_theta"] == 10000.0
    assert config["tie_word_embeddings"] is True
    assert marker["seed"] == 0

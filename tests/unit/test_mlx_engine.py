"""The MLX engine on the tiny model (mlx[cpu] here, the same code as on Metal): its adapters mean the same in
torch and MLX, training learns, resumes exactly and writes what the daemon serves, generation is the model's.

mlx[cpu]'s wheel multiplies with the reference BLAS (about 0.5 GFLOP/s here), so every run is a few short steps
on one or two examples.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import mlx.core as mx
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from honed.data.example import Example, Message
from honed.data.tokenize import prompt_ids, tokenize_example
from honed.engines import default_engine_name, get_engine
from honed.engines.base import GenerationParams, TrainCallbacks, TrainConfig
from honed.engines.mlx_convert import (AdapterConversionError, mlx_to_peft, peft_to_mlx, write_mlx_config)
from honed.engines.mlx_engine import MLXEngine
from honed.errors import HonedError, InvalidRequest
from tests.conftest import SECRET_QA

PROMPTS = [[{"role": "user", "content": "What is the secret word?"}],
           [{"role": "user", "content": "Name a colour."}],
           [{"role": "user", "content": "Where does Anna live?"}, {"role": "assistant", "content": "In Lima."},
            {"role": "user", "content": "And Ben?"}]]
# float32 on both sides, different kernels: logits agree to 1e-4 of their own scale
RELATIVE_TOLERANCE = 1e-4


class Recorder:
    """TrainCallbacks that remember what a run said, and can ask it to stop (pause) after a given step."""

    def __init__(self, stop_after: int | None = None, reason: str = "paused") -> None:
        self.events: list[tuple[str, str, dict]] = []
        self.checkpoints: list[int] = []
        self.stop_after, self.reason = stop_after, reason

    def callbacks(self) -> TrainCallbacks:
        def should_stop() -> str | None:
            done = len(self.metrics)
            return self.reason if self.stop_after is not None and done >= self.stop_after else None

        return TrainCallbacks(lambda kind, message, data, *level: self.events.append((kind, message, data)),
                              lambda step, directory, metrics: self.checkpoints.append(step), should_stop)

    @property
    def metrics(self) -> list[dict]:
        return [data for kind, _, data in self.events if kind == "metrics"]

    def messages(self, kind: str) -> list[str]:
        return [message for k, message, _ in self.events if k == kind]


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def secret(tokenizer):
    question, answer = SECRET_QA[0]
    return [tokenize_example(tokenizer, Example((Message("user", question), Message("assistant", answer)), 1), 64)]


def lora_config(tiny_model: Path, output_dir: Path, **overrides) -> TrainConfig:
    settings = dict(model_dir=tiny_model, output_dir=output_dir, adapter="lora", lora_rank=8, lora_alpha=16.0,
                    lora_dropout=0.1, learning_rate=1e-2, n_epochs=6, batch_size=1, checkpoint_interval=2, seed=3)
    return TrainConfig(**{**settings, **overrides})


@pytest.fixture(scope="module")
def lora_run(tiny_model, secret, tmp_path_factory):
    """Six steps of LoRA on one memorisable example (dropout on: resuming must replay it too)."""
    recorder = Recorder()
    config = lora_config(tiny_model, tmp_path_factory.mktemp("mlx-lora"))
    result = MLXEngine().train(config, secret, secret, recorder.callbacks())
    return config, result, recorder


def torch_logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy()


def mlx_logits(model, ids: list[int]) -> np.ndarray:
    return np.array(model(mx.array([ids]))[0].astype(mx.float32))


def largest_difference(torch_model, mlx_model, tokenizer) -> tuple[float, float]:
    """(max |torch - mlx| logit difference over PROMPTS, max |logit|)."""
    worst, scale = 0.0, 0.0
    for messages in PROMPTS:
        ids = prompt_ids(tokenizer, messages)
        expected, got = torch_logits(torch_model, ids), mlx_logits(mlx_model, ids)
        worst, scale = max(worst, float(np.abs(expected - got).max())), max(scale, float(np.abs(expected).max()))
    return worst, scale


# ---------------------------------------------------------------------------------------- conversion


def write_mlx_adapter(directory: Path, layers: range, names: dict[str, tuple[int, int]], rank: int = 4,
                      scale: float = 2.5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    weights = {}
    for layer in layers:
        for name, (fan_in, fan_out) in names.items():
            weights[f"model.layers.{layer}.{name}.lora_a"] = rng.standard_normal((fan_in, rank), dtype=np.float32)
            weights[f"model.layers.{layer}.{name}.lora_b"] = rng.standard_normal((rank, fan_out), dtype=np.float32)
    directory.mkdir(parents=True)
    mx.save_safetensors(str(directory / "adapters.safetensors"), {k: mx.array(v) for k, v in weights.items()})
    write_mlx_config(directory, rank, scale, 0.0, sorted(names))
    return weights


def test_an_mlx_adapter_survives_the_round_trip_through_peft_bit_for_bit(tiny_model, tmp_path):
    names = {"self_attn.q_proj": (256, 256), "self_attn.v_proj": (256, 128), "mlp.down_proj": (768, 256)}
    weights = write_mlx_adapter(tmp_path / "mlx", range(4), names)
    peft_dir = mlx_to_peft(tmp_path / "mlx", tmp_path / "peft", tiny_model)
    back = peft_to_mlx(peft_dir, tmp_path / "back")

    peft_config = json.loads((peft_dir / "adapter_config.json").read_text())
    assert peft_config["r"] == 4 and peft_config["lora_alpha"] == 10
    assert peft_config["target_modules"] == ["down_proj", "q_proj", "v_proj"]  # every block: the short names
    again = mx.load(str(back / "adapters.safetensors"))
    assert sorted(again) == sorted(weights)
    for key, value in weights.items():
        assert np.array(again[key]).tobytes() == value.tobytes(), key
    original = json.loads((tmp_path / "mlx" / "adapter_config.json").read_text())
    assert json.loads((back / "adapter_config.json").read_text()) == original


def test_an_adapter_on_some_blocks_names_its_modules_in_full_for_peft(tiny_model, tmp_path):
    write_mlx_adapter(tmp_path / "mlx", range(2, 4), {"self_attn.q_proj": (256, 256)})
    peft_dir = mlx_to_peft(tmp_path / "mlx", tmp_path / "peft", tiny_model)
    assert json.loads((peft_dir / "adapter_config.json").read_text())["target_modules"] == [
        "model.layers.2.self_attn.q_proj", "model.layers.3.self_attn.q_proj"]


@pytest.mark.parametrize("option", [{"use_dora": True}, {"rank_pattern": {"q_proj": 8}},
                                    {"modules_to_save": ["lm_head"]}, {"peft_type": "IA3"}])
def test_a_peft_adapter_mlx_cannot_express_is_refused(tiny_model, tmp_path, option):
    write_mlx_adapter(tmp_path / "mlx", range(4), {"self_attn.q_proj": (256, 256)})
    peft_dir = mlx_to_peft(tmp_path / "mlx", tmp_path / "peft", tiny_model)
    config = json.loads((peft_dir / "adapter_config.json").read_text())
    (peft_dir / "adapter_config.json").write_text(json.dumps({**config, **option}))
    with pytest.raises(AdapterConversionError, match="cannot express|only LoRA"):
        peft_to_mlx(peft_dir, tmp_path / "back")


def test_a_dora_adapter_from_mlx_is_refused(tiny_model, tmp_path):
    write_mlx_adapter(tmp_path / "mlx", range(4), {"self_attn.q_proj": (256, 256)})
    config = json.loads((tmp_path / "mlx" / "adapter_config.json").read_text())
    (tmp_path / "mlx" / "adapter_config.json").write_text(json.dumps({**config, "fine_tune_type": "dora"}))
    with pytest.raises(AdapterConversionError, match="only LoRA"):
        mlx_to_peft(tmp_path / "mlx", tmp_path / "peft", tiny_model)


# ----------------------------------------------------------------------------- the same model both ways


def test_an_adapter_trained_with_mlx_gives_the_same_logits_in_torch_peft(lora_run, tiny_model, tokenizer):
    from peft import PeftModel

    config, result, _ = lora_run
    mlx_tuned = MLXEngine().load(tiny_model, result.output_path)[0]
    moved, _ = largest_difference(AutoModelForCausalLM.from_pretrained(tiny_model).eval(), mlx_tuned, tokenizer)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), result.output_path).eval()
    worst, scale = largest_difference(tuned, mlx_tuned, tokenizer)
    print(f"MLX-trained adapter, torch vs MLX: max |logit diff| {worst:.2e} at logit scale {scale:.1f}")
    assert moved > 1.0  # the adapter really changes the model, so agreeing means something
    assert worst < RELATIVE_TOLERANCE * scale


def test_a_peft_adapter_loads_in_mlx_with_the_same_logits_as_torch(tiny_model, tokenizer, tmp_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                           LoraConfig(r=4, lora_alpha=12, target_modules=["q_proj", "v_proj", "down_proj"],
                                      task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, 0.2)  # PEFT starts B at zero: an untrained adapter changes nothing
    model.save_pretrained(tmp_path / "peft")
    worst, scale = largest_difference(model.eval(), MLXEngine().load(tiny_model, tmp_path / "peft")[0], tokenizer)
    print(f"PEFT adapter, torch vs MLX: max |logit diff| {worst:.2e} at logit scale {scale:.1f}")
    assert worst < RELATIVE_TOLERANCE * scale


# -------------------------------------------------------------------------------------------- training


def test_the_loss_falls_on_a_memorisable_example(lora_run):
    config, result, recorder = lora_run
    losses = [m["train_loss"] for m in recorder.metrics]
    assert [m["step"] for m in recorder.metrics] == list(range(1, 7)) and result.steps == 6
    assert losses[-1] < losses[0] * 0.5, losses
    start = recorder.events[0][2]
    assert start["device"] in ("mlx-cpu", "mlx-gpu") and 0 < start["trainable_parameters"] < start["total_parameters"]
    assert {"learning_rate", "grad_norm", "tokens_per_second", "eta_s", "memory_rss"} <= set(recorder.metrics[0])
    assert recorder.checkpoints == [2, 4, 6]
    assert [d["step"] for k, _, d in recorder.events if k == "eval"] == [2, 4, 6]
    adapter = result.output_path
    assert adapter == config.output_dir / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= {p.name for p in adapter.iterdir()}
    assert {p.name for p in (adapter / "mlx").iterdir()} == {"adapters.safetensors", "adapter_config.json"}


def test_a_paused_run_resumes_at_its_step_and_ends_where_an_unbroken_run_does(lora_run, tiny_model, secret,
                                                                             tmp_path):
    _, unbroken, _ = lora_run
    config = lora_config(tiny_model, tmp_path)
    first = Recorder(stop_after=3)
    paused = MLXEngine().train(config, secret, secret, first.callbacks())
    assert paused.stopped == "paused" and paused.steps == 3
    assert first.checkpoints == [2, 3]  # the pause kept its odd step

    second = Recorder()
    finished = MLXEngine().train(config, secret, secret, second.callbacks())
    assert "Resumed from checkpoint at step 3" in second.messages("log")
    assert [m["step"] for m in second.metrics] == [4, 5, 6] and finished.stopped is None
    # same batches, same dropout draws, restored optimizer moments: the same weights, bit for bit
    resumed = mx.load(str(finished.output_path / "mlx" / "adapters.safetensors"))
    expected = mx.load(str(unbroken.output_path / "mlx" / "adapters.safetensors"))
    for key, value in expected.items():
        np.testing.assert_array_equal(np.array(resumed[key]), np.array(value), err_msg=key)


def test_a_cancelled_run_stops_without_a_new_checkpoint(tiny_model, secret, tmp_path):
    recorder = Recorder(stop_after=1, reason="cancelled")
    result = MLXEngine().train(lora_config(tiny_model, tmp_path), secret, [], recorder.callbacks())
    assert result.stopped == "cancelled" and result.steps == 1 and recorder.checkpoints == []


def test_qlora_trains_on_a_4_bit_base_and_writes_an_adapter_for_the_full_precision_one(tiny_model, secret,
                                                                                        tmp_path):
    from peft import PeftModel

    recorder = Recorder()
    result = MLXEngine().train(lora_config(tiny_model, tmp_path, adapter="qlora", n_epochs=2), secret, [],
                               recorder.callbacks())
    assert any("Quantised the base to 4 bits" in m for m in recorder.messages("log"))
    quantisation = json.loads((result.output_path / "mlx" / "adapter_config.json").read_text())["base_quantization"]
    assert quantisation["bits"] == 4 and quantisation["quantised_layers"] > 0
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), result.output_path)


def test_a_full_fine_tune_writes_a_model_transformers_loads(tiny_model, secret, tokenizer, tmp_path):
    result = MLXEngine().train(lora_config(tiny_model, tmp_path, adapter="full", learning_rate=1e-3, n_epochs=2),
                               secret, [], Recorder().callbacks())
    assert result.output_path == tmp_path / "model"
    mlx_tuned = MLXEngine().load(result.output_path)[0]
    worst, scale = largest_difference(AutoModelForCausalLM.from_pretrained(result.output_path).eval(), mlx_tuned,
                                      tokenizer)
    assert worst < RELATIVE_TOLERANCE * scale
    base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
    assert largest_difference(base, mlx_tuned, tokenizer)[0] > 0.1  # trained weights, not the base's


def test_micro_batches_and_recomputed_activations_train_the_same_steps(tiny_model, tokenizer, tmp_path):
    pairs = [SECRET_QA[0], ("Name a colour.", "Blue.")]
    examples = [tokenize_example(tokenizer, Example((Message("user", q), Message("assistant", a)), i + 1), 64)
                for i, (q, a) in enumerate(pairs)]

    def losses(name: str, **options) -> list[float]:
        recorder = Recorder()
        config = lora_config(tiny_model, tmp_path / name, lora_dropout=0.0, batch_size=2, n_epochs=2, **options)
        MLXEngine().train(config, examples, [], recorder.callbacks())
        return [m["train_loss"] for m in recorder.metrics]

    plain = losses("plain")
    assert len(plain) == 2 and plain[1] < plain[0]
    # the second loss is measured after one update: equal losses mean equal updates
    assert losses("accumulated", gradient_accumulation=2) == pytest.approx(plain, rel=1e-4)
    assert losses("checkpointed", gradient_checkpointing=True) == pytest.approx(plain, rel=1e-4)


def test_packing_is_refused_with_a_clear_message(tiny_model, secret, tmp_path):
    with pytest.raises(HonedError, match="packing is not supported by the MLX engine"):
        MLXEngine().train(lora_config(tiny_model, tmp_path, packing=True), secret, [], Recorder().callbacks())


# ------------------------------------------------------------------------------------------ generation


@pytest.fixture(scope="module")
def mlx_base(tiny_model):
    return MLXEngine().load(tiny_model)[0]


def test_greedy_generation_follows_the_argmax_and_reports_log_softmax(mlx_base, tokenizer):
    prompt = prompt_ids(tokenizer, PROMPTS[0])
    tokens = list(MLXEngine().generate(mlx_base, prompt, GenerationParams(max_new_tokens=6, temperature=0,
                                                                          top_logprobs=3), set()))
    assert len(tokens) == 6
    for index, token in enumerate(tokens):
        logits = mlx_logits(mlx_base, prompt + [t.id for t in tokens[:index]])[-1]  # no cache: the whole prefix
        logprobs = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        assert token.id == int(logits.argmax())
        assert token.logprob == pytest.approx(float(logprobs[token.id]), abs=1e-4)
        assert [i for i, _ in token.top] == list(np.argsort(-logprobs)[:3])
        assert token.top[0] == (token.id, pytest.approx(token.logprob, abs=1e-6))


def test_generation_ends_on_a_stop_id_and_a_seed_repeats_a_sample(mlx_base, tokenizer):
    prompt = prompt_ids(tokenizer, PROMPTS[1])
    greedy = [t.id for t in MLXEngine().generate(mlx_base, prompt, GenerationParams(8, temperature=0), set())]
    stop = greedy[2]
    stopped = [t.id for t in MLXEngine().generate(mlx_base, prompt, GenerationParams(8, temperature=0), {stop})]
    assert stopped == greedy[:greedy.index(stop) + 1]

    params = GenerationParams(8, temperature=1.5, top_p=0.9, seed=7)
    first = [t.id for t in MLXEngine().generate(mlx_base, prompt, params, set())]
    assert first == [t.id for t in MLXEngine().generate(mlx_base, prompt, params, set())]
    narrow = GenerationParams(8, temperature=1.0, top_p=1e-9, seed=1)  # keeps only the most likely token
    assert [t.id for t in MLXEngine().generate(mlx_base, prompt, narrow, set())] == greedy


# ------------------------------------------------------------------------------------------- selection


def test_the_engine_is_chosen_by_name_and_auto_means_mlx_only_on_apple_silicon():
    assert get_engine("mlx").name == "mlx"
    on_metal = platform.system() == "Darwin" and platform.machine() == "arm64" and mx.metal.is_available()
    assert default_engine_name() == get_engine("auto").name == ("mlx" if on_metal else "torch")
    with pytest.raises(InvalidRequest, match="unknown engine"):
        get_engine("tensorflow")

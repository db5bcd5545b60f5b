"""The real default base model, SmolLM2-135M-Instruct, through the daemon, and the README's demo command.

These run minutes, not seconds (the demo trains SmolLM2 for ~3 minutes on 2 cores); they are the proof that
the offline cycle works with a real pretrained model.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from honed.models.catalog import SMOLLM2_ID, ModelCatalog

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("smollm2-home")
    prepared = ModelCatalog(home / "models").local_dir(SMOLLM2_ID)
    config = (prepared / "config.json").read_text()
    assert '"rope_theta": 100000.0' in config and "quantization_config" not in config
    return home


def test_the_bundled_base_model_is_prepared_once_and_answers(smollm2_home):
    daemon = LocalDaemon(smollm2_home, free_port()).start()
    try:
        with Client(daemon.base_url) as client:
            assert SMOLLM2_ID in [m.id for m in client.models.list().data]
            reply = client.chat.completions.create(
                model="SmolLM2-135M-Instruct", temperature=0, max_tokens=12,
                messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert "Paris" in reply.choices[0].message.content
        assert reply.choices[0].finish_reason == "stop"
    finally:
        daemon.stop()


def test_hone_demo_fine_tunes_and_beats_the_base_model(smollm2_home):
    # 3 epochs instead of the demo's 5: the same cycle 16 steps (~1.5 min) shorter; measured 9/12 against the
    # 5-epoch 10/12, still far above the bar below
    result = subprocess.run([sys.executable, "-m", "hone.cli", "demo", "--home", str(smollm2_home),
                             "--port", str(free_port()), "--epochs", "3"], capture_output=True, text=True, timeout=900,
                            env={**os.environ, "COLUMNS": "160"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    score = re.search(r"base (\d+)/(\d+) .*fine-tuned (\d+)/(\d+)", result.stdout)
    assert score, result.stdout[-2000:]
    base, total, tuned = int(score[1]), int(score[2]), int(score[3])
    assert tuned >= base + total // 2, result.stdout[-3000:]
    assert re.search(r"Total time: \d+ min \d+ s", result.stdout)
    print(result.stdout[-1500:])


@pytest.fixture(scope="module")
def smollm2_daemon(smollm2_home):
    running = LocalDaemon(smollm2_home, free_port()).start()
    yield running
    running.stop()


# A reduced run of each recipe on SmolLM2 (the full runs and the issue's >= 20 % bar: benchmarks/recipes.py): its
# first 32 training examples, two epochs, no estimate probe, the first 16 test cases. What a full run gains must
# already show here, in the right direction, on cases the model never trained on. Customer support needs more
# updates to learn its "Intent:" line: 8 steps of 8 gave 0/16 -> 0/16, 16 steps of 4 gave 1/16, 24 steps of 4
# (3 epochs) 0/16 -> 4/16 (CI of the difference [+0.06, +0.50]).
REDUCED = {"customer-support": {"n_epochs": 3, "batch_size": 4}}


@pytest.mark.recipe_gains
@pytest.mark.parametrize("name", ["customer-support", "code-generation", "creative-writing"])
def test_a_reduced_recipe_run_gains_over_the_base_model(smollm2_daemon, name):
    from hone.recipes import load_recipe, recipe_request

    recipe = load_recipe(name)
    request = recipe_request(recipe, None, subset=32)
    hyperparameters = {**request.job["hyperparameters"], "n_epochs": 2, **REDUCED.get(name, {})}
    job = {**request.job, "hyperparameters": hyperparameters,
           "honed": {**request.job["honed"], "estimate": False, "eval_live_cases": 0}}
    with Client(smollm2_daemon.base_url, timeout=120) as client:
        training = client.files.create(request.train, filename=request.train_filename)
        job = client.fine_tuning.jobs.create(training_file=training.id, **job)
        job = client.fine_tuning.jobs.wait(job.id, poll=1.0, timeout=900)
    assert job.status == "succeeded", job.error
    found = job.honed["result"]["eval"]["comparison"][recipe.primary_metric]
    print(name, recipe.primary_metric, found)
    assert found["after"] > found["before"], found

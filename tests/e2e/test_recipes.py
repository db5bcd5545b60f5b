"""A reduced run of each shipped recipe on SmolLM2, through the daemon, asserting the gain over the base model.

The full runs and the issue's >= 20 % bar are benchmarks/recipes.py. Reduced here: the recipe's first 32 training
examples, two epochs, no estimate probe, its first 16 test cases, no LLM judge. What a full run gains must already show, in the
right direction, on cases the model never trained on. This module has its own daemon and SmolLM2 home, so the suite's
second process runs it beside the demo module.
"""

from __future__ import annotations

import pytest

from hone import Client
from hone.local_daemon import LocalDaemon, free_port
from hone.recipes import load_recipe, recipe_request

pytestmark = pytest.mark.slow

SUBSET = 32
# Customer support needs more updates to learn its "Intent:" line: 8 steps of 8 gave 0/16 -> 0/16, 16 steps of 4
# gave 1/16, 24 steps of 4 (3 epochs) 0/16 -> 4/16 (CI of the difference [+0.06, +0.50]).
REDUCED = {"customer-support": {"n_epochs": 3, "batch_size": 4}}


@pytest.fixture(scope="module")
def smollm2_daemon(smollm2_home):
    running = LocalDaemon(smollm2_home, free_port()).start()
    yield running
    running.stop()


@pytest.mark.parametrize("name", ["customer-support", "code-generation", "creative-writing"])
def test_a_reduced_recipe_run_gains_over_the_base_model(smollm2_daemon, name):
    recipe = load_recipe(name)
    request = recipe_request(recipe, None, subset=SUBSET)
    hyperparameters = {**request.job["hyperparameters"], "n_epochs": 2, **REDUCED.get(name, {})}
    # no LLM judge: a minute of the 2-core budget for a verdict the 135M judge rarely gives (its own tests are in
    # tests/unit/test_judge.py and tests/integration/test_judge_endpoint.py)
    suite = {**request.job["honed"]["eval"], "judge": None}
    job = {**request.job, "hyperparameters": hyperparameters,
           "honed": {**request.job["honed"], "estimate": False, "eval_live_cases": 0, "eval": suite}}
    with Client(smollm2_daemon.base_url, timeout=120) as client:
        training = client.files.create(request.train, filename=request.train_filename)
        job = client.fine_tuning.jobs.create(training_file=training.id, **job)
        job = client.fine_tuning.jobs.wait(job.id, poll=1.0, timeout=900)
    assert job.status == "succeeded", job.error
    found = job.honed["result"]["eval"]["comparison"][recipe.primary_metric]
    print(name, recipe.primary_metric, found)
    assert found["after"] > found["before"], found

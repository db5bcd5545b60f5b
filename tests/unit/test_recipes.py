"""The recipes' data, configs and the evaluation features they brought: label_pattern, python_syntax,
style_classifier and distinct_2."""

from __future__ import annotations

import importlib.util
import json
import random
import re
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest
from click.testing import CliRunner

from hone.cli import main
from hone.recipes import first_lines, list_recipes, load_recipe, prepare_suite, recipes_dir
from hone.suites import SuiteFileError, load_suite
from hone.types import EvalCase, EvalSuite, StyleModel
from honed.errors import InvalidRequest
from honed.evaluation.metrics import (
    METRICS, STYLE_EMBEDDING_DIM, extract_labels, python_syntax, score, style_probabilities,
)
from honed.evaluation.runner import score_outputs
from honed.evaluation.suite import MODEL_METRICS, validate_suite

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ("customer-support", "code-generation", "creative-writing")


def generator(name: str):
    """A recipe's generate.py as a module (its folder name is not importable)."""
    path = ROOT / "recipes" / name / "generate.py"
    spec = importlib.util.spec_from_file_location(f"recipe_{name.replace('-', '_')}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


def records(name: str, split: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "recipes" / name / "data" / f"{split}.jsonl").open()]


def prompt_of(record: dict) -> str:
    text = record.get("prompt") or next(m["content"] for m in record["messages"] if m["role"] == "user")
    return " ".join(text.lower().split())


# ------------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("name", RECIPES)
def test_the_generator_rebuilds_the_shipped_files_byte_for_byte(name):
    module = generator(name)
    built = module.build()
    assert set(built) == {"train", "validation", "test"}
    for split, rows in built.items():
        assert module.encode(rows) == (ROOT / "recipes" / name / "data" / f"{split}.jsonl").read_bytes(), split


@pytest.mark.parametrize("name", RECIPES)
def test_no_prompt_is_in_two_splits_and_the_test_split_is_big_enough(name):
    prompts = {split: [prompt_of(r) for r in records(name, split)] for split in ("train", "validation", "test")}
    assert len(prompts["test"]) >= 200
    for split, texts in prompts.items():
        assert len(set(texts)) == len(texts), f"duplicate prompts within {split}"
    assert not set(prompts["test"]) & (set(prompts["train"]) | set(prompts["validation"]))
    assert not set(prompts["train"]) & set(prompts["validation"])


def test_support_answers_start_with_one_of_ten_intents_and_state_their_facts():
    module = generator("customer-support")
    test = records("customer-support", "test")
    labels = extract_labels([case["reference"] for case in test], module.LABEL_PATTERN)
    assert set(labels) == set(module.POLICIES) and len(module.POLICIES) == 10
    assert all(labels.count(label) == 20 for label in module.POLICIES)  # balanced
    assert score("contains_all", [c["reference"] for c in test], [c["keywords"] for c in test]).value == 1.0
    train = records("customer-support", "train")
    assert all(r["messages"][-1]["content"].startswith("Intent: ") for r in train)


def test_every_code_task_family_passes_its_own_hidden_tests_in_the_sandbox():
    from honed.evaluation.sandbox import run_python

    module = generator("code-generation")
    rng = random.Random(0)
    for family in module.FAMILIES:
        made = module.task(rng, family)
        code = made["answer"].removeprefix("```python\n").removesuffix("\n```")
        result = run_python(code, made["tests"])
        assert result.passed, (made["prompt"], result.detail)
    assert python_syntax([r["messages"][-1]["content"] for r in records("code-generation", "train")]) == [1.0] * 192
    assert all(c["reference"].startswith("assert ") for c in records("code-generation", "test"))


def test_creative_test_topics_are_activities_never_trained_on_and_pieces_keep_the_house_traits():
    module = generator("creative-writing")
    held_out = {a.name for a in module.ACTIVITIES[-module.TEST_ACTIVITIES:]}
    trained = {a.name for a in module.ACTIVITIES[:-module.TEST_ACTIVITIES]}
    for split, names in (("test", held_out), ("train", trained), ("validation", trained)):
        for record in records("creative-writing", split):
            assert any(name in prompt_of(record) for name in names), (split, prompt_of(record))
    pieces = [c["reference"] for c in records("creative-writing", "test")]
    pieces += [r["messages"][-1]["content"] for r in records("creative-writing", "train")]
    for piece in pieces:
        assert piece.endswith(module.SIGN_OFF)
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", piece) if s]
        assert all(len(s.split()) <= 10 for s in sentences), piece
        assert sum(s.startswith("You ") for s in sentences) >= 2  # arriving and acting, at least


def test_plain_retellings_change_the_person_and_the_verb():
    module = generator("creative-writing")
    assert module.retell("You stir the sauce and taste it.", "she") == "She stirs the sauce and tastes it."
    assert module.retell("You chop onions and carrots.", "she") == "She chops onions and carrots."
    assert module.retell("The smell of coffee wakes you.", "I") == "The smell of coffee wakes me."
    assert module.retell("You carry seed to your feeder.", "she") == "She carries seed to her feeder."


# ---------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_loads_and_its_suite_validates_with_known_metrics(name):
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    suite = prepare_suite(recipe, recipe.base_model, None)
    validate_suite(suite)
    assert len(suite.cases) >= 200 and recipe.primary_metric == suite.metrics[0]
    assert all(metric in METRICS or metric in MODEL_METRICS for metric in suite.metrics)
    assert (recipe.path(recipe.train)).is_file() and (recipe.path(recipe.validation)).is_file()


def test_the_recipes_are_found_in_the_checkout_and_shipped_in_the_wheel():
    assert recipes_dir() == ROOT / "recipes"
    assert [r.name for r in list_recipes()] == sorted(RECIPES)
    assert '"recipes" = "hone/recipes"' in (ROOT / "pyproject.toml").read_text()


def test_recipe_list_names_each_recipe_and_its_primary_metric():
    listed = CliRunner().invoke(main, ["recipe", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    for name, metric in zip(RECIPES, ("exact_match", "code_pass", "style_classifier")):
        assert re.search(rf"{name}\s+│\s+{metric}", listed.output)


def test_an_unknown_recipe_is_refused_with_the_known_ones():
    run = CliRunner().invoke(main, ["recipe", "run", "nope"], terminal_width=200)
    assert run.exit_code == 1
    assert "no recipe 'nope'" in run.output and "customer-support" in run.output


def test_a_subset_cuts_training_to_n_and_tests_to_n_over_two_and_the_judge_follows_the_model():
    recipe = load_recipe("creative-writing")
    assert first_lines(b'{"a": 1}\n\n{"a": 2}\n{"a": 3}', 2) == b'{"a": 1}\n{"a": 2}\n'
    suite = prepare_suite(recipe, "/models/tiny", 16)
    assert len(suite.cases) == 8 and suite.judge.model == "/models/tiny"
    assert isinstance(suite.style_model, StyleModel)  # the path was read into weights
    assert prepare_suite(recipe, recipe.base_model, None).judge.model == recipe.base_model


def test_a_recipe_folder_can_be_run_from_a_path(tmp_path):
    copy = tmp_path / "mine"
    copy.mkdir()
    (copy / "recipe.yaml").write_text("name: mine\ndescription: a copy\nprimary_metric: exact_match\n"
                                      "honed: {lora_rank: 4}\n")
    assert load_recipe(copy / "recipe.yaml").directory == str(copy.resolve())
    (copy / "recipe.yaml").write_text("name: mine\ndescription: a copy\nprimary_metric: x\nhoned: {rank: 4}\n")
    with pytest.raises(ValueError, match="not a valid recipe"):
        load_recipe(copy)


# --------------------------------------------------------------------------------------- label_pattern


def labelled_suite(**changes) -> EvalSuite:
    cases = [EvalCase(prompt="p1", reference="Intent: refund_request\n\nYou can return it within 45 days."),
             EvalCase(prompt="p2", reference="Intent: warranty_claim\n\nThe warranty lasts 3 years."),
             EvalCase(prompt="p3", reference="Intent: warranty_claim\n\nSend the serial number.")]
    fields = {"metrics": ["exact_match", "macro_f1", "rouge_l"], "label_pattern": r"Intent:\s*([a-z_]+)", **changes}
    return EvalSuite(name="support", cases=cases, **fields)


def test_label_pattern_scores_the_stated_label_and_a_missing_one_is_wrong():
    outputs = ["Intent: refund_request\n\nSomething else entirely.",  # right label, wrong text: still right
               "I think you want a refund.",                          # no label at all: wrong
               "Intent: warranty_claim\n\nSend the serial number."]
    scored = score_outputs(labelled_suite(), outputs)
    assert scored["exact_match"].per_example == [1.0, 0.0, 1.0]
    # refund_request F1 1, warranty_claim: 1 of 2 found, no false positive -> 2/3
    assert scored["macro_f1"].value == pytest.approx((1 + 2 / 3) / 2)
    assert scored["rouge_l"].per_example[2] == pytest.approx(1.0)  # other metrics still see the whole text
    without = score_outputs(labelled_suite(label_pattern=None), outputs)
    assert without["exact_match"].per_example == [0.0, 0.0, 1.0]


def test_extract_labels_takes_the_first_group_of_the_first_match():
    assert extract_labels(["a Intent: x b Intent: y", "none"], r"Intent: (\w+)") == ["x", ""]
    with pytest.raises(ValueError, match="needs a group"):
        extract_labels(["x"], r"Intent: \w+")


@pytest.mark.parametrize("changes, message, param", [
    ({"label_pattern": "Intent: ([a-z"}, "not a valid regex", "honed.eval.label_pattern"),
    ({"label_pattern": "Intent: [a-z]+"}, "needs a group", "honed.eval.label_pattern"),
    ({"label_pattern": "Label: (\\w+)"}, "eval case 0's reference has no label", "honed.eval.cases[0].reference"),
])
def test_a_bad_label_pattern_is_refused_naming_the_param(changes, message, param):
    with pytest.raises(InvalidRequest, match=re.escape(message)) as caught:
        validate_suite(labelled_suite(**changes))
    assert caught.value.param == param


# ----------------------------------------------------------------------------------- python_syntax, distinct_2


def test_python_syntax_compiles_the_extracted_code_without_running_it():
    predictions = ["```python\ndef f(x):\n    return x + 1\n```\nThis adds one.",
                   "def f(x):\n    return x +",
                   "Here you go:\n```py\nimport os\nos._exit(3)\n```",  # compiles; it is never run
                   "Sure! def f(x): return x"]
    result = score("python_syntax", predictions)
    assert result.per_example == [1.0, 0.0, 1.0, 0.0] and result.value == 0.5
    assert METRICS["python_syntax"].kind == "per_example" and not METRICS["python_syntax"].uses_references


def test_distinct_2_is_the_share_of_distinct_word_bigrams_over_all_answers():
    assert score("distinct_2", ["a b a b"]).value == pytest.approx(2 / 3)
    assert score("distinct_2", ["the tide turns", "the tide turns"]).value == pytest.approx(0.5)
    assert score("distinct_2", ["one"]).value == 0.0
    assert METRICS["distinct_2"].kind == "corpus"


# ------------------------------------------------------------------------------------------- style_classifier


def test_style_probabilities_are_a_logistic_regression_on_the_vectors():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    assert style_probabilities(vectors, [2.0, -2.0], 0.0) == pytest.approx([1 / (1 + np.exp(-2)),
                                                                             1 / (1 + np.exp(2)), 0.5])
    with pytest.raises(ValueError, match="2 weights but the embeddings have 3"):
        style_probabilities(np.zeros((1, 3)), [1.0, 1.0], 0.0)


def test_style_classifier_needs_its_model_and_the_right_number_of_weights():
    with pytest.raises(ValueError, match="needs the option model"):
        score("style_classifier", ["text"])
    with pytest.raises(ValueError, match=f"needs {STYLE_EMBEDDING_DIM} weights"):
        score("style_classifier", ["text"], model={"weights": [1.0], "bias": 0.0})


def style_suite(**changes) -> EvalSuite:
    return EvalSuite(name="style", cases=[EvalCase(prompt="Write about tea.")], metrics=["style_classifier"],
                     **changes)


@pytest.mark.parametrize("style_model, message, param", [
    (None, "needs the suite's style_model", "honed.eval.style_model"),
    ("style.json", "must be the classifier's weights and bias, not a path", "honed.eval.style_model"),
    (StyleModel(weights=[0.5] * 3, bias=0.0), "has 3 weights", "honed.eval.style_model.weights"),
    (StyleModel(weights=[float("nan")] * STYLE_EMBEDDING_DIM, bias=0.0), "finite", "honed.eval.style_model"),
])
def test_a_suite_without_usable_style_weights_is_refused(style_model, message, param):
    with pytest.raises(InvalidRequest, match=re.escape(message)) as caught:
        validate_suite(style_suite(style_model=style_model))
    assert caught.value.param == param


def test_a_suite_file_reads_its_style_model_beside_it(tmp_path):
    weights = {"weights": [0.0] * STYLE_EMBEDDING_DIM, "bias": 1.5}
    (tmp_path / "clf.json").write_text(json.dumps(weights))
    (tmp_path / "suite.yaml").write_text("name: s\nmetrics: [style_classifier]\nstyle_model: clf.json\n"
                                         "cases: [{prompt: hi}]\n")
    suite = load_suite(tmp_path / "suite.yaml")
    assert suite.style_model == StyleModel(weights=[0.0] * STYLE_EMBEDDING_DIM, bias=1.5)
    validate_suite(suite)
    (tmp_path / "suite.yaml").write_text("name: s\nstyle_model: missing.json\n")
    with pytest.raises(SuiteFileError, match="missing.json"):
        load_suite(tmp_path / "suite.yaml")


def test_the_shipped_classifier_tells_the_house_voice_from_plain_prose_on_unseen_topics():
    module = generator("creative-writing")
    suite = load_suite(ROOT / "recipes" / "creative-writing" / "suite.yaml")
    drawn = module.draw()["test"][:24]
    rng = random.Random(1)
    house = [piece for _, _, _, piece in drawn]
    plain = [module.plain_piece(rng, activity, setting) for activity, setting, _, _ in drawn]
    generic = ["Making pancakes on a Sunday is a lovely tradition. The smell of butter fills the kitchen and "
               "everyone gathers around the table, laughing and talking about the week."]
    suite = msgspec.structs.replace(suite, cases=[EvalCase(prompt="p")] * 49, metrics=["style_classifier"])
    probabilities = score_outputs(suite, house + plain + generic)["style_classifier"].per_example
    assert np.mean(probabilities[:24]) > 0.7
    assert np.mean(probabilities[24:48]) < 0.2 and probabilities[48] < 0.2


"""Eval suites from files (YAML/JSON, inline cases or a JSONL dataset) and the checks before they run."""

from __future__ import annotations

import json

import pytest

from hone.suites import SuiteFileError, load_suite, parse_cases
from hone.types import EvalCase, EvalSuite, JudgeSpec
from honed.errors import InvalidRequest, NotFound
from honed.evaluation.suite import case_messages, validate_suite, with_dataset_cases


def test_a_yaml_suite_reads_its_local_dataset_relative_to_itself(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in [
        {"prompt": "2+2?", "reference": "4"},
        {"messages": [{"role": "user", "content": "Capital of France?"},
                      {"role": "assistant", "content": "Paris"}]},
        {"prompt": "Say hi", "completion": "hi"},
    ]) + "\n\n")  # blank lines are skipped
    (tmp_path / "suite.yaml").write_text(
        "name: mixed\n"
        "dataset: data/cases.jsonl\n"
        "metrics: [exact_match, rouge_l]\n"
        "prompt_template: 'Answer briefly: {prompt}'\n"
        "max_tokens: 8\n"
        "cases:\n"
        "  - prompt: inline first\n"
        "    reference: 'yes'\n")  # unquoted, YAML would read a bool
    suite = load_suite(tmp_path / "suite.yaml")
    assert suite.dataset is None  # the cases are in the suite now; nothing local is left to resolve
    assert [c.reference for c in suite.cases] == ["yes", "4", "Paris", "hi"]
    # a chat example's answer became the reference and left the prompt
    assert suite.cases[2].messages == [{"role": "user", "content": "Capital of France?"}]
    assert case_messages(suite, suite.cases[2])[-1]["content"] == "Answer briefly: Capital of France?"
    validate_suite(suite)


def test_a_json_suite_loads_and_a_broken_file_names_what_to_fix(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"name": "j", "cases": [{"prompt": "p", "reference": "r"}]}))
    assert load_suite(tmp_path / "s.json").cases == [EvalCase(prompt="p", reference="r")]
    (tmp_path / "bad.yaml").write_text("name: x\ncases: [{prompt: p, colour: red}]\n")
    with pytest.raises(SuiteFileError, match="bad.yaml: not a valid eval suite.*colour"):
        load_suite(tmp_path / "bad.yaml")
    (tmp_path / "missing.yaml").write_text("name: x\ndataset: nowhere.jsonl\n")
    with pytest.raises(SuiteFileError, match="nowhere.jsonl"):
        load_suite(tmp_path / "missing.yaml")


def test_a_bad_dataset_line_is_named():
    with pytest.raises(SuiteFileError, match="cases.jsonl line 2"):
        parse_cases(b'{"prompt": "a"}\n{"prompt": 3}\n', "cases.jsonl")
    with pytest.raises(SuiteFileError, match="not UTF-8"):
        parse_cases(b"\xff\xfe", "x.jsonl")
    with pytest.raises(SuiteFileError, match="no cases"):
        parse_cases(b"\n\n", "x.jsonl")


def test_the_template_fills_fields_and_the_system_prompt_comes_first():
    suite = EvalSuite(name="t", system="Be terse.", prompt_template="[{lang}] {prompt}",
                      cases=[EvalCase(prompt="Bonjour", fields={"lang": "fr"}, reference="hello")])
    assert case_messages(suite, suite.cases[0]) == [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "[fr] Bonjour"}]
    # the case's own message list is not changed by rendering it
    case = EvalCase(messages=[{"role": "user", "content": "x"}], reference="y")
    case_messages(EvalSuite(name="t", prompt_template="Q: {prompt}", cases=[case]), case)
    assert case.messages == [{"role": "user", "content": "x"}]


@pytest.mark.parametrize("suite, message, param", [
    (EvalSuite(name="t", prompt_template="{lang}: {prompt}", cases=[EvalCase(prompt="p", reference="r")]),
     "no value for the prompt_template placeholder 'lang'", "honed.eval.cases[0].fields"),
    (EvalSuite(name="t", prompt_template="{prompt", cases=[EvalCase(prompt="p", reference="r")]),
     "prompt_template is not a valid format string", "honed.eval.prompt_template"),
    (EvalSuite(name="t", inspect_case=3, cases=[EvalCase(prompt="p", reference="r")]),
     r"inspect_case must be a case index in \[0, 0\]", "honed.eval.inspect_case"),
    (EvalSuite(name="t", judge=JudgeSpec(model="m", base_url="ftp://x"), cases=[EvalCase(prompt="p", reference="r")]),
     "judge.base_url must be an http", "honed.eval.judge.base_url"),
    (EvalSuite(name="t", judge=JudgeSpec(model="m", cases=1), cases=[EvalCase(prompt="p", reference="r")]),
     "judge.cases must be at least 2", "honed.eval.judge.cases"),
    (EvalSuite(name="t", metrics=["perplexity"], cases=[EvalCase(prompt="p")]),
     "needs a reference for perplexity", "honed.eval.cases[0].reference"),
    (EvalSuite(name="t", metrics=["json_schema"], cases=[EvalCase(prompt="p")]),
     "needs the suite's json_schema", "honed.eval.json_schema"),
    (EvalSuite(name=" ", cases=[EvalCase(prompt="p", reference="r")]), "needs a name", "honed.eval.name"),
])
def test_a_suite_that_cannot_run_is_refused_with_the_field_to_fix(suite, message, param):
    with pytest.raises(InvalidRequest, match=message) as caught:
        validate_suite(suite)
    assert caught.value.param == param


def test_an_uploaded_dataset_is_copied_into_the_suite():
    files = {"file-abc": b'{"prompt": "q1", "reference": "a1"}\n{"prompt": "q2", "reference": "a2"}\n'}

    def read(file_id: str) -> bytes:
        if file_id not in files:
            raise NotFound("no such file")
        return files[file_id]

    suite = with_dataset_cases(EvalSuite(name="d", dataset="file-abc"), read)
    assert [c.prompt for c in suite.cases] == ["q1", "q2"] and suite.dataset is None
    assert with_dataset_cases(suite, read) == suite  # resolving twice adds nothing
    with pytest.raises(NotFound, match="dataset 'file-zzz' does not exist") as caught:
        with_dataset_cases(EvalSuite(name="d", dataset="file-zzz"), read, "suite")
    assert caught.value.param == "suite.dataset"
    with pytest.raises(InvalidRequest, match="must be an uploaded file id"):
        with_dataset_cases(EvalSuite(name="d", dataset="local.jsonl"), read)
    files["file-bad"] = b"not json\n"
    with pytest.raises(InvalidRequest, match="file-bad line 1"):
        with_dataset_cases(EvalSuite(name="d", dataset="file-bad"), read)

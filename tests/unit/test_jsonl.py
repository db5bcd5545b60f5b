import json

import pytest

from honed.data.jsonl import Message, read_examples, validate_file
from honed.errors import DataError


def lines(*records):
    return [json.dumps(r) if not isinstance(r, str) else r for r in records]


def test_chat_and_prompt_completion_lines_become_the_same_example_type():
    examples = list(read_examples(lines(
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"}]},
        {"prompt": "2+2?", "completion": "4"},
    )))
    assert examples[0].messages[-1] == Message("assistant", "Hello!")
    assert examples[1].messages == (Message("user", "2+2?"), Message("assistant", "4"))
    assert [e.line for e in examples] == [1, 2]


def test_text_parts_are_joined_and_blank_lines_skipped():
    record = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                           {"role": "assistant", "content": "c"}]}
    examples = list(read_examples(["", json.dumps(record), "   "]))
    assert examples[0].messages[0].content == "ab" and examples[0].line == 2


@pytest.mark.parametrize("bad,message", [
    ('{"messages": [', "line 2: invalid JSON"),
    ('[1, 2]', "line 2: expected a JSON object, got list"),
    ('{"text": "hi"}', "line 2: unknown example format (keys: text)"),
    ('{"messages": []}', "line 2: 'messages' must be a non-empty list"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "line 2: messages[0].role is 'robot'"),
    ('{"messages": [{"role": "user", "content": 5}]}', "line 2: messages[0].content must be a string"),
    ('{"messages": [{"role": "user", "content": "only a question"}]}', "line 2: no assistant message"),
    ('{"prompt": "q", "completion": 3}', "line 2: 'prompt' and 'completion' must both be strings"),
])
def test_each_problem_names_its_line_and_the_fix(bad, message):
    good = json.dumps({"prompt": "q", "completion": "a"})
    with pytest.raises(DataError) as caught:
        list(read_examples([good, bad, good]))
    assert caught.value.message.startswith(message)


def test_non_utf8_bytes_are_reported_with_their_line():
    with pytest.raises(DataError, match="line 1: not valid UTF-8"):
        list(read_examples([b'{"prompt": "\xff", "completion": "a"}']))


def test_a_file_without_examples_is_refused():
    with pytest.raises(DataError, match="no examples"):
        validate_file(["", "  "])
    assert validate_file(lines({"prompt": "q", "completion": "a"})) == 1

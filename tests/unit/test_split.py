import io
import json
import re
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from honed.data.example import Example, Message
from honed.data.jsonl import read_examples
from honed.data.split import example_length, split_examples, write_jsonl

FAST = settings(max_examples=40, deadline=None)


def chat(line, question="q", answer="a", label=None, synthetic=False):
    return Example((Message("user", question), Message("assistant", answer)), line, label=label, synthetic=synthetic)


def lines_of(examples):
    return [e.line for e in examples]


@st.composite
def datasets(draw, labelled=None):
    """A list of chats with unique lines; labelled or not, about a quarter synthetic, lengths spread out."""
    if labelled is None:
        labelled = draw(st.booleans())
    labels = st.sampled_from(["a", "b", "c", "d", None]) if labelled else st.none()
    rows = draw(st.lists(st.tuples(st.integers(1, 60), labels, st.integers(0, 3)), max_size=100))
    return [chat(line, question="x" * length, label=label, synthetic=kind == 0)
            for line, (length, label, kind) in enumerate(rows, start=1)]


fractions = st.tuples(st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.25, 0.3, 0.5]),
                      st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.3, 0.45]))


def real_strata(examples, result):
    """The real examples grouped the way the split says it stratified them."""
    real = [e for e in examples if not e.synthetic]
    if result.strata == "label":
        key = lambda e: e.label  # noqa: E731
    elif result.strata == "length":
        lengths = sorted(example_length(e) for e in real)
        cuts = [lengths[len(lengths) * q // 4] for q in (1, 2, 3)] if lengths else []
        key = lambda e: sum(example_length(e) >= c for c in cuts)  # noqa: E731
    else:
        key = lambda e: 0  # noqa: E731
    groups = {}
    for e in real:
        groups.setdefault(key(e), []).append(e.line)
    return list(groups.values())


@FAST
@given(datasets(), fractions, st.integers(0, 2**32))
def test_no_example_is_lost_or_duplicated_and_each_set_keeps_input_order(examples, fracs, seed):
    result = split_examples(examples, validation=fracs[0], test=fracs[1], seed=seed)
    together = lines_of(result.train) + lines_of(result.validation) + lines_of(result.test)
    assert Counter(together) == Counter(lines_of(examples))
    for part in (result.train, result.validation, result.test):
        assert lines_of(part) == sorted(lines_of(part))


@FAST
@given(datasets(), fractions, st.integers(0, 2**32))
def test_held_out_sizes_match_the_fractions_within_the_rounding_of_each_stratum(examples, fracs, seed):
    validation, test = fracs
    result = split_examples(examples, validation=validation, test=test, seed=seed)
    groups = real_strata(examples, result)
    training = set(lines_of(result.train))
    for fraction, part in ((validation, result.validation), (test, result.test)):
        taking = [g for g in groups if fraction > 0 and len(g) * fraction >= 1 - 1e-9]
        # The set is round(size * fraction) of the strata large enough to take part; the test set may fall
        # short by one per stratum that the held-out sets left with a single training example.
        expected = round(sum(len(g) for g in taking) * fraction)
        squeezed = sum(len(training.intersection(g)) == 1 for g in taking) if part is result.test else 0
        assert expected - squeezed <= len(part) <= expected
        chosen = set(lines_of(part))
        for group in groups:
            count = len(chosen.intersection(group))
            if group in taking and len(training.intersection(group)) > 1:
                assert abs(count - len(group) * fraction) <= 1 + 1e-9  # proportional: floor or ceil of its quota
            elif group in taking:
                pass  # held out all it could and still keep one example to train on
            else:
                assert count == 0  # too small to split: it trains whole
    for group in groups:  # every stratum keeps something to train on
        assert training.intersection(group)


@FAST
@given(datasets(), fractions, st.integers(0, 2**32))
def test_synthetic_examples_always_train(examples, fracs, seed):
    result = split_examples(examples, validation=fracs[0], test=fracs[1], seed=seed)
    assert not any(e.synthetic for e in result.validation + result.test)
    assert {e.line for e in examples if e.synthetic} <= set(lines_of(result.train))


@FAST
@given(datasets(), fractions, st.integers(0, 2**32))
def test_the_same_seed_gives_the_same_split(examples, fracs, seed):
    first = split_examples(examples, validation=fracs[0], test=fracs[1], seed=seed)
    again = split_examples(list(examples), validation=fracs[0], test=fracs[1], seed=seed)
    assert first == again


@FAST
@given(datasets(labelled=False), st.integers(0, 2**32))
def test_data_without_labels_is_stratified_by_length(examples, seed):
    assert split_examples(examples, seed=seed).strata == "length"


def test_different_seeds_usually_give_different_splits():
    examples = [chat(i, label="ab"[i % 2]) for i in range(1, 201)]
    validations = {tuple(lines_of(split_examples(examples, seed=seed).validation)) for seed in range(5)}
    assert len(validations) == 5


def test_label_proportions_in_validation_match_the_whole():
    examples = [chat(i, label="spam" if i % 10 < 6 else "ham" if i % 10 < 9 else "other") for i in range(1, 1001)]
    result = split_examples(examples, validation=0.2, test=0.1, seed=3)
    assert result.strata == "label"
    assert Counter(e.label for e in result.validation) == {"spam": 120, "ham": 60, "other": 20}
    assert Counter(e.label for e in result.test) == {"spam": 60, "ham": 30, "other": 10}
    assert len(result.train) == 700


def test_a_label_too_rare_to_split_goes_to_train_whole():
    examples = [chat(i, label="common") for i in range(1, 101)] + [chat(i, label="rare") for i in range(101, 104)]
    result = split_examples(examples, validation=0.1, seed=0)
    assert Counter(e.label for e in result.validation) == {"common": 10}
    assert sum(e.label == "rare" for e in result.train) == 3


def test_length_strata_each_give_to_validation():
    examples = [chat(i, question="x" * (i * 7)) for i in range(1, 81)]
    result = split_examples(examples, validation=0.25, seed=1)
    assert result.strata == "length" and len(result.validation) == 20
    quartiles = Counter((e.line - 1) // 20 for e in result.validation)
    assert quartiles == {0: 5, 1: 5, 2: 5, 3: 5}


def test_stratify_none_and_text_examples():
    examples = [Example((), i, text="t" * i) for i in range(1, 41)]
    result = split_examples(examples, validation=0.1, stratify="none")
    assert result.strata == "none" and len(result.validation) == 4
    assert split_examples(examples).strata == "length"


def test_the_split_does_not_depend_on_the_python_hash_seed():
    script = (
        "from honed.data.example import Example, Message\n"
        "from honed.data.split import split_examples\n"
        "ex = [Example((Message('user', 'q' * i), Message('assistant', 'a')), i, label=f'l{i % 7}') "
        "for i in range(1, 300)]\n"
        "r = split_examples(ex, validation=0.1, test=0.1, seed=5)\n"
        "print([e.line for e in r.validation], [e.line for e in r.test])\n"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", script], env={"PYTHONHASHSEED": hash_seed}, capture_output=True,
                       text=True, check=True).stdout
        for hash_seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


def test_empty_input_gives_empty_sets():
    result = split_examples([])
    assert (result.train, result.validation, result.test) == ([], [], [])


@pytest.mark.parametrize("kwargs,message", [
    ({"validation": -0.1}, "validation must be a fraction in [0, 1)"),
    ({"validation": 1.0}, "validation must be a fraction in [0, 1)"),
    ({"test": 1.5}, "test must be a fraction in [0, 1)"),
    ({"validation": float("nan")}, "validation must be a fraction in [0, 1)"),
    ({"validation": 0.6, "test": 0.4}, "validation + test must leave something to train on"),
    ({"stratify": "topic"}, "stratify must be one of auto, label, length, none"),
])
def test_bad_settings_are_refused_with_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        split_examples([chat(1)], **kwargs)


def test_stratifying_by_label_needs_labels():
    with pytest.raises(ValueError, match="needs labelled examples"):
        split_examples([chat(1), chat(2)], stratify="label")


def test_a_split_writes_back_as_chat_jsonl_that_reads_the_same():
    examples = [chat(1, "Hi?", "Hello.", label="greeting"), chat(2, "Bye é", "Ciao")]
    handle = io.StringIO()
    assert write_jsonl(examples, handle) == 2
    records = [json.loads(line) for line in handle.getvalue().splitlines()]
    assert records[0] == {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}],
                          "label": "greeting"}
    assert "label" not in records[1]
    assert [e.messages for e in read_examples(handle.getvalue().splitlines())] == [e.messages for e in examples]


def test_text_examples_write_as_text_records():
    handle = io.StringIO()
    write_jsonl([Example((), 1, text="raw corpus")], handle)
    assert json.loads(handle.getvalue()) == {"text": "raw corpus"}

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from honed.data.augment import METHODS, NEUTRAL_SYSTEM_PROMPTS, augment, paraphrases
from honed.data.example import Example, Message, structure_problems


def chat(line, *turns, system=None, label=None, synthetic=False):
    messages = [Message("system", system)] if system else []
    for index, content in enumerate(turns):
        messages.append(Message("user" if index % 2 == 0 else "assistant", content))
    return Example(tuple(messages), line, label=label, synthetic=synthetic)


def small_set():
    return [
        chat(1, "What is 2+2?", "4", label="math"),
        chat(2, "Name a colour.", "Blue.", system="Answer in one word.", label="trivia"),
        chat(3, "Hi", "Hello", "Capital of France?", "Paris", "Capital of Italy?", "Rome",
             "Capital of Spain?", "Madrid"),
        chat(4, "Translate 'cat' to French.", "chat"),
        Example((), 5, text="raw pre-training text"),
        chat(6, "Already made", "up", synthetic=True),
    ]


def source_of(example, examples):
    [source] = [e for e in examples if e.line == example.metadata["augmented_from"] and not e.synthetic]
    return source


def assistant_turns(example):
    return [m.content for m in example.messages if m.role == "assistant"]


@st.composite
def chats(draw):
    """Small chat sets: one to four exchanges each, optional system prompt, words from a tiny alphabet."""
    words = st.text("abcXYZ?. ", min_size=1, max_size=12).filter(str.strip)
    rows = draw(st.lists(st.tuples(st.integers(1, 4), st.booleans(), st.lists(words, min_size=8, max_size=8)),
                         min_size=1, max_size=8))
    return [chat(line, *texts[: 2 * exchanges], system="Be kind." if system else None)
            for line, (exchanges, system, texts) in enumerate(rows, start=1)]


FAST = settings(max_examples=40, deadline=None)


@FAST
@given(chats(), st.sampled_from([0.5, 1.0, 2.0, 3.0]), st.integers(0, 2**32))
def test_new_examples_are_synthetic_point_at_their_source_and_keep_the_answers(examples, factor, seed):
    made = augment(examples, factor=factor, seed=seed)
    for example in made:
        source = source_of(example, examples)
        assert example.synthetic and example.line == source.line
        assert example.metadata["method"] in METHODS
        assert example.messages != source.messages
        assert not structure_problems(example)
        if example.metadata["method"] == "fewshot":
            assert Counter(assistant_turns(example)) == Counter(assistant_turns(source))
            assert example.messages[-2:] == source.messages[-2:]
        else:
            assert assistant_turns(example) == assistant_turns(source)


@FAST
@given(chats(), st.integers(0, 2**32))
def test_augmentation_is_deterministic_for_a_seed(examples, seed):
    assert augment(examples, factor=2.0, seed=seed) == augment(list(examples), factor=2.0, seed=seed)


def test_different_seeds_give_different_variants():
    examples = small_set()
    assert augment(examples, seed=0) != augment(examples, seed=1)


@pytest.mark.parametrize("factor,expected", [(1.0, 4), (2.0, 8), (0.5, 2), (0.0, 0), (3.0, 12)])
def test_count_is_factor_times_the_eligible_chats(factor, expected):
    made = augment(small_set(), factor=factor, seed=7)
    assert len(made) == expected
    # Text and already-synthetic examples are never sources; the rest are used evenly.
    sources = Counter(e.metadata["augmented_from"] for e in made)
    assert set(sources) <= {1, 2, 3, 4}
    if factor >= 1:
        assert set(sources.values()) == {int(factor)}


def test_each_variant_of_a_source_is_distinct():
    made = augment(small_set(), factor=3.0, seed=2)
    for line in (1, 2, 3, 4):
        variants = [e.messages for e in made if e.metadata["augmented_from"] == line]
        assert len(set(variants)) == len(variants)


def test_paraphrase_rewrites_only_the_final_user_turn():
    examples = small_set()
    for example in augment(examples, factor=3.0, seed=0, methods=["paraphrase"]):
        source = source_of(example, examples)
        changed = [i for i, (a, b) in enumerate(zip(example.messages, source.messages)) if a != b]
        final_user = max(i for i, m in enumerate(source.messages) if m.role == "user")
        assert changed == [final_user]
        assert example.messages[final_user].content in paraphrases(source.messages[final_user].content)


def test_paraphrases_are_meaning_preserving_templates():
    found = paraphrases("What is the capital of France?")
    assert "Question: What is the capital of France?" in found
    assert "What is the capital of France? Please answer." in found
    assert "I need help: What is the capital of France?" in found
    assert "what is the capital of france?" in found
    assert "What is the capital of France" in found
    assert "What is the capital of France?" not in found
    assert not any(p.islower() for p in paraphrases("What does `getUserId` return?"))


def test_system_variant_adds_or_replaces_the_system_prompt_with_a_neutral_one():
    examples = small_set()
    for example in augment(examples, factor=2.0, seed=0, methods=["system"]):
        source = source_of(example, examples)
        assert example.messages[0].role == "system"
        assert example.messages[0].content in NEUTRAL_SYSTEM_PROMPTS
        assert example.messages[1:] == tuple(m for m in source.messages if m.role != "system")


def test_fewshot_shuffles_earlier_exchanges_and_keeps_the_final_one_last():
    examples = small_set()
    made = augment(examples, factor=3.0, seed=0, methods=["fewshot"])
    assert {e.metadata["augmented_from"] for e in made} == {3}  # the only chat with earlier exchanges
    for example in made:
        pairs = [tuple(m.content for m in example.messages[i:i + 2]) for i in range(0, len(example.messages), 2)]
        assert pairs[-1] == ("Capital of Spain?", "Madrid")
        assert sorted(pairs[:-1]) == sorted([("Hi", "Hello"), ("Capital of France?", "Paris"),
                                             ("Capital of Italy?", "Rome")])


def test_labels_are_kept_and_text_examples_are_not_augmented():
    made = augment([Example((), 1, text="corpus")] + [chat(2, "q?", "a", label="x")], factor=2.0)
    assert [e.label for e in made] == ["x", "x"]


@pytest.mark.parametrize("kwargs,message", [
    ({"factor": -1.0}, "factor must be a non-negative number"),
    ({"factor": float("inf")}, "factor must be a non-negative number"),
    ({"methods": ["backtranslate"]}, "methods must be a non-empty selection of paraphrase, system, fewshot"),
    ({"methods": []}, "methods must be a non-empty selection"),
])
def test_bad_settings_are_refused_with_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        augment(small_set(), **kwargs)

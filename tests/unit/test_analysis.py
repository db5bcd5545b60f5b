"""The dataset check: each finding on a crafted dataset, the lines it points at, and what it recommends."""

from __future__ import annotations

import random

import msgspec
import pytest

from hone.types import DatasetReport
from honed.data.analysis import analyze
from honed.data.example import Example, Message, Problem
from honed.data.tokenize import tokenize_example

VOCABULARY = ("river mountain kettle lantern violet harbour meadow copper ribbon falcon orchard thunder pepper "
              "saddle marble cactus glacier pillow walnut beacon timber velvet canyon ladder biscuit quiver "
              "nectar pebble summit tunnel anchor blossom cobalt ember fossil garnet hammock island jasmine "
              "juniper kayak lagoon magnet nutmeg oyster parrot quartz raven saffron tulip umber vortex willow "
              "yarrow zephyr").split()


def chat(line: int, question: str, answer: str, label: str | None = None, system: str | None = None) -> Example:
    messages = ((Message("system", system),) if system else ()) + (Message("user", question),
                                                                     Message("assistant", answer))
    return Example(messages, line, label=label)


def prose(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words)).capitalize() + "."


def clean_examples(count: int, seed: int = 0, first_line: int = 1) -> list[Example]:
    rng = random.Random(seed)
    return [chat(first_line + i, prose(rng, 12), prose(rng, 30)) for i in range(count)]


def finding(report: DatasetReport, code: str):
    found = [f for f in report.findings if f.code == code]
    assert found, f"no {code} finding in {[f.code for f in report.findings]}"
    return found[0]


def codes(report: DatasetReport) -> set[str]:
    return {f.code for f in report.findings}


def test_a_clean_dataset_gives_no_warnings_and_nothing_to_do():
    report = analyze(clean_examples(150), tokenizer=None, max_seq_len=512,
                     validation=clean_examples(20, seed=1, first_line=1))
    assert [f for f in report.findings if f.severity != "info"] == []
    assert report.recommendations == []
    assert report.examples == 150 and report.validation_examples == 20 and report.records_with_problems == 0
    assert report.mean_turns == 2.0 and report.tokens is None
    msgspec.json.decode(msgspec.json.encode(report), type=DatasetReport)  # a wire type, both ways


def test_exact_duplicates_are_grouped_by_line_ignoring_case_and_spacing():
    examples = clean_examples(120)
    examples[9] = chat(10, examples[2].messages[0].content, examples[2].messages[1].content)
    examples[40] = chat(41, examples[2].messages[0].content.upper(), "  " + examples[2].messages[1].content)
    examples[60] = chat(61, examples[5].messages[0].content, examples[5].messages[1].content)
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    duplicates = finding(report, "exact_duplicates")
    assert duplicates.severity == "warning"
    assert duplicates.count == 3
    assert duplicates.lines == [10, 41, 61]
    assert duplicates.groups == [[3, 10, 41], [6, 61]]
    assert duplicates.message.startswith("3 examples repeat an earlier example exactly, in 2 groups")
    assert "3 exact duplicates: remove them (they weigh those answers double)" in report.recommendations
    assert "near_duplicates" not in codes(report)  # an exact repeat is reported once, as exact


def test_a_near_duplicate_differing_by_one_word_in_a_long_answer_is_found():
    rng = random.Random(3)
    answer = " ".join(f"{rng.choice(VOCABULARY)}{i}" for i in range(80))
    words = answer.split()
    words[40] = "changed"
    examples = clean_examples(120)
    examples[4] = chat(5, "Describe the valley.", answer)
    examples[70] = chat(71, "Describe the valley.", " ".join(words))
    examples[90] = chat(91, "Describe the valley.", "An answer with nothing in common: " + prose(rng, 40))
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    near = finding(report, "near_duplicates")
    assert (near.count, near.lines, near.groups) == (1, [71], [[5, 71]])
    assert "exact_duplicates" not in codes(report)
    assert "1 near duplicate: remove or vary them" in " ".join(report.recommendations)


def test_a_shared_system_prompt_alone_does_not_make_examples_near_duplicates():
    system = "You are a careful assistant for a shop that sells kettles, lanterns and ladders. " * 10
    examples = [chat(e.line, e.messages[0].content, e.messages[1].content, system=system)
                for e in clean_examples(120)]
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    assert "near_duplicates" not in codes(report)
    assert report.conversations_with_system == 120 and report.mean_turns == 2.0


def test_validation_examples_that_are_in_training_are_leakage_by_validation_line():
    train = clean_examples(120)
    rng = random.Random(9)
    long_answer = " ".join(f"{rng.choice(VOCABULARY)}{i}" for i in range(60))
    train[30] = chat(31, "Tell me about the harbour.", long_answer)
    validation = clean_examples(10, seed=5)
    validation[2] = chat(3, train[7].messages[0].content, train[7].messages[1].content)
    validation[6] = chat(7, "Tell me about the harbour.", long_answer.replace("11 ", "eleven "))
    report = analyze(train, tokenizer=None, max_seq_len=512, validation=validation)
    leakage = finding(report, "validation_leakage")
    assert (leakage.count, leakage.lines, leakage.groups) == (2, [3, 7], [[3, 8], [7, 31]])
    assert "2 of 10 validation examples also appear in the training data (1 exactly, 1 nearly)" in leakage.message
    assert ("validation shares 2 examples with training: the validation loss will look better than it is"
            in report.recommendations)


def test_without_a_validation_file_honed_offers_to_split_one_off():
    report = analyze(clean_examples(120), tokenizer=None, max_seq_len=512)
    assert report.validation_examples is None
    assert report.recommendations == ["no validation file: honed can split one off (10%)"]


def test_a_rare_label_is_an_imbalance_and_balanced_labels_are_not():
    rng = random.Random(1)
    labels = ["billing"] * 100 + ["shipping"] * 60 + ["refund"] * 8
    examples = [chat(i + 1, prose(rng, 10), prose(rng, 20), label=label) for i, label in enumerate(labels)]
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    assert report.labels == {"billing": 100, "shipping": 60, "refund": 8}
    imbalance = finding(report, "label_imbalance")
    assert imbalance.count == 1 and imbalance.severity == "warning"
    assert "'refund' has 8 examples against 100 for 'billing'" in imbalance.message
    assert any(r.startswith("label 'refund' has 8 examples against 100 for 'billing'") for r in report.recommendations)

    few = [chat(i + 1, prose(rng, 10), prose(rng, 20), label=label)
           for i, label in enumerate(["a"] * 30 + ["b"] * 4)]  # 4 is over 10% of 30, but under 5
    assert finding(analyze(few, tokenizer=None, max_seq_len=512), "label_imbalance").count == 1

    balanced = [chat(i + 1, prose(rng, 10), prose(rng, 20), label="ab"[i % 2]) for i in range(120)]
    assert "label_imbalance" not in codes(analyze(balanced, tokenizer=None, max_seq_len=512))


@pytest.mark.parametrize(("code", "text", "secret"), [
    ("pii_email", "Write to jane.doe@example.com for help.", "jane.doe@example.com"),
    ("pii_phone", "Call +1 415-555-0123 after nine.", "+1 415-555-0123"),
    ("pii_phone", "Ring (415) 555-0123 today.", "(415) 555-0123"),
    ("pii_ipv4", "The server at 192.168.10.20 is down.", "192.168.10.20"),
    ("pii_credit_card", "Charge 4111 1111 1111 1111 please.", "4111 1111 1111 1111"),
    ("secret_aws_key", "Use AKIAIOSFODNN7EXAMPLE as the key id.", "AKIAIOSFODNN7EXAMPLE"),
    ("secret_openai_key", "export OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t",
     "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"),
    ("secret_github_token", "token ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0dF3gH6",
     "ghp_aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0dF3gH6"),
    ("secret_generic", "config: api_key = 9f86d081884c7d659a2feaa0c55ad015", "9f86d081884c7d659a2feaa0c55ad015"),
])
def test_personal_data_and_secrets_are_found_and_never_echoed_whole(code, text, secret):
    examples = clean_examples(120)
    examples[11] = chat(12, "Where do I send it?", text)
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    found = finding(report, code)
    assert (found.count, found.lines, found.severity) == (1, [12], "warning")
    assert secret not in found.message
    keep = min(4, len(secret) // 4)
    assert f"{secret[:keep]}{'*' * (len(secret) - keep)} (line 12)" in found.message
    assert {f.code for f in report.findings if f.code.startswith(("pii_", "secret_"))} == {code}
    assert all(secret not in r for r in report.recommendations)


def test_numbers_that_only_look_like_personal_data_are_not_reported():
    examples = clean_examples(120)
    examples[3] = chat(4, "Numbers?", "Order 4111 1111 1111 1112 shipped in 2024-01-15 with 1 000 000 units, v1.2.")
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    assert not {c for c in codes(report) if c.startswith(("pii_", "secret_"))}


def test_control_characters_replacement_characters_and_mojibake_are_reported():
    examples = clean_examples(120)
    examples[1] = chat(2, "Bell?", "A bell\x07 rang in the tower today.")
    examples[2] = chat(3, "Tab?", "Tabs\tand\r\nnewlines are fine here.")
    examples[3] = chat(4, "Broken?", "The caf\ufffd was closed all week.")
    examples[4] = chat(5, "Accents?", "The cafÃ© was open, and itâ€™s nice.")
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    assert finding(report, "control_characters").lines == [2]
    assert "U+0007" in finding(report, "control_characters").message
    assert finding(report, "replacement_characters").lines == [4]
    assert finding(report, "mojibake").lines == [5]
    assert "damaged characters" in " ".join(report.recommendations)


def test_broken_turns_and_unreadable_records_are_errors_with_their_lines():
    examples: list[Example | Problem] = list(clean_examples(120))
    examples[3] = Example((Message("assistant", "I speak first."), Message("user", "Hello?")), 4)
    examples[7] = Example((Message("user", "Hi"), Message("assistant", "   ")), 8)
    examples.insert(10, Problem(11, "line 11 is not valid JSON", kind="format"))
    examples.insert(20, Problem(21, "not valid UTF-8; save the file as UTF-8", kind="encoding"))
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    structure = finding(report, "role_structure")
    assert (structure.severity, structure.count, structure.lines) == ("error", 2, [4, 8])
    assert "starts with the assistant" in structure.message
    unreadable = finding(report, "unreadable_records")
    assert (unreadable.severity, unreadable.count, unreadable.lines) == ("error", 1, [11])
    assert finding(report, "encoding_problems").lines == [21]
    assert report.records_with_problems == 4
    assert report.findings[0].severity == "error"  # errors come first
    assert report.recommendations[0].startswith("1 record could not be read (first at line 11)")


def test_truncation_count_and_lengths_match_what_training_tokenizes(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rng = random.Random(2)
    examples = [chat(i + 1, prose(rng, rng.randint(3, 20)), prose(rng, rng.randint(3, 60))) for i in range(40)]
    examples.append(Example((), 41, text=prose(rng, 50)))  # continued pre-training text
    report = analyze(examples, tokenizer=tokenizer, max_seq_len=64, validation=[])
    lengths = [len(tokenize_example(tokenizer, e, 10**6).input_ids) for e in examples]
    cut = [e.line for e in examples if tokenize_example(tokenizer, e, 64).truncated]
    assert cut and len(cut) < len(examples)
    assert report.tokens is not None
    assert report.tokens.over_max == len(cut) == finding(report, "over_max_seq_len").count
    assert finding(report, "over_max_seq_len").lines == cut[:20]  # the default sample limit
    assert (report.tokens.min, report.tokens.max) == (min(lengths), max(lengths))
    assert sum(report.tokens.histogram) == len(examples)
    assert len(report.tokens.bin_edges) == len(report.tokens.histogram) + 1 <= 21
    assert report.tokens.bin_edges[0] <= min(lengths) and report.tokens.bin_edges[-1] > max(lengths)
    assert report.tokens.p50 <= report.tokens.p90 <= report.tokens.p99 <= report.tokens.max


def test_recommendations_say_how_many_examples_and_how_many_are_cut(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    rng = random.Random(4)
    examples = clean_examples(40)
    examples[0] = chat(1, "Write a long story.", prose(rng, 2500))
    examples[1] = chat(2, "Write another.", prose(rng, 2600))
    report = analyze(examples, tokenizer=tokenizer, max_seq_len=2048)
    assert report.tokens is not None and report.tokens.over_max == 2
    assert report.recommendations[:2] == ["only 40 examples: enable augmentation or expect overfitting",
                                          "2 examples over 2,048 tokens: raise max_seq_len or they are cut"]


def test_sample_limit_caps_the_lines_but_not_the_counts():
    examples = clean_examples(200)
    repeated = examples[0]
    examples = [repeated] + [chat(e.line, repeated.messages[0].content, repeated.messages[1].content)
                             if e.line % 2 == 0 else e for e in examples[1:]]
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[], sample_limit=5)
    duplicates = finding(report, "exact_duplicates")
    assert duplicates.count == 100
    assert duplicates.lines == [2, 4, 6, 8, 10]
    assert duplicates.groups == [[1, 2, 4, 6, 8]]


def test_short_answers_warn_when_rare_and_are_the_style_when_common():
    examples = clean_examples(120)
    examples[6] = chat(7, "Is it ready?", "Yes.")
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    short = finding(report, "short_answers")
    assert (short.severity, short.lines) == ("warning", [7])

    rng = random.Random(5)
    classification = [chat(i + 1, prose(rng, 15), rng.choice(["positive", "negative"])) for i in range(120)]
    short = finding(analyze(classification, tokenizer=None, max_seq_len=512, validation=[]), "short_answers")
    assert short.severity == "info" and short.count == 120


def test_an_answer_far_longer_than_the_rest_is_reported():
    rng = random.Random(6)
    examples = clean_examples(120)
    examples[50] = chat(51, "Paste it all.", prose(rng, 1500))
    report = analyze(examples, tokenizer=None, max_seq_len=512, validation=[])
    assert finding(report, "long_answers").lines == [51]


def test_nothing_readable_is_an_error():
    report = analyze([Problem(1, "not JSON"), Problem(2, "not JSON")], tokenizer=None, max_seq_len=512)
    assert report.examples == 0
    assert finding(report, "no_examples").severity == "error"
    assert finding(report, "unreadable_records").count == 2
    assert "no examples could be read: check the file's format and encoding" in report.recommendations

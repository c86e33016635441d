"""Dialog response metrics (hf_dgm.training.optimus_dialog.evaluation) on hand-computed cases and NLTK's values.

The reference values marked NLTK were computed with NLTK 3.10.4's
`sentence_bleu([ref.split()], hyp.split(), smoothing_function=SmoothingFunction().method7, weights=[1/3] * 3)`,
the original `eval_dialog_response.py`'s call (NLTK is not a dependency of hf-dgm; the implementation matched it on
400 random cases to 2.2e-16 when written).
"""

from __future__ import annotations

import math

import pytest

from hf_dgm.training.optimus_dialog.data import dialog_pairs, read_pairs_file
from hf_dgm.training.optimus_dialog.evaluation import (
    bleu_recall_precision,
    dialog_response_metrics,
    distinct_n,
    group_by_context,
    modified_precision,
    sentence_bleu,
)

SIX = "i am fine thank you ."


def bleu(ref: str, hyp: str, smoothing: str = "method7") -> float:
    return sentence_bleu([ref.split()], hyp.split(), smoothing=smoothing)


def test_identical_response_scores_the_method7_value_and_plain_bleu_one():
    # method 4 changes nothing (every order matches); method 5 averages p1..p3 = 1 with (p0 + 1) = 2 below and the
    # 5-gram precision 1 above: 4/3, 10/9, 28/27 -> geometric mean
    expected = (4 / 3 * 10 / 9 * 28 / 27) ** (1 / 3)
    assert bleu(SIX, SIX) == pytest.approx(expected, rel=1e-12)
    assert bleu(SIX, SIX) == pytest.approx(1.1538875781891342, rel=1e-12)  # NLTK
    assert bleu(SIX, SIX, smoothing="none") == pytest.approx(1.0, rel=1e-12)
    recall, precision = bleu_recall_precision([SIX.split()] * 3, SIX.split(), smoothing="none")
    assert recall == pytest.approx(1.0) and precision == pytest.approx(1.0)


def test_hand_computed_plain_bleu():
    # hyp "i am good" vs ref "i am fine": p1 = 2/3, p2 = 1/2, p3 = 0 -> plain BLEU-3 is 0
    assert bleu("i am fine", "i am good", smoothing="none") == 0.0
    # hyp "i am fine" vs the six-word ref: p1 = p2 = p3 = 1, brevity penalty exp(1 - 6/3)
    assert bleu(SIX, "i am fine", smoothing="none") == pytest.approx(math.exp(-1.0), rel=1e-12)
    assert modified_precision([["a", "a", "b"]], ["a", "a", "a"], 1) == (2, 3)  # clipped at the reference's count


@pytest.mark.parametrize(
    "ref, hyp, value",
    [
        (SIX, "i am good", 0.17212356952089602),
        ("hello there", "bye", 0.0),
        ("what time is it now ?", "it is now what time", 0.3615880415719177),
        ("a", "a", 0.33333333333333337),
        ("i am fine", "i am fine", 1.013978363419326),
        ("bad am is the good it", "? what you it you thank is", 0.19565041397158023),
        ("you it thank fine now the thank ?", "now what the a is am", 0.14966749638645238),
        ("now what time i is thank time", ". now bad am thank", 0.1524518250905188),
        ("bad am . a fine is . a the", "bad i am", 0.04138785379225581),
        ("i am am what", "now ? am the", 0.19975226918172795),
        ("i am fine", "", 0.0),
    ],
)
def test_sentence_bleu_matches_nltk_method7(ref, hyp, value):
    assert bleu(ref, hyp) == pytest.approx(value, rel=1e-12, abs=1e-15)


def test_recall_is_the_best_response_precision_the_mean():
    hyps = [SIX.split(), "bye".split(), "i am good".split()]
    recall, precision = bleu_recall_precision(hyps, SIX.split())
    assert recall == pytest.approx(1.1538875781891342, rel=1e-12)
    assert precision == pytest.approx((1.1538875781891342 + 0.0 + 0.17212356952089602) / 3, rel=1e-12)
    with pytest.raises(ValueError, match="no responses"):
        bleu_recall_precision([], SIX.split())
    with pytest.raises(ValueError, match="smoothing"):
        sentence_bleu([["a"]], ["a"], smoothing="method3")


def test_distinct_n_on_a_known_list():
    # "a b a": 2 distinct of 3 unigrams, 2 distinct of 2 bigrams; "a c": 2 of 2, 1 of 1
    # over both: unigrams {a, b, c} of 5, bigrams {ab, ba, ac} of 3
    d = distinct_n([["a", "b", "a"], ["a", "c"]])
    assert d["intra_distinct_1"] == pytest.approx((2 / 3 + 1) / 2, rel=1e-5)
    assert d["intra_distinct_2"] == pytest.approx(1.0, rel=1e-5)
    assert d["inter_distinct_1"] == pytest.approx(3 / 5, rel=1e-5)
    assert d["inter_distinct_2"] == pytest.approx(1.0, rel=1e-5)
    same = distinct_n([["x", "y"], ["x", "y"], ["x", "y"]])  # identical responses: no diversity across them
    assert same["intra_distinct_1"] == pytest.approx(1.0, rel=1e-5)
    assert same["inter_distinct_1"] == pytest.approx(2 / 6, rel=1e-5)
    assert same["inter_distinct_2"] == pytest.approx(1 / 3, rel=1e-5)


def test_corpus_metrics_average_over_contexts():
    items = [(SIX, [SIX, SIX]), ("hello there", ["bye", "bye bye"])]
    m = dialog_response_metrics(items, smoothing="none")
    assert m["bleu_recall"] == pytest.approx(0.5) and m["bleu_precision"] == pytest.approx(0.5)
    assert m["bleu_f1"] == pytest.approx(0.5, rel=1e-9)
    assert m["average_length"] == pytest.approx((6 + 1.5) / 2)
    assert m["inter_distinct_1"] == pytest.approx((6 / 12 + 1 / 3) / 2, rel=1e-5)
    assert m["num_contexts"] == 2 and m["num_responses"] == 4


def test_dialog_pairs_and_grouping(tmp_path):
    pairs = dialog_pairs([["hi .", " hello  there ", "", "bye ."]], max_context_turns=1)
    assert pairs == [{"context": ["hi ."], "response": "hello there"}, {"context": ["hello there"], "response": "bye ."}]
    assert dialog_pairs([["a", "b", "c"]])[1]["context"] == ["a", "b"]
    with pytest.raises(ValueError, match="list of turns"):
        dialog_pairs(["not a dialog"])
    path = tmp_path / "test.txt"  # the original's file layout: turns joined by " EOS ", then a tab, then the response
    path.write_text("hi . EOS hello there\tbye .\nhi . EOS hello there\tsee you .\n\n")
    read = read_pairs_file(path)
    assert read[0] == {"context": ["hi .", "hello there"], "response": "bye ."}
    assert group_by_context(read) == [read[0]]  # one entry per context, its first reference, as the original
    (tmp_path / "bad.txt").write_text("no tab here\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_pairs_file(tmp_path / "bad.txt")

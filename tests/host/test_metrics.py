"""metrics: the same numbers as scikit-learn, in plain Python types."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from anne_host.metrics import evaluate, latency

ALPHABET = ["setosa", "versicolor", "virginica", "a", "b"]


@st.composite
def labelled(draw):
    """(labels, actual, predicted): the labels in some order, some perhaps never used."""
    labels = draw(st.lists(st.sampled_from(ALPHABET), min_size=1, max_size=len(ALPHABET), unique=True))
    n = draw(st.integers(1, 40))
    actual = draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n))
    predicted = draw(st.lists(st.sampled_from(labels), min_size=n, max_size=n))
    return labels, actual, predicted


# scikit-learn warns when only one label occurs, though labels= is given; that is its business.
@pytest.mark.filterwarnings("ignore:A single label was found")
@settings(max_examples=150, deadline=None)
@given(labelled())
def test_agrees_with_scikit_learn(case):
    labels, actual, predicted = case
    m = evaluate(actual, predicted, labels)
    assert m["samples"] == len(actual)
    assert m["labels"] == labels
    assert m["confusion_matrix"] == confusion_matrix(actual, predicted, labels=labels).tolist()
    assert m["accuracy"] == pytest.approx(accuracy_score(actual, predicted))
    assert m["correct"] == sum(a == p for a, p in zip(actual, predicted))
    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=labels, zero_division=0)
    for i, label in enumerate(labels):
        scores = m["per_class"][label]
        assert scores["precision"] == pytest.approx(precision[i])
        assert scores["recall"] == pytest.approx(recall[i])
        assert scores["f1"] == pytest.approx(f1[i])
        assert scores["support"] == support[i]
    macro = f1_score(actual, predicted, labels=labels, average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(macro)


def test_paper_example():
    # AI-ANNE's test: 20 samples, 9 + 10 right, one versicolor taken for virginica.
    actual = ["versicolor"] * 10 + ["virginica"] * 10
    predicted = ["versicolor"] * 9 + ["virginica"] + ["virginica"] * 10
    m = evaluate(actual, predicted, ["versicolor", "virginica"])
    assert m["confusion_matrix"] == [[9, 1], [0, 10]]
    assert m["samples"] == 20 and m["correct"] == 19
    assert m["accuracy"] == pytest.approx(0.95)
    assert accuracy_score(actual, predicted) == pytest.approx(0.95)
    versicolor, virginica = m["per_class"]["versicolor"], m["per_class"]["virginica"]
    assert versicolor == pytest.approx({"precision": 1.0, "recall": 0.9, "f1": 18 / 19, "support": 10})
    assert virginica == pytest.approx({"precision": 10 / 11, "recall": 1.0, "f1": 20 / 21, "support": 10})


def test_undefined_scores_are_zero_without_warnings(recwarn):
    # "c" is never predicted and never actual: its precision, recall and F1 are 0.
    m = evaluate(["a", "a"], ["b", "b"], ["a", "b", "c"])
    assert m["accuracy"] == 0.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == 0.0
    assert len(recwarn) == 0


def test_no_samples():
    m = evaluate([], [], ["a", "b"])
    assert m["samples"] == 0 and m["accuracy"] == 0.0
    assert m["confusion_matrix"] == [[0, 0], [0, 0]]


def test_result_is_plain_json():
    m = evaluate(["a", "b"], ["a", "a"], ["a", "b"])
    assert json.loads(json.dumps(m)) == m
    assert type(m["samples"]) is int and type(m["accuracy"]) is float
    assert all(type(n) is int for row in m["confusion_matrix"] for n in row)


def test_unknown_label_is_a_bug():
    with pytest.raises(ValueError, match="'c'"):
        evaluate(["a"], ["c"], ["a", "b"])


def test_lengths_must_match():
    with pytest.raises(ValueError):
        evaluate(["a", "b"], ["a"], ["a", "b"])


# --- latency -----------------------------------------------------------------------------

@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 10_000_000), min_size=1, max_size=200))
def test_latency_agrees_with_numpy(us):
    lat = latency(us)
    assert set(lat) == {"mean", "p50", "p95", "max", "min"}
    assert all(type(v) is float for v in lat.values())
    assert lat["mean"] == pytest.approx(np.mean(us))
    assert lat["p50"] == pytest.approx(np.percentile(us, 50))
    assert lat["p95"] == pytest.approx(np.percentile(us, 95))
    assert lat["min"] == min(us) and lat["max"] == max(us)
    assert lat["min"] <= lat["p50"] <= lat["p95"] <= lat["max"]


def test_latency_linear_percentiles():
    lat = latency([100, 200, 300, 400, 500])
    assert lat == {"mean": 300.0, "p50": 300.0, "p95": 480.0, "max": 500.0, "min": 100.0}


def test_latency_of_nothing():
    assert latency([]) == {"mean": None, "p50": None, "p95": None, "max": None, "min": None}

"""Evaluation metrics from the board's predictions, computed on the host.

The results are plain Python ints, floats, lists and dicts, so that ``--json``
can print them as they are. They agree with scikit-learn's ``accuracy_score``,
``confusion_matrix`` and ``precision_recall_fscore_support(zero_division=0)``,
which the tests check; scikit-learn is not needed to run them.
"""

import numpy as np


def evaluate(actual, predicted, labels):
    """Accuracy, confusion matrix and per-class scores of ``predicted`` against ``actual``.

    ``actual`` and ``predicted`` are equally long lists of label strings, each one
    of ``labels``. Returns a dict with ``samples``, ``correct``, ``accuracy``
    (0..1), ``labels``, ``confusion_matrix`` (rows actual, columns predicted, in
    ``labels`` order), ``per_class`` (label -> precision, recall, f1, support) and
    ``macro_f1`` (the mean F1 over all ``labels``, also those without samples).
    A score whose denominator is zero is 0.0, as with zero_division=0.
    """
    labels = list(labels)
    cm = confusion_matrix(actual, predicted, labels)
    correct = int(np.trace(cm))
    samples = int(cm.sum())
    per_class = _per_class(cm, labels)
    return {
        "samples": samples,
        "correct": correct,
        "accuracy": _ratio(correct, samples),
        "labels": labels,
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "macro_f1": float(np.mean([s["f1"] for s in per_class.values()])) if labels else 0.0,
    }


def confusion_matrix(actual, predicted, labels):
    """Counts as an int64 array: [i, j] is how many samples of labels[i] were predicted labels[j]."""
    if len(actual) != len(predicted):
        raise ValueError("%d actual labels but %d predictions" % (len(actual), len(predicted)))
    index = {label: i for i, label in enumerate(labels)}
    cm = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, p in zip(actual, predicted):
        # A label outside ``labels`` is a caller's bug (csvdata checks the file's
        # labels, the board only predicts the model's): counting it nowhere would hide it.
        cm[_index(index, a), _index(index, p)] += 1
    return cm


def latency(us_list):
    """Summary of per-sample times in microseconds: mean, p50, p95, max, min.

    Percentiles use numpy's default linear interpolation. With no times every
    value is None, because there is nothing to summarise.
    """
    if len(us_list) == 0:
        return {"mean": None, "p50": None, "p95": None, "max": None, "min": None}
    us = np.asarray(us_list, dtype=np.float64)
    p50, p95 = np.percentile(us, [50, 95])
    return {"mean": float(us.mean()), "p50": float(p50), "p95": float(p95),
            "max": float(us.max()), "min": float(us.min())}


def _index(index, label):
    try:
        return index[label]
    except KeyError:
        raise ValueError("label %r is not one of %s" % (label, list(index))) from None


def _per_class(cm, labels):
    tp = np.diag(cm)
    support = cm.sum(axis=1)        # how many samples are of each class
    predicted = cm.sum(axis=0)      # how often each class was predicted
    scores = {}
    for i, label in enumerate(labels):
        fp, fn = predicted[i] - tp[i], support[i] - tp[i]
        scores[label] = {
            "precision": _ratio(tp[i], predicted[i]),
            "recall": _ratio(tp[i], support[i]),
            # 2tp/(2tp+fp+fn) is the harmonic mean of precision and recall, and 0
            # when either is undefined, which is what scikit-learn computes.
            "f1": _ratio(2 * tp[i], 2 * tp[i] + fp + fn),
            "support": int(support[i]),
        }
    return scores


def _ratio(num, den):
    return float(num) / float(den) if den else 0.0

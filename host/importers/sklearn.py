"""scikit-learn -> ANNE model document: a fitted MLPClassifier or MLPRegressor, alone or
at the end of a Pipeline whose earlier steps are StandardScaler or MinMaxScaler (folded
into the first dense layer's weights).

Files: a ``.skops`` file is read with skops, which builds only the types it trusts; a
joblib or pickle file runs whatever code it names when it is loaded, so it is read only
when the caller says it trusts the file (``trust_pickle``, the CLI's --trust-pickle).
"""

from pathlib import Path

import numpy as np

from . import PICKLES, need
from .common import Affine, Dense, ExportError, document

# MLP activation names (sklearn's ACTIVATIONS) -> ANNE activation names.
_ACTIVATIONS = {"identity": "linear", "relu": "relu", "tanh": "tanh", "logistic": "sigmoid",
                "softmax": "softmax"}
# Types a fitted MLP pipeline holds that skops does not trust by default: its optimizer's
# state (plain numbers and arrays). Anything else in a file is refused, named.
_SKOPS_TRUSTED = ("sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
                  "sklearn.neural_network._stochastic_optimizers.SGDOptimizer")


def load(path, trust_pickle=False):
    """The estimator saved in ``path`` (.skops; .joblib, .pkl or .pickle with trust_pickle)."""
    path = Path(path)
    if path.suffix.lower() in PICKLES:
        if not trust_pickle:
            raise ExportError("%s is a pickle: loading it runs any code it holds. Save the model with "
                              "skops (skops.io.dump) and export the .skops file, or pass --trust-pickle "
                              "if you made this file yourself" % path)
        joblib = need("joblib", "sklearn")
        need("sklearn", "sklearn")
        try:
            return joblib.load(path)
        except Exception as e:  # any unpickling failure: one line, not a traceback
            raise ExportError("%s: cannot load (%s: %s)" % (path, type(e).__name__, e))
    sio = need("skops.io", "sklearn")
    need("sklearn", "sklearn")
    try:
        untrusted = sio.get_untrusted_types(file=path)
        unknown = [t for t in untrusted if t not in _SKOPS_TRUSTED]
        if unknown:
            raise ExportError("%s holds types that are not a scikit-learn MLP or scaler (%s); refused, "
                              "as loading them could run their code" % (path, ", ".join(unknown)))
        return sio.load(path, trusted=untrusted)
    except ExportError:
        raise
    except OSError as e:
        raise ExportError("%s: cannot read (%s)" % (path, e.strerror or e))
    except Exception as e:  # a file that is not a skops archive
        raise ExportError("%s: cannot read as a skops file (%s: %s)" % (path, type(e).__name__, e))


def export_estimator(estimator, name=None, labels=None, features=None, input_mean=None,
                     input_std=None, threshold=None, source=None):
    """The ANNE model document of a fitted MLPClassifier or MLPRegressor, or a Pipeline of
    scalers ending in one. Labels default to the classifier's ``classes_``, features to
    the names it was fitted with (``feature_names_in_``)."""
    steps = _steps(estimator)
    ops, dropped = [], []
    for step_name, step in steps[:-1]:
        op = _scaler(step_name, step)
        if op is None:
            dropped.append("step %r: passthrough" % step_name)
        else:
            ops.append(op)
    step_name, mlp = steps[-1]
    kind = type(mlp).__name__
    where = "step %r (%s)" % (step_name, kind) if len(steps) > 1 else kind
    if kind not in ("MLPClassifier", "MLPRegressor"):
        raise ExportError("%s is not supported; supported: MLPClassifier and MLPRegressor, alone or at the "
                          "end of a Pipeline of StandardScaler or MinMaxScaler steps" % where)
    if not hasattr(mlp, "coefs_"):
        raise ExportError("%s is not fitted; fit it before exporting" % where)
    hidden = _act(mlp.activation, where)
    out = _act(mlp.out_activation_, where)
    if kind == "MLPClassifier" and out["name"] == "sigmoid" and mlp.n_outputs_ > 1:
        raise ExportError("%s is a multilabel classifier (one yes/no decision per output); ANNE decides "
                          "one class per sample" % where)
    last = len(mlp.coefs_) - 1
    for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        ops.append(Dense("%s layer %d" % (where, i), w, b, out if i == last else hidden))
    n_in = mlp.coefs_[0].shape[0]
    if labels is None and kind == "MLPClassifier":
        labels = [str(c) for c in mlp.classes_]
    if features is None and hasattr(estimator, "feature_names_in_"):
        features = [str(f) for f in estimator.feature_names_in_]
    src = dict(source or {})
    src.setdefault("format", "scikit-learn %s" % ("Pipeline" if len(steps) > 1 else kind))
    return document(ops, n_in, name or kind.lower(), labels=labels, features=features,
                    input_mean=input_mean, input_std=input_std, threshold=threshold, source=src,
                    dropped=dropped)


def _steps(estimator):
    if type(estimator).__name__ == "Pipeline":
        return list(estimator.steps)
    return [("model", estimator)]


def _act(name, where):
    if name not in _ACTIVATIONS:
        raise ExportError("%s: activation %r is not supported" % (where, name))
    return {"name": _ACTIVATIONS[name]}


def _scaler(step_name, step):
    kind = type(step).__name__
    where = "step %r (%s)" % (step_name, kind)
    if step is None or step == "passthrough":
        return None
    if kind == "StandardScaler":
        if not hasattr(step, "n_features_in_"):
            raise ExportError("%s is not fitted" % where)
        n = step.n_features_in_
        scale = np.ones(n) if step.scale_ is None else np.asarray(step.scale_, np.float64)
        mean = np.zeros(n) if step.mean_ is None or not step.with_mean else np.asarray(step.mean_, np.float64)
        return Affine(where, 1.0 / scale, -mean / scale)
    if kind == "MinMaxScaler":
        if not hasattr(step, "scale_"):
            raise ExportError("%s is not fitted" % where)
        if step.clip:
            raise ExportError("%s clips to its range (clip=True), which cannot be folded into weights" % where)
        return Affine(where, np.asarray(step.scale_, np.float64), np.asarray(step.min_, np.float64))
    raise ExportError("%s is not supported; a Pipeline may hold StandardScaler or MinMaxScaler steps "
                      "before its MLPClassifier or MLPRegressor" % where)

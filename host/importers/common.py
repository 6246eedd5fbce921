"""What every importer shares: the chain of operations (dense, activation, per-feature
affine) that host/export.py folds for Keras, and the document built from it."""

from .. import model_doc
from ..export import ExportError, _Act, _Affine, _Dense, _fold, _vector

__all__ = ["ExportError", "Act", "Affine", "Dense", "document"]

# The same operation types export.py folds, so every way in folds alike.
Act, Affine, Dense = _Act, _Affine, _Dense


def document(ops, n_in, name, labels=None, features=None, input_mean=None, input_std=None,
             threshold=None, source=None, dropped=()):
    """The model document of a chain of operations over ``n_in`` inputs (Dense kernels
    in [in][out] layout), with input scaling given at export folded in first."""
    ops = list(ops)
    if input_mean is not None or input_std is not None:
        mean = _vector(input_mean, n_in, 0.0, "input mean")
        std = _vector(input_std, n_in, 1.0, "input std")
        ops.insert(0, Affine("input scaling", 1.0 / std, -mean / std))
    for op in ops:
        # A width mismatch would otherwise surface as a numpy broadcasting traceback.
        if isinstance(op, Dense) and op.kernel.ndim != 2:
            raise ExportError("%s: its weights are not a matrix" % op.what)
    folded = []
    layers = _fold(ops, folded)
    width = n_in
    for layer in layers:
        if layer["type"] == "dense":
            if layer["weights"].shape[1] != width:
                raise ExportError("the layers do not chain: a dense layer takes %d inputs where %d come in"
                                  % (layer["weights"].shape[1], width))
            width = layer["units"]
    problem = model_doc.names_problem(features, labels, n_in, width, ("--features", "--labels"))
    if problem:
        raise ExportError(problem)
    meta = {"name": name or "model", "inputs": int(n_in)}
    if features:
        meta["features"] = [str(f) for f in features]
    if labels:
        meta["labels"] = [str(v) for v in labels]
    if threshold is not None:
        meta["threshold"] = float(threshold)
    src = dict(source or {})
    src["folded"] = folded
    src["dropped"] = list(dropped)
    doc = model_doc.build(meta, layers, src)
    model_doc.to_layers(doc, "the exported model")  # an importer's output must validate
    return doc

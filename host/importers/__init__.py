"""More ways into an ANNE model document than a Keras file: ONNX graphs, PyTorch
modules, scikit-learn MLPs (fitted objects, skops files, trusted pickles).

Each source has its own module, each producing the same document as
``anne_host.export.export_model`` does for Keras; ``load_document`` picks one by the
file's suffix. Each module imports its library only when it is used, so a missing
optional extra is a one-line error naming the extra to install.
"""

from pathlib import Path

from ..export import ExportError

# File suffix -> (importer module, what the file is), for the export command and its help.
SUFFIXES = {
    ".onnx": ("onnx", "ONNX graph"),
    ".skops": ("sklearn", "scikit-learn model saved with skops"),
    ".joblib": ("sklearn", "scikit-learn model saved with joblib (a pickle)"),
    ".pkl": ("sklearn", "scikit-learn model saved with pickle"),
    ".pickle": ("sklearn", "scikit-learn model saved with pickle"),
}
PICKLES = (".joblib", ".pkl", ".pickle")


def need(module, extra):
    """Import ``module``, or say in one line which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ExportError("this needs the %s package: pip install 'anne-host[%s]'" % (module, extra))


def handles(path):
    return Path(path).suffix.lower() in SUFFIXES


def load_document(path, trust_pickle=False, **options):
    """The float model document of the model file ``path`` (an ONNX, skops or pickle
    file); ``options`` as the importers' export functions take them (name, labels,
    features, input_mean, input_std, threshold)."""
    path = Path(path)
    suffix = path.suffix.lower()
    options.setdefault("source", {"file": path.name})
    if SUFFIXES[suffix][0] == "onnx":
        from . import onnx as importer

        return importer.export_onnx(path, **options)
    from . import sklearn as importer

    return importer.export_estimator(importer.load(path, trust_pickle=trust_pickle), **options)

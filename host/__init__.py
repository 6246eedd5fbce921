"""anne-host: the PC side of ANNE (export, upload, evaluate)."""

__version__ = "0.1.0"

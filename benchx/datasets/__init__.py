"""Dataset loaders: importing this package registers the built-in and the public-dataset loaders."""

from benchx.datasets import builtin, public  # noqa: F401  (register their loaders)

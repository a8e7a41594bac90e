"""MLflow "model from code" entry point: declares the medvl pyfunc model (see :mod:`medvl.infer.pyfunc`)."""

from mlflow.models import set_model

from medvl.infer.pyfunc import MedvlEmbedder

set_model(MedvlEmbedder())

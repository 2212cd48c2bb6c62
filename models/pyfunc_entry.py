"""MLflow models-from-code entry point: MLflow runs this file to build the recommender when it loads one.

Nothing imports this module; its one statement is the contract MLflow asks of
such a file (`set_model`). The booster itself arrives through `load_context`.
"""

from mlflow.models import set_model

from models.recommender import Recommender

set_model(Recommender())

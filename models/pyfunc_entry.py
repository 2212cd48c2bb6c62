"""MLflow models-from-code entry point: MLflow runs this file to build the recommender when it loads one.

Nothing imports this module; its one statement is the contract MLflow asks of
such a file (`set_model`). The generators, the ranker and the configuration
arrive through `load_context` (the `package` artifact).
"""

from mlflow.models import set_model

from models.recommender import PackagedRecommender

set_model(PackagedRecommender())

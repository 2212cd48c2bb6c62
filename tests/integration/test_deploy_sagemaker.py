"""`fitrec deploy sagemaker` against moto's SageMaker and S3: the first deploy creates the model, endpoint
configuration and endpoint; a new champion updates the endpoint to a new configuration; the archive in S3
is the version's MLflow model; an unknown alias or a missing setting exits non-zero with the reason."""

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.responses import ActionResult
from moto.sagemaker.responses import SageMakerResponse
from support import synthetic_ranking_set
from typer.testing import CliRunner

from models.recommender import PackagedRecommender, RecommenderConfig
from pipelines.cli import app, console
from pipelines.config import PipelineSettings
from training.ranker import train_ranker
from training.registry import log_recommender, promote

pytestmark = pytest.mark.integration
REGION = "eu-west-1"
BUCKET = "fitrec-models"
ROLE = "arn:aws:iam::123456789012:role/fitrec-sagemaker"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/fitrec-serve:latest"


def _update_endpoint(self: SageMakerResponse) -> ActionResult:
    """UpdateEndpoint as SageMaker does it, which moto 5.2 lacks: the endpoint moves to another config."""
    backend = self.sagemaker_backend
    name, config = self._get_param("EndpointName"), self._get_param("EndpointConfigName")
    backend.describe_endpoint(name)  # moto's own "Could not find endpoint" error
    endpoint = backend.endpoints[name]
    endpoint.endpoint_config_name = config
    endpoint.production_variants = backend.describe_endpoint_config(config)["ProductionVariants"]
    return ActionResult({"EndpointArn": endpoint.arn})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setattr(SageMakerResponse, "update_endpoint", _update_endpoint, raising=False)
    with mock_aws():
        boto3.client("s3", region_name=REGION).create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        yield


def _register(settings: PipelineSettings) -> str:
    """A small packaged model (a LightGBM ranker) registered under the settings' model name."""
    trained = train_ranker(
        synthetic_ranking_set(60, seed=1),
        synthetic_ranking_set(20, seed=2),
        features=["fit", "category", "noise"],
        categorical=["category"],
        num_boost_round=10,
        min_rounds=2,
    )
    config = RecommenderConfig(
        feature_service="test", online_features=("fit", "category", "noise"), sources=(), per_source={}
    )
    logged = log_recommender(
        tracking_uri=settings.tracking_uri,
        artifact_root=settings.artifact_root,
        experiment=settings.model_name,
        model_name=settings.model_name,
        package=PackagedRecommender(ranker=trained.ranker(), config=config),
        params={},
        metrics={},
        lineage={},
    )
    return logged.model_version


def test_deploy_creates_then_updates_the_endpoint(aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITREC_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(console, "width", 200)
    settings = PipelineSettings()
    runner = CliRunner()
    args = ["deploy", "sagemaker", "--alias", "champion", "--endpoint", "fitrec-test"]
    options = ["--role", ROLE, "--image", IMAGE, "--bucket", BUCKET, "--instance-type", "ml.t2.medium"]

    first = _register(settings)  # the registry's first version: champion
    done = runner.invoke(app, [*args, *options])
    assert done.exit_code == 0, done.output
    assert "endpoint fitrec-test created" in done.output and f"version {first}" in done.output
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    endpoint = sagemaker.describe_endpoint(EndpointName="fitrec-test")
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    (variant,) = config["ProductionVariants"]
    assert variant["InstanceType"] == "ml.t2.medium" and variant["InitialInstanceCount"] == 1
    model = sagemaker.describe_model(ModelName=variant["ModelName"])
    container: dict[str, Any] = model["PrimaryContainer"]
    assert container["Image"] == IMAGE and model["ExecutionRoleArn"] == ROLE
    # The archive is the version's MLflow model, files at its root (SageMaker unpacks it into /opt/ml/model).
    bucket, _, key = container["ModelDataUrl"].removeprefix("s3://").partition("/")
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = set(tar.getnames())
    assert "MLmodel" in names and any(name.startswith("artifacts") for name in names), names

    # The same champion again: nothing changes.
    again = runner.invoke(app, [*args, *options])
    assert again.exit_code == 0 and "unchanged" in again.output

    # A new champion: a new model and configuration, the endpoint updated to it (not re-created).
    second = _register(settings)
    promote(tracking_uri=settings.tracking_uri, name=settings.model_name, version=second)
    updated = runner.invoke(app, [*args, *options])
    assert updated.exit_code == 0 and "endpoint fitrec-test updated" in updated.output, updated.output
    now = sagemaker.describe_endpoint(EndpointName="fitrec-test")
    assert now["EndpointConfigName"] != endpoint["EndpointConfigName"] and f"v{second}" in now["EndpointConfigName"]
    assert now["EndpointArn"] == endpoint["EndpointArn"]
    assert {m["ModelName"] for m in sagemaker.list_models()["Models"]} == {
        f"fitrec-test-v{first}",
        f"fitrec-test-v{second}",
    }

    # An unknown alias or a missing setting is refused, non-zero, and nothing changes.
    bad = runner.invoke(app, ["deploy", "sagemaker", "--alias", "nightly", "--endpoint", "fitrec-test", *options])
    assert bad.exit_code == 1 and "no version with the alias 'nightly'" in bad.output
    unset = runner.invoke(app, [*args, "--image", IMAGE])
    assert unset.exit_code == 1 and "--role" in unset.output and "--bucket" in unset.output
    assert sagemaker.describe_endpoint(EndpointName="fitrec-test")["EndpointConfigName"] == now["EndpointConfigName"]

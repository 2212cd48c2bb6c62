"""`fitrec deploy sagemaker`: a registry alias's version onto a SageMaker real-time endpoint (boto3).

The version's MLflow model folder goes to S3 as `model.tar.gz` (SageMaker unpacks it into /opt/ml/model,
where `fitrec serve-model` loads it: serving/model_server.py). Then, named after the endpoint and the
version, a SageMaker model (the image + that archive) and an endpoint configuration, created when they
do not exist yet; the endpoint is created, or updated to the new configuration (SageMaker swaps the
instances without downtime). Deploying the version the endpoint already serves changes nothing.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from pipelines.config import PipelineSettings

VARIANT = "AllTraffic"
PREFIX = "fitrec/models"


class DeployError(RuntimeError):
    """What the user must fix: an unknown alias, missing settings, a refusal of AWS."""


@dataclass(frozen=True)
class Deployment:
    endpoint: str
    version: str
    model: str  # the SageMaker model's name
    config: str  # the endpoint configuration's name
    model_data: str  # s3:// URL of the archive
    action: str  # "created", "updated" or "unchanged"


def resource_name(*parts: str) -> str:
    """A SageMaker resource name: letters, digits and hyphens, at most 63 characters."""
    text = re.sub(r"[^a-zA-Z0-9-]+", "-", "-".join(parts)).strip("-")
    return text[:63].rstrip("-")


def _missing(error: Exception) -> bool:
    """Whether a describe call failed because the resource does not exist (SageMaker says so in a
    ValidationException, not a 404)."""
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and "could not find" in str(error).lower()


def _archive(settings: PipelineSettings, version: str, into: Path) -> Path:
    """The version's model folder (MLmodel, code, artifacts) as model.tar.gz with the files at its root."""
    import mlflow.artifacts

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    source = client.get_model_version_download_uri(settings.model_name, version)
    folder = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=source, dst_path=str(into / "model"), tracking_uri=settings.tracking_uri
        )
    )
    archive = into / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def deploy_sagemaker(
    settings: PipelineSettings,
    *,
    alias: str,
    endpoint: str,
    role: str | None,
    image: str | None,
    bucket: str | None,
    instance_type: str,
    instance_count: int = 1,
    region: str | None = None,
) -> Deployment:
    """Deploy `settings.model_name@alias` to the endpoint `endpoint`; see the module's docstring."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    missing = [name for name, value in (("--role", role), ("--image", image), ("--bucket", bucket)) if not value]
    if missing:
        raise DeployError(f"give {', '.join(missing)} (or their FITREC_PIPELINE_SAGEMAKER_* settings)")
    assert role and image and bucket  # for the type checker: checked just above
    registry = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    try:
        version = str(registry.get_model_version_by_alias(settings.model_name, alias).version)
    except MlflowException as exc:
        raise DeployError(f"{settings.model_name} has no version with the alias {alias!r}") from exc

    model = resource_name(endpoint, f"v{version}")
    config = resource_name(endpoint, f"v{version}", "config")
    key = f"{PREFIX}/{settings.model_name}/{version}/model.tar.gz"
    model_data = f"s3://{bucket}/{key}"
    try:
        sagemaker = boto3.client("sagemaker", region_name=region)
        current = _describe(sagemaker.describe_endpoint, EndpointName=endpoint)
        if current is not None and current["EndpointConfigName"] == config:
            return Deployment(endpoint, version, model, config, model_data, "unchanged")
        if _describe(sagemaker.describe_model, ModelName=model) is None:
            with tempfile.TemporaryDirectory() as tmp:
                archive = _archive(settings, version, Path(tmp))
                boto3.client("s3", region_name=region).upload_file(str(archive), bucket, key)
            sagemaker.create_model(
                ModelName=model,
                ExecutionRoleArn=role,
                PrimaryContainer={"Image": image, "ModelDataUrl": model_data, "Environment": {}},
                Tags=_tags(settings, version, alias),
            )
        if _describe(sagemaker.describe_endpoint_config, EndpointConfigName=config) is None:
            sagemaker.create_endpoint_config(
                EndpointConfigName=config,
                ProductionVariants=[
                    {
                        "VariantName": VARIANT,
                        "ModelName": model,
                        "InitialInstanceCount": instance_count,
                        "InstanceType": instance_type,
                        "InitialVariantWeight": 1.0,
                    }
                ],
                Tags=_tags(settings, version, alias),
            )
        if current is None:
            sagemaker.create_endpoint(
                EndpointName=endpoint, EndpointConfigName=config, Tags=_tags(settings, version, alias)
            )
            action = "created"
        else:
            sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=config)
            action = "updated"
    except (ClientError, BotoCoreError) as exc:
        raise DeployError(f"AWS refused: {exc}") from exc
    return Deployment(endpoint, version, model, config, model_data, action)


def _describe(call: Any, **kwargs: str) -> dict[str, Any] | None:
    """The resource's description, None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        return dict(call(**kwargs))
    except ClientError as exc:
        if _missing(exc):
            return None
        raise


def _tags(settings: PipelineSettings, version: str, alias: str) -> list[dict[str, str]]:
    return [
        {"Key": "fitrec:model", "Value": settings.model_name},
        {"Key": "fitrec:version", "Value": version},
        {"Key": "fitrec:alias", "Value": alias},
    ]

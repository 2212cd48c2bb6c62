"""SageMaker's container contract served by `fitrec serve-model` over a real trained packaged model: /ping,
/invocations with the SageMaker scorer's body scoring exactly as in process, errors in the one shape."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI, Request, Response
from support import TrainedStack, free_port, serve_app

from features.retrieval import OnlineFeatureReader
from features.store import open_store
from serving.config import ModelServerSettings
from serving.model_server import create_app
from serving.ranking.model_holder import ModelHolder
from serving.ranking.scorer import CONTENT_TYPE, SageMakerScorer, encode_frame

MODEL = "fitrec-ranker"


def tracking_uri(stack: TrainedStack) -> str:
    return f"sqlite:///{stack.data_dir / 'mlflow.db'}"


@pytest.fixture(scope="module")
def champion(served_stack: TrainedStack) -> Any:
    """The champion as serving loads it (the unwrapped PackagedRecommender) and its version."""
    holder = ModelHolder(tracking_uri=tracking_uri(served_stack), name=MODEL, alias="champion")
    assert holder.refresh(), holder.problem
    assert holder.current is not None
    return holder.current


@pytest.fixture(scope="module")
def model_server(served_stack: TrainedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`fitrec serve-model` in its own process on a free port, until /ping answers 200."""
    port = free_port()
    log = tmp_path_factory.mktemp("model-server") / "server.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["FITREC_DATA_DIR"] = str(served_stack.data_dir)
    command = [str(Path(sys.executable).parent / "fitrec"), "serve-model", "--port", str(port)]
    command += ["--model-uri", f"models:/{MODEL}@champion"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def candidate_frame(stack: TrainedStack, ranker: Any, user_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The user's candidates as the ranking path builds them: online features (read as serving reads them)
    beside the model's source columns; and the (user_id, item_id) pairs."""
    found = ranker.candidates([user_id])
    features = OnlineFeatureReader(open_store(data_dir=stack.data_dir))(user_id, found["item_id"].tolist())
    sources = found.drop(columns=["user_id", "item_id"]).set_axis(features.index)
    return pd.concat([features, sources], axis=1), found[["user_id", "item_id"]].set_axis(features.index)


def known_user(ranker: Any) -> str:
    generator = next(iter(ranker.generators.values()))
    return str(next(iter(generator.index.user_code)))


def test_ping_and_invocations_score_exactly_as_in_process(
    served_stack: TrainedStack, champion: Any, model_server: str
) -> None:
    ranker = champion.ranker
    ping = httpx.get(f"{model_server}/ping")
    assert ping.status_code == 200
    assert ping.json() == {"status": "ok", "model_uri": f"models:/{MODEL}@champion", "version": champion.version}

    frame, pairs = candidate_frame(served_stack, ranker, known_user(ranker))
    assert len(frame) > 10
    expected = ranker.score(frame)
    # A source that cannot score a pair leaves its columns missing: missing values travel as null.
    # Every source column of every row: one cell could sit on the side of a split its NaN takes anyway.
    gap = frame.copy()
    gap[[c for c in ranker.feature_names if c.endswith(("_rank", "_relative"))]] = np.nan

    for sent in (frame, gap):
        answer = httpx.post(
            f"{model_server}/invocations",
            content=encode_frame(sent, ranker.feature_names),
            headers={"Content-Type": CONTENT_TYPE},
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == CONTENT_TYPE
        assert np.array_equal(np.asarray(answer.json()["predictions"]), ranker.score(sent))
    assert not np.array_equal(ranker.score(gap), expected)  # the gap mattered, so it was scored as sent

    # user_id, item_id and the online features only: the model computes the source columns itself.
    slim = pd.concat([pairs, frame[list(ranker.online_features)]], axis=1)
    answer = httpx.post(
        f"{model_server}/invocations",
        content=encode_frame(slim, slim.columns),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert answer.status_code == 200, answer.text
    assert np.array_equal(np.asarray(answer.json()["predictions"]), expected)


def test_bad_requests_get_the_error_shape(champion: Any, model_server: str) -> None:
    ranker = champion.ranker
    columns = list(ranker.feature_names)
    cases = [
        (b"{not json", CONTENT_TYPE, 400, "not JSON"),
        (b'{"rows": []}', CONTENT_TYPE, 400, "pandas split orient"),
        (b'{"columns": ["a", "b"], "data": [[1.0]]}', CONTENT_TYPE, 400, "rows of 2 values"),
        (b"a,b\n1,2\n", "text/csv", 415, "Content-Type must be application/json"),
        (encode_frame(pd.DataFrame({c: [0.0] for c in columns[1:]}), columns[1:]), CONTENT_TYPE, 422, columns[0]),
        (b"x" * (6 * 1024 * 1024 + 1), CONTENT_TYPE, 413, "exceeds"),
    ]
    for body, content_type, status, message in cases:
        answer = httpx.post(f"{model_server}/invocations", content=body, headers={"Content-Type": content_type})
        assert answer.status_code == status, (status, answer.text)
        error = answer.json()["error"]
        assert error["status"] == status and message in error["message"], error
    missing = httpx.post(
        f"{model_server}/invocations",
        content=encode_frame(pd.DataFrame({c: [0.0] for c in columns[1:]}), columns[1:]),
        headers={"Content-Type": CONTENT_TYPE},
    ).json()["error"]
    assert missing["code"] == "validation_error" and missing["details"] == {"missing": [columns[0]]}


def test_without_a_model_ping_and_invocations_answer_503(tmp_path: Path) -> None:
    settings = ModelServerSettings(FITREC_DATA_DIR=tmp_path, FITREC_MODEL_URI=str(tmp_path / "no-model"))
    app = create_app(settings)
    with serve_app(app) as url:
        deadline = time.monotonic() + 30
        while "still loading" in (app.state.model_slot.problem or ""):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ping = httpx.get(f"{url}/ping")
        assert ping.status_code == 503
        error = ping.json()["error"]
        assert (
            error["code"] == "unavailable" and "no-model" in error["message"] and "failed to load" in error["message"]
        )
        answer = httpx.post(f"{url}/invocations", content=b"{}", headers={"Content-Type": CONTENT_TYPE})
        assert answer.status_code == 503 and answer.json()["error"]["status"] == 503


def runtime_route(container: str) -> FastAPI:
    """SageMaker runtime's routing, and nothing else: InvokeEndpoint's path `/endpoints/{name}/invocations`
    hands the body and content type, unchanged, to the container's /invocations and its answer back."""
    app = FastAPI()

    @app.post("/endpoints/{name}/invocations")
    async def invoke(name: str, request: Request) -> Response:
        assert name == MODEL
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                f"{container}/invocations",
                content=await request.body(),
                headers={"Content-Type": request.headers["content-type"]},
            )
        return Response(answer.content, answer.status_code, media_type=answer.headers["content-type"])

    return app


def test_the_sagemaker_scorer_body_is_what_the_container_accepts(
    served_stack: TrainedStack, champion: Any, model_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    ranker = champion.ranker
    frame, _ = candidate_frame(served_stack, ranker, known_user(ranker))
    frame["path_only"] = "not a feature"  # a column of the path's frame the model does not read: not sent
    with serve_app(runtime_route(model_server)) as runtime:
        scorer = SageMakerScorer(MODEL, region="eu-west-1", timeout_ms=5000, endpoint_url=runtime)
        scores = scorer.score(ranker, frame)
        scorer.close()
    assert not scorer.fallbacks  # the container answered: no in-process fallback
    assert np.array_equal(scores, ranker.score(frame))

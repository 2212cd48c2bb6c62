"""The SageMaker scorer against moto's mocked sagemaker-runtime and against real sockets that hang or refuse:
what it sends, what it parses, and that every failure is answered by the same model in process, counted."""

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import requests
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemakerruntime.models import sagemakerruntime_backends
from support import free_port, synthetic_ranking_set

from models.recommender import PackagedRecommender, RecommenderConfig
from serving.ranking.scorer import CONTENT_TYPE, InProcessScorer, SageMakerScorer, decode_frame, make_scorer
from training.ranker import train_ranker

REGION = "eu-west-1"
ENDPOINT = "fitrec-ranker"
RESULTS_API = "http://motoapi.amazonaws.com/moto-api/static/sagemaker/endpoint-results"


@pytest.fixture(scope="module")
def model() -> PackagedRecommender:
    """A real (small) packaged recommender: LightGBM over a numeric and a categorical feature."""
    trained = train_ranker(
        synthetic_ranking_set(120, seed=1),
        synthetic_ranking_set(40, seed=2),
        features=["fit", "category", "noise"],
        categorical=["category"],
        num_boost_round=20,
        min_rounds=5,
    )
    config = RecommenderConfig(
        feature_service="test", online_features=("fit", "category", "noise"), sources=(), per_source={}
    )
    return PackagedRecommender(ranker=trained.ranker(), config=config)


def candidates(seed: int, rows: int = 8) -> pd.DataFrame:
    """Candidate rows as the ranking path holds them: the model's columns and one it does not read."""
    frame = synthetic_ranking_set(1, seed=seed, slate=rows)[["fit", "category", "noise"]]
    frame.loc[frame.index[1], "fit"] = np.nan
    return frame.assign(n_sources=1.0, user_item_history=0.0, equipment_fit=0.5)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


def answer_with(*bodies: str) -> None:
    """Queue moto's answers to the next InvokeEndpoint calls (its documented configuration API)."""
    results = [{"Body": body, "ContentType": CONTENT_TYPE} for body in bodies]
    requests.post(RESULTS_API, json={"region": REGION, "results": results}, timeout=5).raise_for_status()


def sent_requests() -> list[dict[str, str]]:
    """What moto received: the body and headers each distinct call carried (moto 5.2 files them under
    the endpoint name None: it does not read the name from the request path)."""
    backend = sagemakerruntime_backends[DEFAULT_ACCOUNT_ID][REGION]
    return [json.loads(base64.b64decode(key)) for calls in backend.results.values() for key in calls]


def test_make_scorer_parses_urls_and_refuses_bad_ones(aws: None) -> None:
    assert isinstance(make_scorer("inprocess://"), InProcessScorer)
    scorer = make_scorer(f"sagemaker://{ENDPOINT}?region={REGION}&timeout_ms=150")
    assert isinstance(scorer, SageMakerScorer) and scorer.endpoint == ENDPOINT
    assert scorer._client.meta.region_name == REGION
    assert scorer._client.meta.config.read_timeout == 0.15 and scorer._client.meta.config.connect_timeout == 0.15
    assert scorer._client.meta.config.retries["total_max_attempts"] == 1  # no retries
    for bad, why in [
        ("memory://", "unsupported scorer URL"),
        ("inprocess://somewhere", "takes no endpoint"),
        ("sagemaker://", "valid SageMaker endpoint name"),
        ("sagemaker://bad_name?region=eu-west-1", "valid SageMaker endpoint name"),
        ("sagemaker://ok/extra", "valid SageMaker endpoint name"),
        ("sagemaker://ok?region=eu-west-1&timeout=5", "options are region, timeout_ms"),
        ("sagemaker://ok?timeout_ms=1&timeout_ms=2", "each at most once"),
        ("sagemaker://ok?timeout_ms=fast", "timeout_ms must be an integer"),
        ("sagemaker://ok?timeout_ms=0", "timeout_ms must be an integer"),
    ]:
        with pytest.raises(ValueError, match=why):
            make_scorer(bad)


def test_the_endpoint_gets_the_feature_columns_and_its_answer_is_used(aws: None, model: PackagedRecommender) -> None:
    frame = candidates(seed=3)
    answer_with(json.dumps({"predictions": [float(i) for i in range(len(frame))]}))
    scorer = make_scorer(f"sagemaker://{ENDPOINT}?region={REGION}")

    scores = scorer.score(model, frame)

    assert scores.tolist() == [float(i) for i in range(len(frame))]
    assert not scorer.fallbacks
    (sent,) = sent_requests()
    assert sent["Accept"] == CONTENT_TYPE
    received = decode_frame(sent["Body"].encode())
    # Exactly the model's columns (not the path's extras), values and missing ones as they were.
    assert tuple(received.columns) == model.feature_names
    pd.testing.assert_frame_equal(received, frame[list(model.feature_names)].reset_index(drop=True))
    assert np.array_equal(model.score(received), model.score(frame))
    assert scorer.score(model, frame.iloc[:0]).shape == (0,) and len(sent_requests()) == 1  # nothing to send


def test_wrong_answers_fall_back_to_in_process_scores_counted_and_logged_once_per_burst(
    aws: None, model: PackagedRecommender, caplog: pytest.LogCaptureFixture
) -> None:
    frames = [candidates(seed=s) for s in (10, 11, 12, 13)]
    answer_with(
        json.dumps({"predictions": [1.0]}),  # one score for eight rows
        "not json",
        json.dumps({"predictions": ["high"] * 8}),
        json.dumps({"predictions": [0.5] * 8}),
    )
    scorer = make_scorer(f"sagemaker://{ENDPOINT}?region={REGION}", breaker_failures=5)  # circuit stays closed
    caplog.set_level(logging.WARNING, logger="serving.ranking.scorer")

    for frame in frames[:3]:
        assert np.array_equal(scorer.score(model, frame), model.score(frame))
    assert scorer.fallbacks == {"bad_response": 3}
    assert scorer.score(model, frames[3]).tolist() == [0.5] * 8  # the endpoint answers again
    assert len(sent_requests()) == 4
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed (bad_response" in m for m in messages) == 1, messages
    assert sum("answers again (fallbacks so far" in m for m in messages) == 1, messages


class HangingServer:
    """Accepts connections, reads what is sent and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.heads: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)
            conn.settimeout(2)
            self.heads.append(conn.recv(65536))

    def close(self) -> None:
        self.sock.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.close()


def test_a_hung_endpoint_times_out_and_an_open_circuit_stops_calling_it(
    aws_credentials: None, model: PackagedRecommender, hanging: HangingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="serving.ranking.scorer")
    scorer = SageMakerScorer(
        ENDPOINT, region=REGION, timeout_ms=200, endpoint_url=hanging.url, breaker_failures=2, breaker_reset_s=1.0
    )
    frame = candidates(seed=20)
    expected = model.score(frame)

    started = time.monotonic()
    for _ in range(2):
        assert np.array_equal(scorer.score(model, frame), expected)
    assert time.monotonic() - started < 2.0  # two reads cut at 0.2 s each, no retries
    assert scorer.fallbacks == {"timeout": 2} and len(hanging.connections) == 2
    assert hanging.heads[0].startswith(f"POST /endpoints/{ENDPOINT}/invocations HTTP/1.1".encode())
    assert b"content-type: application/json" in hanging.heads[0].lower()

    # The circuit is open: in-process scores without touching the endpoint.
    started = time.monotonic()
    assert np.array_equal(scorer.score(model, frame), expected)
    assert time.monotonic() - started < 0.1
    assert scorer.fallbacks == {"timeout": 2, "circuit_open": 1} and len(hanging.connections) == 2

    time.sleep(1.1)  # after breaker_reset_s the endpoint is tried again
    assert np.array_equal(scorer.score(model, frame), expected)
    assert scorer.fallbacks["timeout"] == 3 and len(hanging.connections) == 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("failed (timeout" in m for m in messages) == 1, messages
    assert any("circuit scorer opened" in m for m in messages), messages
    scorer.close()


def test_an_unreachable_endpoint_is_an_error_answered_in_process(
    aws_credentials: None, model: PackagedRecommender
) -> None:
    scorer = make_scorer(f"sagemaker://{ENDPOINT}?region={REGION}&endpoint_url=http://127.0.0.1:{free_port()}")
    frame = candidates(seed=30)
    assert np.array_equal(scorer.score(model, frame), model.score(frame))
    assert scorer.fallbacks == {"error": 1}


def test_a_frame_without_the_model_columns_fails_like_in_process_scoring(aws: None, model: PackagedRecommender) -> None:
    frame = candidates(seed=40).drop(columns=["noise"])
    scorer = make_scorer(f"sagemaker://{ENDPOINT}?region={REGION}")
    with pytest.raises(KeyError, match="noise"):
        scorer.score(model, frame)
    assert not sent_requests()

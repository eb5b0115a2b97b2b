"""The prediction service end to end, on a real uvicorn process over loopback.

The small use case's pipeline (the `shop_outcome` fixture) is run once; this module copies
its lakehouse (Delta tables, MLflow registry, online store) and serves the copy, so that
moving the champion or writing the inference log leaves the shared fixture untouched.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pyarrow.parquet as pq
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from mlflow.tracking import MlflowClient
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from featurehouse.config import Settings
from featurehouse.serving.settings import plain_conf
from featurehouse.usecase import UseCase
from tests.helpers import PROJECT_ROOT, local_overrides, local_settings

NAME = "shop_orders"
SERVING = {
    "poll_interval": "1s",
    "max_batch": 50,
    "inference_log": {"flush_interval": "1s", "batch_rows": 1000},
}


@dataclass
class Service:
    url: str
    settings: Settings
    use_case: UseCase
    root: Path
    process: subprocess.Popen
    client: httpx.Client

    @property
    def model_name(self) -> str:
        return self.settings.model_name(NAME, self.use_case.model_name)

    def predict(self, entities: list[dict], **body: Any) -> httpx.Response:
        return self.client.post(
            f"/v1/use-cases/{NAME}/predict", json={"entities": entities, **body}
        )

    def champion_version(self) -> str:
        client = MlflowClient(self.settings.mlflow.tracking_uri, self.settings.mlflow.registry_uri)
        return str(client.get_model_version_by_alias(self.model_name, "champion").version)


def _start(cmd: list[str], env: dict[str, str], log_file: Path, url: str) -> subprocess.Popen:
    out = log_file.open("w")
    process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the service exited with {process.returncode}:\n{log_file.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    pytest.fail(f"the service did not start in time:\n{log_file.read_text()}")


@contextmanager
def served_copy(shop_project, root: Path, extra: dict | None = None) -> Iterator[Service]:
    """The shop use case's lakehouse copied under `root` (Delta tables, MLflow registry,
    online store) with `extra` settings on top, served by a uvicorn process of its own."""
    from featurehouse.config import deep_merge
    from featurehouse.serving.server import free_port

    settings, use_case = shop_project
    lake = root / "lake"
    shutil.copytree(settings.storage.root, lake)
    own = settings.use_cases[NAME].model_dump(by_alias=True, exclude={"name"})
    copy = local_settings(lake, **deep_merge({"use_cases": {NAME: own}}, extra or {}))
    overrides = plain_conf(
        deep_merge({**local_overrides(lake), "use_cases": {NAME: own}}, extra or {})
    )
    conf_dir = root / "conf"
    shutil.copytree(PROJECT_ROOT / "conf", conf_dir)
    local = yaml.safe_load((conf_dir / "local.yml").read_text())
    (conf_dir / "local.yml").write_text(yaml.safe_dump(deep_merge(local, overrides)))
    plugins = Path(importlib.import_module("shop_orders").__file__).parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(plugins), os.environ.get("PYTHONPATH", "")]),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        sys.executable, "-m", "featurehouse.serving", "--env", "local", "--conf-dir", str(conf_dir),
        "-u", NAME, "--port", str(port), "--serving", json.dumps(SERVING), "--log-level", "info",
    ]  # fmt: skip
    process = _start(cmd, env, root / "service.log", url)
    client = httpx.Client(base_url=url, timeout=30)
    try:
        yield Service(url, copy, use_case, lake, process, client)
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def service(shop_project, shop_outcome, tmp_path_factory):
    assert shop_outcome.scoring is not None, shop_outcome.stopped
    with served_copy(shop_project, tmp_path_factory.mktemp("served")) as running:
        yield running


def test_redis_as_the_online_store_serves_the_same_predictions(
    shop_project, shop_outcome, service, redis_address, tmp_path_factory
):
    """The same lakehouse materialized into a real redis-server, served from there."""
    from featurehouse import jobs

    redis = {
        "feast": {"online_store": {"type": "redis", "connection_string": f"{redis_address},db=9"}}
    }
    with served_copy(shop_project, tmp_path_factory.mktemp("served-redis"), redis) as on_redis:
        jobs.materialize(on_redis.settings, on_redis.use_case, full=True)
        from_redis = on_redis.predict(_entities()).json()
        from_sqlite = service.predict(_entities()).json()

    def answers(body: dict) -> list[dict]:  # the features' age moves on between two calls
        return [
            {k: v for k, v in p.items() if k != "feature_age_seconds"} for p in body["predictions"]
        ]

    assert on_redis.settings.feast.online_store.type == "redis"
    assert answers(from_redis) == answers(from_sqlite)
    assert all(p["status"] != "not found" for p in from_redis["predictions"])


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_the_compiled_model_predicts_what_sklearn_predicts(task):
    """Categories (known, unseen, None), missing numbers, a decision threshold: the
    compiled predictor equals the pipeline's own predict_proba / predict."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from sklearn.model_selection import FixedThresholdClassifier

    from featurehouse.serving.predictor import SklearnPredictor, compile_predictor
    from featurehouse.training.models import boosted_trees_classifier, boosted_trees_regressor
    from featurehouse.usecase import Classification, ModelInputs, Regression

    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(
        {
            "kind": rng.choice(["a", "b", "c", None], n),
            "model": rng.choice([f"m{i}" for i in range(12)], n),
            **{f"x{i}": rng.normal(size=n) for i in range(6)},
        }
    )
    frame.loc[rng.random(n) < 0.1, "x0"] = np.nan
    signal = frame.x0.fillna(0) + (frame.kind == "a") + 1.5 * frame.model.isin(["m1", "m3"])
    inputs = ModelInputs(
        numeric=tuple(f"x{i}" for i in range(6)),
        categorical=("kind", "model"),
        params={"max_iter": 40, "max_leaf_nodes": 15},
    )
    if task == "classification":
        spec = Classification("probability", "flag")
        labels = (signal + rng.normal(size=n) > 1).astype(int)
        model = FixedThresholdClassifier(boosted_trees_classifier(inputs), threshold=0.3)
    else:
        spec = Regression("forecast")
        labels = 3 * signal + frame.x1 + rng.normal(size=n)
        model = boosted_trees_regressor(inputs)
    model.fit(frame[inputs.columns], labels)
    categorical = {"kind", "model"}

    compiled = compile_predictor(model, spec, categorical)

    # The trees summed in sklearn's order: equal to the last bit.
    assert compiled.kind == "onnx-trees" and compiled.max_difference == 0.0
    rows = frame[inputs.columns].head(200).astype(object).where(frame.head(200).notna(), None)
    rows = rows.to_dict("records") + [{**rows.iloc[0].to_dict(), "model": "never seen"}]
    sklearn_predictor = SklearnPredictor(model, spec, inputs.columns, categorical)
    expected = sklearn_predictor.predict(rows)
    np.testing.assert_array_equal(compiled.predictor.predict(rows), expected)
    # Batch scoring's path: the same rows as an Arrow batch (nulls, an unseen category).
    batch = pa.RecordBatch.from_pylist(rows)
    np.testing.assert_array_equal(compiled.predictor.predict_batch(batch), expected)
    np.testing.assert_array_equal(sklearn_predictor.predict_batch(batch), expected)
    if task == "classification":
        assert compiled.threshold == 0.3


def _entities() -> list[dict]:
    from tests.integration.small_use_case import PRODUCTS, SHOPS

    return [{"shop": shop, "product": product} for shop in SHOPS for product in PRODUCTS]


def test_health_ready_and_the_served_champion(service):
    assert service.client.get("/health").json() == {"status": "ok"}
    ready = service.client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["use_cases"][NAME]["model_version"] == service.champion_version()
    listed = service.client.get("/v1/use-cases").json()["use_cases"][NAME]
    assert listed["keys"] == {"shop": "string", "product": "bigint"}
    assert listed["predictions"] == ["units_next_3d_forecast"]
    assert listed["model"]["predictor"] == "onnx-trees"  # the compiled path, not pandas


def test_one_and_many_entities_by_composite_key(service):
    single = service.predict([{"shop": "north", "product": 2}])
    assert single.status_code == 200, single.text
    body = single.json()
    assert body["model"] == {"name": service.model_name, "version": service.champion_version()}
    (answer,) = body["predictions"]
    assert (answer["shop"], answer["product"]) == ("north", 2)
    assert answer["status"].startswith("expired") or answer["status"] == "ok"  # 2024 data, 2d TTL
    assert answer["units_next_3d_forecast"] > 0
    assert answer["feature_age_seconds"] > 0 and answer["features_as_of"].startswith("2024-05-")
    assert single.headers["x-request-id"] == body["request_id"]

    many = service.predict(_entities()).json()["predictions"]
    assert [(a["shop"], a["product"]) for a in many] == [
        (e["shop"], e["product"]) for e in _entities()
    ]
    assert many[1]["units_next_3d_forecast"] == answer["units_next_3d_forecast"]


def test_the_prediction_equals_the_batch_prediction_at_the_same_time(service, spark):
    """The skew check (issue item 5): online features and the service's prediction equal
    the offline point-in-time features and the batch prediction, entity by entity."""
    from featurehouse import jobs
    from featurehouse.io import Lakehouse
    from featurehouse.serving.skew import check_skew

    lake = Lakehouse(spark, service.settings, NAME)
    version = service.champion_version()
    scored = lake.read("predictions").where(f"model_version = '{version}'")
    if scored.count() == 0:  # the champion moved since scoring (e.g. a retrain on drift)
        jobs.score(service.settings, service.use_case)

    report = check_skew(lake, service.settings, service.use_case, url=service.url, sample=10)

    assert report.ok, report.describe()
    assert report.entities == len(_entities()) and report.skipped == 0
    assert report.features_compared == 4 * report.entities
    assert report.predictions_compared == report.batch_compared == report.entities
    assert report.model_version == version


@pytest.mark.parametrize(
    ("entities", "field"),
    [
        ([{"shop": "north"}], "entities.0.product"),  # missing key
        ([{"shop": "north", "product": 1, "colour": "red"}], "entities.0.colour"),  # extra key
        ([{"shop": "north", "product": "one"}], "entities.0.product"),  # wrong type
        ([{"shop": "north", "product": 1.5}], "entities.0.product"),
        ([{"shop": 7, "product": 1}], "entities.0.shop"),
        ([{"shop": "north", "product": 2**63}], "entities.0.product"),  # beyond int64
        ([], "entities"),
    ],
)
def test_a_bad_key_is_422_naming_the_field(service, entities, field):
    response = service.predict(entities)

    assert response.status_code == 422
    body = response.json()
    assert field in body["message"]
    assert field in [e["field"] for e in body["errors"]]


def test_other_bad_requests_are_json_errors_with_a_message(service):
    unknown = service.client.post("/v1/use-cases/no_such_case/predict", json={"entities": []})
    assert unknown.status_code == 404
    assert "unknown use case 'no_such_case'" in unknown.json()["message"]

    too_many = service.predict([{"shop": "north", "product": i} for i in range(51)])
    assert too_many.status_code == 413
    assert "at most 50" in too_many.json()["message"]

    broken = service.client.post(
        f"/v1/use-cases/{NAME}/predict",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 422 and broken.json()["message"]

    wrong_method = service.client.get(f"/v1/use-cases/{NAME}/predict")
    assert wrong_method.status_code == 405 and wrong_method.json()["message"]


def test_an_entity_without_online_features_gets_a_status_not_an_error(service):
    response = service.predict(
        [{"shop": "nowhere", "product": 99}, {"shop": "south", "product": 3}]
    )

    assert response.status_code == 200
    unknown, known = response.json()["predictions"]
    assert unknown["status"] == "not found"
    assert unknown["units_next_3d_forecast"] is None and unknown["feature_age_seconds"] is None
    assert "no online features" in unknown["message"]
    assert known["units_next_3d_forecast"] is not None


def test_metrics_count_requests_errors_latency_and_the_model_version(service):
    service.predict([{"shop": "north", "product": 1}])
    service.predict([{"shop": "north"}])

    text = service.client.get("/metrics").text

    def value(sample: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith(sample + " "))
        return float(line.split()[-1])

    assert value(f'featurehouse_requests_total{{code="200",use_case="{NAME}"}}') >= 1
    assert value(f'featurehouse_request_errors_total{{code="422",use_case="{NAME}"}}') >= 1
    assert value(f'featurehouse_request_latency_seconds_count{{use_case="{NAME}"}}') >= 2
    assert f'featurehouse_request_latency_seconds_bucket{{le="0.002",use_case="{NAME}"}}' in text
    version = service.champion_version()
    assert value(
        f'featurehouse_model_version{{model="{service.model_name}",use_case="{NAME}"}}'
    ) == float(version)
    assert value(f'featurehouse_entities_total{{outcome="predicted",use_case="{NAME}"}}') >= 1


def test_performance_monitoring_reads_the_service_latency_from_its_metrics(service):
    from featurehouse.monitoring.performance import service_latency
    from featurehouse.serving.metrics import latency_summary

    for _ in range(5):
        service.predict([{"shop": "north", "product": 1}])
    summary = latency_summary(service.client.get("/metrics").text, NAME)

    assert summary.requests >= 5 and 0 < summary.p50_ms <= summary.p99_ms
    assert service_latency(service.url, NAME).startswith(f"{summary.requests:,d} requests,")
    assert service_latency(service.url, "no_such_use_case") == "no request answered yet"
    assert "unreachable" in service_latency("http://127.0.0.1:9", NAME)


def test_answered_requests_reach_the_inference_log_and_its_delta_table(service, spark):
    from featurehouse.io import Lakehouse
    from featurehouse.serving.inference_log import load_inference_log

    asked = [{"shop": "south", "product": 1}, {"shop": "nowhere", "product": 5}]
    response = service.client.post(
        f"/v1/use-cases/{NAME}/predict",
        json={"entities": asked},
        headers={"x-request-id": "log-check-1"},
    )
    answered = response.json()["predictions"]
    pending = service.root / "serving" / "inference_log" / NAME / "pending"
    rows: list[dict] = []
    deadline = time.monotonic() + 30
    while not rows and time.monotonic() < deadline:
        time.sleep(0.5)
        files = sorted(pending.glob("*.parquet")) if pending.is_dir() else []
        rows = [
            r
            for f in files
            for r in pq.read_table(f).to_pylist()
            if r["request_id"] == "log-check-1"
        ]
    assert len(rows) == 2, "the batch was not written within 30 s"
    first, second = sorted(rows, key=lambda r: r["entity_index"])
    assert (first["shop"], first["product"], second["status"]) == ("south", 1, "not found")
    assert first["units_next_3d_forecast"] == answered[0]["units_next_3d_forecast"]
    assert first["model_version"] == service.champion_version()
    assert first["units_lag_1d"] is not None and first["features_as_of"] is not None
    assert second["units_next_3d_forecast"] is None

    lake = Lakehouse(spark, service.settings, NAME)
    loaded = load_inference_log(lake, service.settings, service.use_case)
    again = load_inference_log(lake, service.settings, service.use_case)

    assert loaded.files >= 1 and loaded.inserted == loaded.rows >= 2
    assert again.files == 0
    table = lake.read("inference_log").where("request_id = 'log-check-1'")
    assert table.count() == 2
    assert not list(pending.glob("*.parquet"))


@pytest.fixture
def registry(service):
    """MLflow pointed at the copy's registry for the test, then back."""
    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(service.settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(service.settings.mlflow.registry_uri)
    try:
        yield MlflowClient()
    finally:
        mlflow.set_tracking_uri(before[0])
        mlflow.set_registry_uri(before[1])


def _constant_model_version(service, registry) -> str:
    """Registers a model that always forecasts 42 (same inputs as the champion)."""
    import pandas as pd
    from sklearn.dummy import DummyRegressor

    from featurehouse.training.evaluate import model_inputs

    columns = model_inputs(service.use_case, {}).columns
    model = DummyRegressor(strategy="constant", constant=42.0).fit(
        pd.DataFrame([[0.0] * len(columns)], columns=columns), [42.0]
    )
    experiment = registry.create_experiment(
        "serving-swap-test", artifact_location=(service.root / "swap-artifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=service.model_name
        )
    return str(info.registered_model_version)


def _wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail("the service did not pick up the registry's change in time")


def test_a_new_champion_is_picked_up_without_restart_or_failed_requests(service, registry):
    entity = [{"shop": "north", "product": 3}]
    first = service.champion_version()
    before = service.predict(entity).json()["predictions"][0]["units_next_3d_forecast"]
    constant = _constant_model_version(service, registry)
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def load() -> None:  # requests in flight through both swaps
        with httpx.Client(base_url=service.url, timeout=30) as client:
            while not stop.is_set():
                r = client.post(f"/v1/use-cases/{NAME}/predict", json={"entities": entity})
                seen.append((r.status_code, r.json().get("model", {}).get("version")))

    loader = threading.Thread(target=load)
    loader.start()
    try:
        registry.set_registered_model_alias(service.model_name, "champion", constant)

        def serves(version):
            body = service.predict(entity).json()
            return body if body.get("model", {}).get("version") == version else None

        swapped = _wait_for(lambda: serves(constant))
        assert swapped["predictions"][0]["units_next_3d_forecast"] == 42.0

        registry.set_registered_model_alias(service.model_name, "champion", first)  # rollback
        back = _wait_for(lambda: serves(first))
        assert back["predictions"][0]["units_next_3d_forecast"] == before
    finally:
        stop.set()
        loader.join()
    assert seen and {code for code, _ in seen} == {200}
    assert {version for _, version in seen} <= {first, constant}

    registry.delete_registered_model_alias(service.model_name, "champion")
    try:
        refused = _wait_for(lambda: (r := service.predict(entity)).status_code == 503 and r)
        assert "no 'champion' version" in refused.json()["message"]
        assert service.client.get("/ready").status_code == 503
    finally:
        registry.set_registered_model_alias(service.model_name, "champion", first)
    _wait_for(lambda: service.predict(entity).status_code == 200)
    swaps = [
        line for line in service.client.get("/metrics").text.splitlines()
        if line.startswith(f'featurehouse_model_swaps_total{{use_case="{NAME}"}}')
    ]  # fmt: skip
    assert swaps and float(swaps[0].split()[-1]) >= 3


def _integers_beyond_doubles(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_integers_beyond_doubles(v) for v in value.values())
    if isinstance(value, list):
        return any(_integers_beyond_doubles(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > 2**53


def test_fuzzing_the_openapi_schema_finds_no_server_error(service):
    """Requests generated from the OpenAPI schema (valid bodies, and invalid ones for the
    prediction endpoint), bounded at 50 per operation and kind: never a 5xx, every error
    is JSON with a message, every answer matches the documented responses."""
    api = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {f"/v1/use-cases/{NAME}/predict", "/ready"}
    seen: list[int] = []
    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        if operation.method.upper() == "POST":
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=50,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def call(case) -> None:
                response = case.call()
                seen.append(response.status_code)
                assert response.status_code < 500, response.text
                if response.status_code >= 400:
                    assert isinstance(response.json()["message"], str), response.text
                # Above 2**53 schemathesis spells some integers through doubles, which can
                # step past the int64 bound it means to stay within: those "valid" keys are
                # not, so only there is a refusal not held against the service.
                beyond = _integers_beyond_doubles(case.body)
                case.validate_response(
                    response, excluded_checks=[positive_data_acceptance] if beyond else None
                )

            call()
    assert 200 in seen and 422 in seen

"""Alerts reach a real webhook receiver on loopback, once each, and land in the alerts
table; a webhook that is down costs a log line, not the job; a feature table behind its
data raises one."""

from __future__ import annotations

import json
import logging
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from featurehouse.io import Lakehouse
from featurehouse.monitoring.alerts import Alert, raise_alerts
from featurehouse.monitoring.freshness import stale_feature_alerts
from featurehouse.usecase import (
    EVENT_TIMESTAMP,
    Column,
    Entity,
    Feature,
    FeatureTable,
    RawDataset,
    Source,
)
from tests.helpers import local_settings

USE_CASE = "predictive_maintenance"


@pytest.fixture
def receiver():
    """A webhook endpoint that keeps every JSON body it is sent."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the standard library's name)
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


ALERTS = [
    Alert(USE_CASE, "drift", "window ending 2024-03-31 00:00", "dataset drift: volt_mean_3h"),
    Alert(USE_CASE, "performance_drop", "version 3", "pr_auc 0.41 vs 0.66", "critical"),
]


def test_each_alert_is_posted_and_recorded_once(spark, tmp_path, receiver):
    url, received = receiver
    lake = Lakehouse(spark, local_settings(tmp_path / "lake"), USE_CASE)

    first = raise_alerts(lake, ALERTS, url)
    again = raise_alerts(lake, ALERTS, url)

    assert first == ALERTS and again == []
    assert [(body["kind"], body["severity"]) for body in received] == [
        ("drift", "warning"),
        ("performance_drop", "critical"),
    ]
    assert received[0]["text"] == "dataset drift: volt_mean_3h"
    rows = lake.read("alerts").collect()
    assert sorted(r["kind"] for r in rows) == ["drift", "performance_drop"]


def test_a_webhook_that_is_down_is_logged_and_the_alert_still_recorded(spark, tmp_path, caplog):
    lake = Lakehouse(spark, local_settings(tmp_path / "lake"), USE_CASE)

    with caplog.at_level(logging.WARNING, logger="featurehouse.monitoring.alerts"):
        new = raise_alerts(lake, ALERTS[:1], "http://127.0.0.1:9/closed")

    assert new == ALERTS[:1]
    assert lake.read("alerts").count() == 1
    assert "alert webhook http://127.0.0.1:9/closed failed" in caplog.text
    assert "ALERT predictive_maintenance [drift]" in caplog.text


def test_a_feature_table_behind_its_data_raises_one_stale_features_alert(spark, tmp_path):
    """Sales landed up to June 5th, the daily features stopped at June 1st (the feature job
    did not run): one alert, once; when the table catches up, none."""
    sales = RawDataset(
        "sales",
        "sales*.csv",
        (Column("store_id", "bigint"), Column("day", "timestamp"), Column("units", "bigint")),
        keys=("store_id", "day"),
        time="day",
    )
    daily = FeatureTable(
        name="store_daily",
        view_name="store_daily",
        description="Daily units per store",
        entity=Entity("store", {"store_id": "bigint"}),
        features=(Feature("units", "double", "Units sold on d"),),
        sources=(Source(sales),),
        build=lambda bronze: bronze["sales"],
        ttl=timedelta(days=2),
    )
    lake = Lakehouse(spark, local_settings(tmp_path / "lake", use_cases={"shop": {}}), "shop")
    days = [datetime(2024, 6, d) for d in range(1, 6)]
    lake.overwrite(
        spark.createDataFrame(
            [(1, d, 3) for d in days], "store_id bigint, day timestamp, units bigint"
        ),
        "sales",
    )
    lake.overwrite(
        spark.createDataFrame(
            [(1, days[0], 3.0)], f"store_id bigint, {EVENT_TIMESTAMP} timestamp, units double"
        ),
        "store_daily",
    )
    now = datetime(2024, 6, 6)

    alerts = stale_feature_alerts(lake, [daily], now, max_age=None)
    first, again = raise_alerts(lake, alerts, None), raise_alerts(lake, alerts, None)

    assert [a.kind for a in first] == ["stale_features"] and again == []
    assert "is 96.0 h behind its sources" in first[0].message
    caught_up = spark.createDataFrame(
        [(1, days[-1], 3.0)], f"store_id bigint, {EVENT_TIMESTAMP} timestamp, units double"
    )
    lake.overwrite(caught_up, "store_daily")
    assert stale_feature_alerts(lake, [daily], now, max_age=None) == []

"""The test of the design: a use case written outside the package, in a module of its own,
runs end to end with no change to any framework module. It follows the README's "Adding a
use case" recipe: one module of declarations plus its settings, nothing else.

Its shape differs from the shipped use cases on purpose: a composite key with a string
part, a daily grain, a semicolon-separated raw file, one feature table, a sum label.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyspark.sql.functions as F
import pytest

from featurehouse import jobs
from featurehouse.discovery import load_use_case, load_use_cases
from featurehouse.errors import DeclarationError
from featurehouse.io import Lakehouse
from tests.helpers import local_settings

MODULE = textwrap.dedent(
    '''
    """A small shop's daily orders: how many units of a product will a shop sell in 3 days?"""

    from datetime import timedelta

    import pyspark.sql.functions as F

    from featurehouse.features.windows import at_lag, trailing
    from featurehouse.training.models import boosted_trees_regressor
    from featurehouse.usecase import (
        EVENT_TIMESTAMP, Column, Csv, Entity, Feature, FeatureTable, Label, RawDataset,
        Regression, Source, Spine, UseCase,
    )

    DAY = timedelta(days=1)
    KEYS = ("shop", "product")
    SHOP_PRODUCT = Entity("shop_product", {"shop": "string", "product": "bigint"})
    ORDERS = RawDataset(
        "orders",
        "orders_*.csv",
        (
            Column("day", "timestamp", format="dd.MM.yyyy"),
            Column("shop", "string"),
            Column("product", "bigint"),
            Column("units", "bigint", min=0),
        ),
        keys=("shop", "product", "day"),
        time="day",
        format=Csv(delimiter=";"),
    )


    def with_order_features(orders):
        units = F.col("units").cast("double")
        return orders.select(
            "shop",
            F.col("product").cast("bigint").alias("product"),
            F.col("day").alias(EVENT_TIMESTAMP),
            F.max(units).over(at_lag(KEYS, "day", DAY)).alias("units_lag_1d"),
            F.avg(units).over(trailing(KEYS, "day", 7 * DAY)).alias("units_mean_7d"),
            F.sum(units).over(trailing(KEYS, "day", 3 * DAY, skip=4 * DAY)).alias("units_next_3d_week_ago"),
            F.dayofweek("day").cast("bigint").alias("day_of_week"),
        )


    DAILY = FeatureTable(
        name="shop_product_daily",
        view_name="shop_product_daily",
        description="Daily order history per shop and product.",
        entity=SHOP_PRODUCT,
        features=(
            Feature("units_lag_1d", "double", "Units ordered the day before"),
            Feature("units_mean_7d", "double", "Mean daily units over the last 7 days"),
            Feature("units_next_3d_week_ago", "double", "Units over the same 3 days a week ago"),
            Feature("day_of_week", "bigint", "Day of the week (1 = Sunday)"),
        ),
        sources=(Source(ORDERS, history=7 * DAY),),
        build=lambda bronze: with_order_features(bronze["orders"]),
        ttl=2 * DAY,
    )

    USE_CASE = UseCase(
        name="shop_orders",
        description="How many units of a product will a shop sell in the next 3 days?",
        entity=SHOP_PRODUCT,
        datasets=(ORDERS,),
        tables=(DAILY,),
        spine=Spine(ORDERS, every=DAY),
        label=Label("units_next_3d", "sum", ORDERS, horizon=3 * DAY, column="units"),
        task=Regression(prediction="units_next_3d_forecast", baseline="units_next_3d_week_ago"),
        model=boosted_trees_regressor,
        model_name="shop_units",
    )
    '''
)
SHOPS, PRODUCTS, DAYS = ("north", "south"), (1, 2, 3), 150
START = datetime(2024, 1, 1)


def write_orders(folder) -> None:
    """Daily orders with a weekly rhythm per shop and product, in two monthly files."""
    rng = np.random.default_rng(3)
    rows = []
    for shop_index, shop in enumerate(SHOPS):
        for product in PRODUCTS:
            level = 5 + 4 * product + 3 * shop_index
            for day in range(DAYS):
                date = START + timedelta(days=day)
                weekly = 1.6 if date.weekday() >= 5 else 1.0
                rows.append((f"{date:%d.%m.%Y}", shop, product, rng.poisson(level * weekly)))
    frame = pd.DataFrame(rows, columns=["day", "shop", "product", "units"])
    folder.mkdir(parents=True, exist_ok=True)
    half = len(frame) // 2
    frame.iloc[:half].to_csv(folder / "orders_1.csv", sep=";", index=False)
    frame.iloc[half:].to_csv(folder / "orders_2.csv", sep=";", index=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The use case's module on the path, and settings that point at it (the files a person
    writes: the module and conf/use_cases/shop_orders.yml)."""
    root = tmp_path_factory.mktemp("new-use-case")
    (root / "plugins").mkdir()
    (root / "plugins" / "shop_orders.py").write_text(MODULE)
    write_orders(root / "raw")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root / "plugins"))
        settings = local_settings(
            root / "lake",
            use_cases={
                "shop_orders": {
                    "declaration": "shop_orders:USE_CASE",
                    "raw_dir": str(root / "raw"),
                    "model": {"max_iter": 60, "learning_rate": 0.1, "random_state": 1},
                    "training": {"promotion_metric": "mae"},
                    "drift": {"window": "14d"},
                }
            },
        )
        yield settings, load_use_case(settings, "shop_orders")


@pytest.fixture(scope="module")
def outcome(spark, project):
    settings, use_case = project
    return jobs.run_pipeline(settings, use_case, step=lambda _: None)


def test_it_is_found_through_its_settings_beside_the_shipped_ones(project):
    settings, use_case = project
    found = load_use_cases(settings)
    assert found["shop_orders"] is use_case
    assert {"predictive_maintenance", "demand_forecasting"} <= set(found)


def test_its_raw_files_land_in_bronze_with_a_composite_key(spark, project, outcome):
    settings, _ = project
    lake = Lakehouse(spark, settings, "shop_orders")
    (report,) = outcome.ingest

    assert (report.rows_read, report.accepted, report.quarantined) == (900, 900, 0)
    assert lake.read("orders").select("shop", "product").distinct().count() == 6
    first = lake.read("orders").agg(F.min("day")).first()[0]
    assert first == START


def test_it_trains_registers_scores_monitors_and_serves(spark, project, outcome):
    settings, use_case = project
    lake = Lakehouse(spark, settings, "shop_orders")
    result = outcome.training[0]

    assert result.model.name == "shop_orders.shop_units"
    assert result.promoted and result.test_metrics["rows"] > 0
    assert result.test_metrics["mae"] < result.baseline_metrics["mae"]
    predictions = lake.read("predictions").collect()
    assert len(predictions) == 6
    assert all(r["units_next_3d_forecast"] >= 0 for r in predictions)
    drift = {r["column"] for r in lake.read("drift_metrics").collect()}
    assert drift == {*(f.name for f in use_case.features), "units_next_3d_forecast"}
    assert outcome.online_entity == {"shop": "north", "product": 1}
    newest = (
        lake.read("shop_product_daily")
        .where((F.col("shop") == "north") & (F.col("product") == 1))
        .orderBy(F.col("event_timestamp").desc())
        .first()
    )
    assert outcome.online["units_mean_7d"][0] == pytest.approx(newest["units_mean_7d"])


def test_a_declaration_that_names_an_unknown_column_fails_before_anything_runs(tmp_path):
    """One message naming the use case, the file and the field."""
    broken = MODULE.replace('keys=("shop", "product", "day")', 'keys=("shop", "sku", "day")')
    (tmp_path / "broken_orders.py").write_text(broken)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(tmp_path))
        settings = local_settings(
            tmp_path / "lake", use_cases={"shop_orders": {"declaration": "broken_orders:USE_CASE"}}
        )
        with pytest.raises(DeclarationError) as error:
            load_use_case(settings, "shop_orders")

    message = str(error.value)
    assert message.startswith("use case 'shop_orders' (")
    assert "broken_orders.py:" in message
    assert "data set 'orders': key 'sku' is not one of its columns" in message


SHOP_TABLE = textwrap.dedent(
    """
    def with_shop_totals(orders):
        return orders.groupBy("shop", F.col("day").alias(EVENT_TIMESTAMP)).agg(
            F.sum("units").cast("double").alias("shop_units")
        )


    SHOP_DAILY = FeatureTable(
        name="shop_daily",
        view_name="shop_daily",
        description="All products' units per shop and day.",
        entity=SHOP_PRODUCT,
        keys=("shop",),
        features=(Feature("shop_units", "double", "Units of the shop's products that day"),),
        sources=(Source(ORDERS),),
        build=lambda bronze: with_shop_totals(bronze["orders"]),
        ttl=2 * DAY,
    )


    """
)


def extended_module() -> str:
    """The use case's module after following the recipes: one feature more in its table,
    and a second table keyed by the shop alone."""
    edits = {
        'Feature("day_of_week", "bigint", "Day of the week (1 = Sunday)"),': (
            'Feature("day_of_week", "bigint", "Day of the week (1 = Sunday)"),'
            ' Feature("units_max_7d", "double", "Most units on a day of the last 7 days"),'
        ),
        'F.dayofweek("day").cast("bigint").alias("day_of_week"),': (
            'F.dayofweek("day").cast("bigint").alias("day_of_week"),'
            ' F.max(units).over(trailing(KEYS, "day", 7 * DAY)).alias("units_max_7d"),'
        ),
        "\nUSE_CASE = UseCase(": SHOP_TABLE + "USE_CASE = UseCase(",
        "tables=(DAILY,),": "tables=(DAILY, SHOP_DAILY),",
    }
    text = MODULE
    for old, new in edits.items():
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def test_the_feature_recipes_need_only_the_declarations(spark, project, outcome, tmp_path):
    """README "Adding a feature": a new feature in an existing table and a new table (keyed
    by part of the composite key) change the use case's module and nothing else."""
    settings, _ = project
    (tmp_path / "shop_orders_v2.py").write_text(extended_module())
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(tmp_path))
        extended = settings.model_copy(
            update={
                "use_cases": {
                    **settings.use_cases,
                    "shop_orders": settings.use_cases["shop_orders"].model_copy(
                        update={"declaration": "shop_orders_v2:USE_CASE"}
                    ),
                }
            }
        )
        use_case = load_use_case(extended, "shop_orders")
        runs = {run.table_key: run for run in jobs.features(extended, use_case)}
        views = jobs.apply(extended, use_case)
        training = jobs.train(extended, use_case)

    lake = Lakehouse(spark, extended, "shop_orders")
    assert runs["shop_product_daily"].mode == "full"
    assert runs["shop_product_daily"].reason == "the table's schema differs from its declaration"
    assert "units_max_7d" in lake.read("shop_product_daily").columns
    assert lake.read("shop_daily").count() == len(SHOPS) * DAYS
    assert views == ["shop_product_daily", "shop_daily"]
    spec = mlflow_features(extended, training.run_id)
    assert {"shop_daily:shop_units", "shop_product_daily:units_max_7d"} <= set(spec)


def mlflow_features(settings, run_id: str) -> list[str]:
    import mlflow

    from featurehouse.training.registry import configure_mlflow

    configure_mlflow(settings)
    return mlflow.artifacts.load_dict(f"runs:/{run_id}/features.json")["feature_references"]


@pytest.mark.parametrize(
    ("setting", "claimed"),
    [
        ({"schema": "demand_forecasting"}, "the table 'demand_forecasting.quarantine'"),
        ({"feature_service": "demand_forecasting"}, "the Feast feature service"),
    ],
)
def test_two_use_cases_may_not_claim_the_same_names(project, tmp_path, setting, claimed):
    clashing = local_settings(
        tmp_path, use_cases={"shop_orders": {"declaration": "shop_orders:USE_CASE", **setting}}
    )

    with pytest.raises(DeclarationError) as error:
        load_use_cases(clashing)

    assert str(error.value).startswith("use cases demand_forecasting and shop_orders both claim")
    assert claimed in str(error.value)

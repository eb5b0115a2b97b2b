"""The test of the design: a use case written outside the package, in a module of its own,
runs end to end with no change to any framework module. It follows the README's "Adding a
use case" recipe: one module of declarations plus its settings, nothing else.

Its shape differs from the shipped use cases on purpose: a composite key with a string
part, a daily grain, a semicolon-separated raw file, one feature table, a sum label.
"""

from __future__ import annotations

import shutil
import textwrap

import pyspark.sql.functions as F
import pytest

from featurehouse import jobs
from featurehouse.discovery import load_use_case, load_use_cases
from featurehouse.errors import DeclarationError
from featurehouse.io import Lakehouse
from tests.helpers import local_settings
from tests.integration.small_use_case import DAYS, MODULE, SHOPS, START


def test_it_is_found_through_its_settings_beside_the_shipped_ones(shop_project):
    settings, use_case = shop_project
    found = load_use_cases(settings)
    assert found["shop_orders"] is use_case
    assert {"predictive_maintenance", "demand_forecasting"} <= set(found)


def test_its_raw_files_land_in_bronze_with_a_composite_key(spark, shop_project, shop_outcome):
    settings, _ = shop_project
    lake = Lakehouse(spark, settings, "shop_orders")
    (report,) = shop_outcome.ingest

    assert (report.rows_read, report.accepted, report.quarantined) == (901, 900, 1)
    assert report.quarantine_reasons == {"units below 0": 1}
    assert lake.read("orders").select("shop", "product").distinct().count() == 6
    first = lake.read("orders").agg(F.min("day")).first()[0]
    assert first == START


def test_it_trains_registers_scores_monitors_and_serves(spark, shop_project, shop_outcome):
    settings, use_case = shop_project
    lake = Lakehouse(spark, settings, "shop_orders")
    result = shop_outcome.training[0]

    assert result.model.name == "shop_orders.shop_units"
    assert shop_outcome.validation[0].promoted and result.test_metrics["rows"] > 0
    assert result.test_metrics["mae"] < result.baseline_metrics["mae"]
    predictions = lake.read("predictions").collect()
    assert len(predictions) == 6
    assert all(r["units_next_3d_forecast"] >= 0 for r in predictions)
    drift = {r["column"] for r in lake.read("drift_metrics").collect()}
    assert drift == {*(f.name for f in use_case.features), "units_next_3d_forecast"}
    assert shop_outcome.online_entity == {"shop": "north", "product": 1}
    newest = (
        lake.read("shop_product_daily")
        .where((F.col("shop") == "north") & (F.col("product") == 1))
        .orderBy(F.col("event_timestamp").desc())
        .first()
    )
    assert shop_outcome.online["units_mean_7d"][0] == pytest.approx(newest["units_mean_7d"])


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


def test_the_feature_recipes_need_only_the_declarations(
    spark, shop_project, shop_outcome, tmp_path
):
    """README "Adding a feature": a new feature in an existing table and a new table (keyed
    by part of the composite key) change the use case's module and nothing else. Run on a
    copy of the small use case's lakehouse, so the other tests keep theirs as it was."""
    settings, _ = shop_project
    shutil.copytree(settings.storage.root, tmp_path / "lake")
    (tmp_path / "shop_orders_v2.py").write_text(extended_module())
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(tmp_path))
        own = settings.use_cases["shop_orders"].model_dump(by_alias=True, exclude={"name"})
        extended = local_settings(
            tmp_path / "lake",
            use_cases={
                "shop_orders": {
                    **own,
                    "raw_dir": str(own["raw_dir"]),
                    "declaration": "shop_orders_v2:USE_CASE",
                }
            },
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
def test_two_use_cases_may_not_claim_the_same_names(shop_project, tmp_path, setting, claimed):
    clashing = local_settings(
        tmp_path, use_cases={"shop_orders": {"declaration": "shop_orders:USE_CASE", **setting}}
    )

    with pytest.raises(DeclarationError) as error:
        load_use_cases(clashing)

    assert str(error.value).startswith("use cases demand_forecasting and shop_orders both claim")
    assert claimed in str(error.value)

"""A small use case written outside the package, as a person would write it: a shop's daily
orders. Shared by the tests of the design (test_new_use_case.py) and of the model's life
in the registry (test_model_lifecycle.py).

Its shape differs from the shipped use cases on purpose: a composite key with a string
part, a daily grain, a semicolon-separated raw file, one feature table, a sum label.
"""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

MODULE = textwrap.dedent(
    '''
    """A small shop's daily orders: how many units of a product will a shop sell in 3 days?"""

    from datetime import timedelta

    import pyspark.sql.functions as F

    from featurehouse.features.windows import at_lag, trailing
    from featurehouse.training.models import boosted_trees_regressor
    from featurehouse.usecase import (
        EVENT_TIMESTAMP, Candidate, Column, Csv, Entity, Feature, FeatureTable, Label,
        RawDataset, Regression, Source, Spine, UseCase,
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
        candidates=(Candidate("boosted_trees", boosted_trees_regressor, {"learning_rate": (0.05, 0.1)}),),
        model_name="shop_units",
    )
    '''
)
SHOPS, PRODUCTS, DAYS = ("north", "south"), (1, 2, 3), 150
START = datetime(2024, 1, 1)


def write_orders(folder) -> None:
    """Daily orders with a weekly rhythm per shop and product, in two files; the second
    also holds one row a check refuses (negative units), as real files do."""
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
    bad = pd.DataFrame([(f"{START + timedelta(days=DAYS - 1):%d.%m.%Y}", "north", 9, -2)])
    pd.concat([frame.iloc[half:], bad.set_axis(frame.columns, axis=1)]).to_csv(
        folder / "orders_2.csv", sep=";", index=False
    )

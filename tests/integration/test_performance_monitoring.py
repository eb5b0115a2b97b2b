"""Performance monitoring when the labels arrive late: the small use case's predictions
wait for their 3-day horizon, then are judged against the orders that came in, beside the
model's own test metrics. Run on a copy of its lakehouse and raw folder."""

from __future__ import annotations

import shutil
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from featurehouse import jobs
from featurehouse.io import Lakehouse
from tests.helpers import local_settings
from tests.integration.small_use_case import DAYS, PRODUCTS, SHOPS, START

NAME = "shop_orders"


@pytest.fixture(scope="module")
def copied(shop_project, shop_outcome, tmp_path_factory):
    settings, use_case = shop_project
    root = tmp_path_factory.mktemp("performance")
    shutil.copytree(settings.storage.root, root / "lake")
    own = settings.use_cases[NAME].model_dump(by_alias=True, exclude={"name"})
    shutil.copytree(own["raw_dir"], root / "raw")
    own["raw_dir"] = str(root / "raw")
    return local_settings(root / "lake", use_cases={NAME: own}), use_case, root / "raw"


def late_orders() -> pd.DataFrame:
    """A week of orders after the last scored day: the labels of its predictions."""
    rng = np.random.default_rng(11)
    rows = [
        (START + timedelta(days=day), shop, product, int(rng.poisson(8)))
        for day in range(DAYS, DAYS + 7)
        for shop in SHOPS
        for product in PRODUCTS
    ]
    return pd.DataFrame(rows, columns=["day", "shop", "product", "units"])


def test_predictions_wait_for_their_labels_then_are_judged_against_them(spark, copied):
    settings, use_case, raw = copied
    lake = Lakehouse(spark, settings, NAME)

    waiting = jobs.performance(settings, use_case)

    assert waiting.labelled == 0 and waiting.pending == 6
    assert "no labelled predictions yet (6 awaiting" in waiting.verdict

    orders = late_orders()
    written = orders.assign(day=orders["day"].dt.strftime("%d.%m.%Y"))
    written.to_csv(raw / "orders_3.csv", sep=";", index=False)
    jobs.ingest(settings, use_case)
    judged = jobs.performance(settings, use_case)

    assert (judged.labelled, judged.pending) == (6, 0)
    (window,) = judged.windows
    predictions = lake.read("predictions").toPandas()
    scored_at = predictions["event_timestamp"].iloc[0]
    # The label is (t, t + 3 days]: the three days after the scored day.
    horizon = orders[(orders["day"] > scored_at) & (orders["day"] <= scored_at + timedelta(days=3))]
    truth = horizon.groupby(["shop", "product"])["units"].sum().rename("truth")
    both = predictions.join(truth, on=["shop", "product"])
    errors = both["truth"] - both["units_next_3d_forecast"]
    assert window["rows"] == 6
    assert window["mae"] == pytest.approx(errors.abs().mean())
    assert window["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert window["model_version"] == predictions["model_version"].iloc[0]
    metric = judged.metric
    assert window[f"test_{metric}"] is not None
    assert window["change"] == pytest.approx(window[f"test_{metric}"] - window[metric])

    jobs.performance(settings, use_case)
    assert lake.read("performance").count() == 1  # a rerun replaces its own row

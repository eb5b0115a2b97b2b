"""The retrain gate's decision: drift and a performance drop count only where the use
case's settings retrain on them."""

import pytest

from featurehouse.config import load_settings
from featurehouse.monitoring.gate import decide

DROP = "version 2, window from 2024-05-06: rmse 12.1 vs 8.0 on its test window"


def settings_with(*, on_drift: bool, on_drop: bool):
    base = load_settings("local").use_case("demand_forecasting")
    return base.model_copy(
        update={
            "drift": base.drift.model_copy(update={"retrain_on_drift": on_drift}),
            "performance": base.performance.model_copy(update={"retrain_on_drop": on_drop}),
        }
    )


@pytest.mark.parametrize(
    ("drifted", "dropped", "on_drift", "on_drop", "reasons"),
    [
        (False, [], True, True, []),
        (True, [], True, True, ["dataset drift against the training baseline"]),
        (True, [], False, True, []),
        (False, [DROP], True, True, [f"performance drop: {DROP}"]),
        (False, [DROP, DROP], True, False, []),
        (
            True,
            [DROP, DROP],
            True,
            True,
            [
                "dataset drift against the training baseline",
                f"performance drop: {DROP} (and 1 more)",
            ],
        ),
    ],
)
def test_retraining_follows_the_signals_the_settings_allow(
    drifted, dropped, on_drift, on_drop, reasons
):
    decision = decide("shop", drifted, dropped, settings_with(on_drift=on_drift, on_drop=on_drop))

    assert decision.reasons == reasons
    assert decision.retrain == bool(reasons)
    assert decision.describe().startswith("shop: retrain" if reasons else "shop: no retraining")

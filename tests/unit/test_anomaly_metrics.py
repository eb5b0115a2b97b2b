"""Runs, events and NAB-style window metrics on hand-built frames on a 5-minute grid.

Each entity is written as strings of 0/1, one character per grid step, e.g. label "0110"
and flag "0100": the expected numbers are counted by hand from those strings.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from featurehouse.training.anomaly_metrics import (
    alarm_metrics,
    anomaly_events,
    runs,
    window_metrics,
)

T0 = pd.Timestamp("2024-03-01 00:00")
STEP = pd.Timedelta(minutes=5)
KEYS = ("series",)
RUN_COLUMNS = ["series", "start", "end", "rows"]


def at(step: int) -> pd.Timestamp:
    return T0 + step * STEP


def bits(text: str) -> list[int]:
    return [int(c) for c in text]


def series(
    key: str,
    flag: str,
    label: str | None = None,
    *,
    steps: list[int] | None = None,
    score: list[float] | None = None,
) -> pd.DataFrame:
    """One entity's rows, one per character of `flag`, at `steps` (default 0, 1, 2, ...)."""
    steps = list(range(len(flag))) if steps is None else steps
    # Explicit dtypes so that an empty entity still has a datetime and integer columns.
    columns = {
        "series": pd.Series([key] * len(steps), dtype=object),
        "time": pd.Series([at(s) for s in steps], dtype="datetime64[ns]"),
        "flag": pd.Series(bits(flag), dtype="int64"),
    }
    if label is not None:
        columns["label"] = pd.Series(bits(label), dtype="int64")
    if score is not None:
        columns["score"] = score
    return pd.DataFrame(columns)


def shuffled(*parts: pd.DataFrame) -> pd.DataFrame:
    """The entities' rows interleaved in a fixed random order, with a scrambled index."""
    return pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=7)


def expected_runs(rows: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "series": pd.Series([r[0] for r in rows], dtype=object),
            "start": pd.Series([at(r[1]) for r in rows], dtype="datetime64[ns]"),
            "end": pd.Series([at(r[2]) for r in rows], dtype="datetime64[ns]"),
            "rows": pd.Series([r[3] for r in rows], dtype="int64"),
        }
    )


def metrics(frame: pd.DataFrame, **kwargs) -> dict[str, float]:
    return window_metrics(frame, KEYS, "time", "label", "flag", **kwargs)


# --- runs -------------------------------------------------------------------------------


def test_runs_of_interleaved_unsorted_entities():
    frame = shuffled(series("b", "1100001"), series("a", "0110111"))
    before = frame.copy()

    result = runs(frame, KEYS, "time", "flag")

    expected = expected_runs(
        [
            ("a", 1, 2, 2),  # a: "0110111" -> steps 1-2
            ("a", 4, 6, 3),  #                 and steps 4-6
            ("b", 0, 1, 2),  # b: "1100001" -> steps 0-1
            ("b", 6, 6, 1),  #                 and step 6 alone
        ]
    )
    pd.testing.assert_frame_equal(result, expected)
    pd.testing.assert_frame_equal(frame, before)  # the input, index order included, untouched


def test_runs_do_not_continue_from_one_entity_into_the_next():
    # Sorted, a's last row (flagged) sits right before b's first row (flagged).
    frame = shuffled(series("a", "0011"), series("b", "1100"))

    result = runs(frame, KEYS, "time", "flag")

    expected = expected_runs([("a", 2, 3, 2), ("b", 0, 1, 2)])  # 2 runs, not one of 4 rows
    pd.testing.assert_frame_equal(result, expected)


def test_max_gap_splits_a_run_across_a_hole_in_the_data():
    # Steps 3, 4 and 5 are missing: 20 minutes between step 2 and step 6.
    frame = series("a", "11111", steps=[0, 1, 2, 6, 7])

    whole = runs(frame, KEYS, "time", "flag")
    split = runs(frame, KEYS, "time", "flag", max_gap=pd.Timedelta(minutes=5))
    at_limit = runs(frame, KEYS, "time", "flag", max_gap=pd.Timedelta(minutes=20))

    # No max_gap: no unflagged row between, so one run of all 5 rows.
    pd.testing.assert_frame_equal(whole, expected_runs([("a", 0, 7, 5)]))
    # 20 min > 5 min: steps 0-2 (3 rows) and steps 6-7 (2 rows).
    pd.testing.assert_frame_equal(split, expected_runs([("a", 0, 2, 3), ("a", 6, 7, 2)]))
    # 20 min is "at most max_gap apart": still one run of 5 rows.
    pd.testing.assert_frame_equal(at_limit, expected_runs([("a", 0, 7, 5)]))


def test_runs_with_composite_keys():
    # Sensor "x" exists at two sites: with both key columns they are two entities.
    frame = pd.concat(
        [
            series("x", "0110").assign(site="s1"),
            series("x", "1001").assign(site="s2"),
        ],
        ignore_index=True,
    ).rename(columns={"series": "sensor"})

    result = runs(frame.iloc[::-1], ("site", "sensor"), "time", "flag")

    assert list(result.columns) == ["site", "sensor", "start", "end", "rows"]
    assert result[["site", "sensor"]].values.tolist() == [
        ["s1", "x"],  # s1: "0110" -> steps 1-2
        ["s2", "x"],  # s2: "1001" -> step 0
        ["s2", "x"],  #               and step 3
    ]
    assert result["start"].tolist() == [at(1), at(0), at(3)]
    assert result["rows"].tolist() == [2, 1, 1]


@pytest.mark.parametrize(
    "frame",
    [series("a", "0000"), series("a", "")],
    ids=["no-flags", "empty"],
)
def test_runs_without_flags_is_empty_with_typed_columns(frame):
    result = runs(frame, KEYS, "time", "flag")

    assert result.empty
    assert list(result.columns) == RUN_COLUMNS
    assert result["start"].dtype == result["end"].dtype == frame["time"].dtype
    assert result["rows"].dtype == np.int64


def test_runs_refuse_a_column_that_is_not_zero_one():
    frame = series("a", "0110").assign(flag=[0.0, 0.7, 1.0, 0.0])

    with pytest.raises(ValueError, match="only 0 and 1"):
        runs(frame, KEYS, "time", "flag")


# --- anomaly_events ---------------------------------------------------------------------


def test_events_carry_their_peak_score_and_time():
    frame = shuffled(
        #         steps:  0    1    2    3    4    5
        series("a", "011011", score=[0.1, 0.8, 0.8, 0.2, 0.3, 0.9]),
        series("b", "110000", score=[np.nan, np.nan, 0.5, 0.1, 0.1, 0.1]),
    )

    events = anomaly_events(frame, KEYS, "time", "flag", "score")

    assert list(events.columns) == [*RUN_COLUMNS, "peak_score", "peak_time"]
    assert events["rows"].tolist() == [2, 2, 2]  # a: steps 1-2, 4-5; b: steps 0-1
    assert events["peak_score"].iloc[0] == 0.8  # a steps 1-2: 0.8 and 0.8
    assert events["peak_time"].iloc[0] == at(1)  # tie: the first, step 1
    assert events["peak_score"].iloc[1] == 0.9  # a steps 4-5: 0.3, 0.9
    assert events["peak_time"].iloc[1] == at(5)  # the 0.9 at step 5
    assert math.isnan(events["peak_score"].iloc[2])  # b steps 0-1: both scores missing
    assert events["peak_time"].iloc[2] is pd.NaT
    assert events["peak_time"].dtype == frame["time"].dtype


def test_events_of_a_frame_without_flags():
    events = anomaly_events(
        series("a", "000", score=[0.1, 0.2, 0.3]), KEYS, "time", "flag", "score"
    )

    assert events.empty
    assert list(events.columns) == [*RUN_COLUMNS, "peak_score", "peak_time"]
    assert events["peak_score"].dtype == np.float64
    assert events["peak_time"].dtype == "datetime64[ns]"


# --- window_metrics ---------------------------------------------------------------------


def test_window_metrics_over_interleaved_unsorted_entities():
    frame = shuffled(
        # a: windows at the very start (0-1) and end (8-9), both hit; the flag at 4 is alone.
        series("a", flag="0100100001", label="1100000011"),
        # b: window 3-5, flag run 5-7 overlaps it in part.
        series("b", flag="0000011100", label="0001110000"),
        # c: no window at all; its flag run 2-3 is a false alarm.
        series("c", flag="0011000000", label="0000000000"),
    )
    before = frame.copy()

    result = metrics(frame)

    assert result["windows"] == 3.0  # a: 2, b: 1, c: 0
    assert result["windows_detected"] == 3.0  # a: step 1 and step 9, b: step 5
    assert result["window_recall"] == 1.0  # 3 / 3
    assert result["false_alarms"] == 2.0  # a: step 4, c: steps 2-3
    assert result["series_days"] == pytest.approx(135 / 1440)  # 3 entities x 9 steps x 5 min
    assert result["false_alarms_per_day"] == pytest.approx(2 / (135 / 1440))
    assert result["point_precision"] == pytest.approx(3 / 8)  # TP a1, a9, b5 of 3+3+2 flags
    assert result["point_recall"] == pytest.approx(3 / 7)  # of 4+3+0 labelled rows
    assert result["point_f1"] == pytest.approx(0.4)  # 2 TP / (flags + labels) = 6 / 15
    assert all(type(value) is float for value in result.values())
    pd.testing.assert_frame_equal(frame, before)


def test_windows_at_the_start_and_the_end_of_a_series():
    result = metrics(series("a", flag="1000000001", label="1100000011"))

    assert result["windows"] == 2.0  # steps 0-1 and 8-9
    assert result["windows_detected"] == 2.0  # flags on the first and on the last row
    assert result["false_alarms"] == 0.0  # each flag is inside a window


def test_partial_overlap_is_a_detection_not_a_false_alarm():
    # Window 2-4; flag run 4-6 shares only step 4 with it; flag run 0-2 only step 2.
    result = metrics(series("a", flag="1110111", label="0011100"))

    assert result["windows_detected"] == 1.0  # 1 window, hit at steps 2 and 4
    assert result["false_alarms"] == 0.0  # both runs hold a labelled row


def test_one_long_flag_run_detects_two_windows():
    result = metrics(series("a", flag="0111110", label="0110110"))

    assert result["windows"] == 2.0  # steps 1-2 and 4-5
    assert result["windows_detected"] == 2.0  # run 1-5 covers both
    assert result["window_recall"] == 1.0  # 2 / 2
    assert result["false_alarms"] == 0.0  # the only run holds labelled rows
    assert result["point_precision"] == pytest.approx(4 / 5)  # step 3 flagged, not labelled


def test_flag_run_just_before_a_window_is_a_false_alarm():
    # Flag run 0-1 ends one step before window 2-3: adjacent is not inside.
    result = metrics(series("a", flag="1100000", label="0011000"))

    assert result["windows_detected"] == 0.0  # no flag in steps 2-3
    assert result["window_recall"] == 0.0  # 0 / 1
    assert result["false_alarms"] == 1.0  # run 0-1 holds no labelled row


def test_no_flags_at_all():
    result = metrics(series("a", flag="0000000", label="0011000"))

    assert result["windows"] == 1.0  # steps 2-3
    assert result["window_recall"] == 0.0  # 0 / 1
    assert result["false_alarms"] == 0.0  # no runs of the flag
    assert result["false_alarms_per_day"] == 0.0  # 0 / (30 / 1440)
    assert result["point_precision"] == 0.0  # 0 / 0 flags, zero_division=0
    assert result["point_recall"] == 0.0  # 0 of 2 labelled rows
    assert result["point_f1"] == 0.0


def test_entity_without_windows():
    result = metrics(series("c", flag="0011000", label="0000000"))

    assert result["windows"] == 0.0
    assert result["windows_detected"] == 0.0
    assert math.isnan(result["window_recall"])  # no windows: undefined
    assert result["false_alarms"] == 1.0  # run 2-3
    assert result["series_days"] == pytest.approx(30 / 1440)  # 6 steps x 5 min
    assert result["point_precision"] == 0.0  # 0 TP of 2 flags
    assert result["point_f1"] == 0.0  # undefined -> 0


def test_series_days_sums_each_entity_span():
    frame = shuffled(
        # a: two rows one day (288 steps) apart; its only flag is a false alarm.
        series("a", flag="10", label="00", steps=[0, 288]),
        # b: 3 rows over 10 minutes; its only row in a window is flagged.
        series("b", flag="010", label="010"),
    )

    result = metrics(frame)

    assert result["series_days"] == pytest.approx(1 + 10 / 1440)  # 1 day + 10 min
    assert result["false_alarms"] == 1.0  # a step 0
    assert result["false_alarms_per_day"] == pytest.approx(1 / (1 + 10 / 1440))


def test_window_metrics_with_composite_keys():
    # Sensor "x" at site s1 has the window, at site s2 the alarm, over the same times.
    frame = pd.concat(
        [
            series("x", flag="0000", label="0110").assign(site="s1"),
            series("x", flag="0110", label="0000").assign(site="s2"),
        ],
        ignore_index=True,
    ).rename(columns={"series": "sensor"})

    result = window_metrics(frame.iloc[::-1], ("site", "sensor"), "time", "label", "flag")
    merged = window_metrics(frame, ("sensor",), "time", "label", "flag")

    assert result["windows"] == 1.0  # s1 steps 1-2
    assert result["windows_detected"] == 0.0  # s1 has no flag
    assert result["false_alarms"] == 1.0  # s2 steps 1-2, no label at s2
    assert result["series_days"] == pytest.approx(30 / 1440)  # 2 entities x 3 steps x 5 min
    # Keyed by sensor alone the two sites are one entity whose rows alternate s1, s2 at each
    # time: the labels split into windows at step 1 and step 2, each "hit" by s2's flag.
    assert merged["windows_detected"] == 2.0


def test_max_gap_splits_a_window_across_a_hole_in_the_data():
    # Steps 4-7 missing. Label on steps 2, 3, 8, 9; the only flag at step 9.
    frame = series("a", flag="00000100", label="00111100", steps=[0, 1, 2, 3, 8, 9, 10, 11])

    whole = metrics(frame)
    split = metrics(frame, max_gap=pd.Timedelta(minutes=5))

    assert whole["windows"] == 1.0  # steps 2-9 as one window: labelled rows are adjacent
    assert whole["window_recall"] == 1.0  # hit at step 9
    assert split["windows"] == 2.0  # 25 min > 5 min between steps 3 and 8: 2-3 and 8-9
    assert split["windows_detected"] == 1.0  # only 8-9 holds the flag
    assert split["window_recall"] == 0.5  # 1 / 2
    assert split["series_days"] == pytest.approx(55 / 1440)  # steps 0 to 11 either way


def test_window_metrics_of_an_empty_frame():
    result = metrics(series("a", flag="", label=""))

    assert result["windows"] == 0.0
    assert math.isnan(result["window_recall"])  # no windows
    assert result["false_alarms"] == 0.0
    assert result["series_days"] == 0.0
    assert math.isnan(result["false_alarms_per_day"])  # 0 / 0 days
    assert result["point_f1"] == 0.0


# --- without labels --------------------------------------------------------------------------


def test_alarm_metrics_count_what_is_flagged_without_any_label():
    frame = shuffled(
        series("a", flag="0110000111"),  # two alarms of 2 and 3 rows
        series("b", flag="0000000000"),
        series("c", flag="1000000000"),  # one alarm of 1 row
    )

    result = alarm_metrics(frame, KEYS, "time", "flag")

    assert result["rows"] == 30.0
    assert result["flag_rate"] == pytest.approx(6 / 30)
    assert result["alarms"] == 3.0
    assert result["series_days"] == pytest.approx(135 / 1440)
    assert result["alarms_per_day"] == pytest.approx(3 / (135 / 1440))
    assert result["mean_alarm_rows"] == pytest.approx(2.0)


def test_alarm_metrics_without_a_flag_have_no_alarm_length():
    result = alarm_metrics(series("a", flag="0000"), KEYS, "time", "flag")

    assert (result["flag_rate"], result["alarms"], result["alarms_per_day"]) == (0.0, 0.0, 0.0)
    assert math.isnan(result["mean_alarm_rows"])

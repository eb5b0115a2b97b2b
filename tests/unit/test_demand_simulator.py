from __future__ import annotations

import gzip
import re
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurehouse.usecases.demand_forecasting.simulator import (
    CATEGORIES,
    DROP_DATE_COLUMN,
    FILE_NAMES,
    REGIONS,
    SALES_COLUMNS,
    SALES_SCHEMA,
    STORE_TYPES,
    WEEKLY_PROFILE,
    DemandSpec,
    simulate_demand,
    write_demand,
    write_demand_frames,
)

SMALL = DemandSpec(stores=3, items=8, days=100, seed=3, drop_days=7)
# Large enough for stable statistics (~70k rows), small enough to simulate in a blink.
STUDY = DemandSpec(stores=8, items=25, days=365, seed=11, drop_days=7)
KEY = ["date", "store_id", "item_id"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture(scope="module")
def study() -> dict[str, pd.DataFrame]:
    return simulate_demand(STUDY)


@pytest.fixture(scope="module")
def study_files(tmp_path_factory: pytest.TempPathFactory, study) -> dict[str, list[Path]]:
    return write_demand_frames(STUDY, study, tmp_path_factory.mktemp("demand"))


@pytest.fixture(scope="module")
def sales(study: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The truth with store and item attributes, minus holidays and their eves."""
    holidays = study["holidays"]["date"]
    eves = pd.concat([holidays, holidays - pd.Timedelta(days=1), holidays - pd.Timedelta(days=2)])
    frame = study["sales"].merge(study["stores"], on="store_id").merge(study["items"], on="item_id")
    return frame[~frame["date"].isin(eves)].assign(weekday=lambda f: f["date"].dt.weekday)


def _ordinary(sales: pd.DataFrame) -> pd.DataFrame:
    return sales[~sales["on_promotion"] & ~sales["stock_out"]]


def _read_sales_files(paths: list[Path]) -> pd.DataFrame:
    frames = []
    for path in paths:
        frame = pq.read_table(path).to_pandas(date_as_object=False)
        drop_date = pd.Timestamp(path.stem.removeprefix("sales_"))
        frames.append(frame.assign(**{DROP_DATE_COLUMN: drop_date}))
    read = pd.concat(frames, ignore_index=True)
    return read.astype({"date": "datetime64[ns]", "recorded_at": "datetime64[ns]"}).astype(
        {DROP_DATE_COLUMN: "datetime64[ns]"}
    )


def test_same_seed_gives_identical_frames_and_another_seed_differs() -> None:
    first, again = simulate_demand(SMALL), simulate_demand(SMALL)
    other = simulate_demand(DemandSpec(stores=3, items=8, days=100, seed=4, drop_days=7))

    assert set(first) == {"stores", "items", "holidays", "weather", "sales", "drops"}
    for key in first:
        pd.testing.assert_frame_equal(first[key], again[key], check_exact=True)
    assert not np.array_equal(first["sales"]["units"], other["sales"]["units"])
    assert not np.array_equal(first["weather"]["temperature_c"], other["weather"]["temperature_c"])


def test_rewriting_and_resimulating_give_identical_bytes(tmp_path: Path) -> None:
    first = write_demand(SMALL, tmp_path / "a")
    before = {path.name: path.read_bytes() for paths in first.values() for path in paths}
    again = write_demand(SMALL, tmp_path / "a")
    elsewhere = write_demand(SMALL, tmp_path / "b")

    for written in (again, elsewhere):
        assert {p.name: p.read_bytes() for paths in written.values() for p in paths} == before
    # No .partial files are left behind.
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(before)


def test_write_demand_returns_one_file_per_table_and_one_per_drop(tmp_path: Path) -> None:
    paths = write_demand(SMALL, tmp_path)

    assert {key: [p.name for p in paths[key]] for key in FILE_NAMES} == {
        "stores": ["stores.csv"],
        "items": ["items.csv"],
        "holidays": ["holidays.txt"],
        "weather": ["weather.csv.gz"],
    }
    # 100 days in drops of 7: 14 full weeks and a last drop of 2 days.
    assert SMALL.drops == 15
    assert [p.name for p in paths["sales"]] == [
        f"sales_{SMALL.drop_date(k):%Y-%m-%d}.parquet" for k in range(15)
    ]
    assert paths["sales"][0].name == "sales_2023-01-08.parquet"
    assert paths["sales"][-1].name == "sales_2023-04-11.parquet"
    assert all(p.parent == tmp_path for ps in paths.values() for p in ps)


def test_frames_have_the_declared_columns_and_dtypes() -> None:
    frames = simulate_demand(SMALL)

    expected = {
        "stores": {
            "store_id": "int64",
            "region": "object",
            "store_type": "object",
            "size_sqm": "int64",
        },
        "items": {"item_id": "int64", "category": "object", "base_price": "float64"},
        "holidays": {"date": "datetime64[ns]", "name": "object"},
        "weather": {
            "date": "datetime64[ns]",
            "region": "object",
            "temperature_c": "float64",
            "precipitation_mm": "float64",
        },
        "sales": {
            "date": "datetime64[ns]",
            "store_id": "int64",
            "item_id": "int64",
            "units": "int64",
            "price": "float64",
            "on_promotion": "bool",
            "stock_out": "bool",
            "recorded_at": "datetime64[ns]",
        },
    }
    expected["drops"] = expected["sales"] | {DROP_DATE_COLUMN: "datetime64[ns]"}
    for key, columns in expected.items():
        assert {c: str(t) for c, t in frames[key].dtypes.items()} == columns, key
    assert tuple(frames["sales"].columns) == SALES_COLUMNS


def test_stores_and_items_files_are_plain_csv_with_the_declared_vocabulary(
    study: dict[str, pd.DataFrame], study_files: dict[str, list[Path]]
) -> None:
    stores_text = study_files["stores"][0].read_text()
    items_text = study_files["items"][0].read_text()

    assert stores_text.splitlines()[0] == "store_id,region,store_type,size_sqm"
    assert items_text.splitlines()[0] == "item_id,category,base_price"
    assert all(re.fullmatch(r"\d+,[a-z]+,\d+\.\d\d", line) for line in items_text.splitlines()[1:])
    stores, items = pd.read_csv(study_files["stores"][0]), pd.read_csv(study_files["items"][0])
    pd.testing.assert_frame_equal(stores, study["stores"], check_exact=True)
    pd.testing.assert_frame_equal(items, study["items"], check_exact=True)
    assert stores["store_id"].tolist() == list(range(1, STUDY.stores + 1))
    assert items["item_id"].tolist() == list(range(1, STUDY.items + 1))
    assert set(stores["region"]) <= set(REGIONS)
    assert set(stores["store_type"]) <= set(STORE_TYPES)
    assert set(items["category"]) <= set(CATEGORIES)
    assert (stores["size_sqm"] > 0).all()
    assert (items["base_price"] > 0).all()
    # Bigger formats have bigger floors.
    sizes = stores.groupby("store_type")["size_sqm"]
    if {"hyper", "convenience"} <= set(stores["store_type"]):
        assert sizes.min()["hyper"] > sizes.max()["convenience"]


def test_holidays_file_is_headerless_dates_and_single_token_names(
    study: dict[str, pd.DataFrame], study_files: dict[str, list[Path]]
) -> None:
    lines = study_files["holidays"][0].read_text().splitlines()
    read = pd.read_csv(
        study_files["holidays"][0],
        sep=r"\s+",
        header=None,
        names=["date", "name"],
        parse_dates=["date"],
    )

    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} [a-z_]+", line) for line in lines)
    pd.testing.assert_frame_equal(read, study["holidays"], check_exact=True)
    # STUDY covers 2023 exactly: all eight holidays of the year, and nothing else.
    assert len(read) == 8
    assert read["date"].between("2023-01-01", "2023-12-31").all()
    named = dict(zip(read["name"], read["date"].dt.date, strict=True))
    assert named["new_year"] == date(2023, 1, 1)
    assert named["christmas"] == date(2023, 12, 25)
    # Easter 2023 was on 9 April: Good Friday and Easter Monday move with it.
    assert named["good_friday"] == date(2023, 4, 7)
    assert named["easter_monday"] == date(2023, 4, 10)


def test_holidays_follow_their_rules_in_other_years() -> None:
    holidays = simulate_demand(DemandSpec(stores=1, items=1, start=date(2024, 1, 1), days=366))[
        "holidays"
    ]
    named = dict(zip(holidays["name"], holidays["date"].dt.date, strict=True))

    assert named["good_friday"] == date(2024, 3, 29)
    assert named["easter_monday"] == date(2024, 4, 1)
    assert named["summer_bank_holiday"] == date(2024, 8, 26)
    assert named["boxing_day"] == date(2024, 12, 26)


def test_weather_file_is_gzipped_semicolon_csv_with_one_row_per_region_and_day(
    study: dict[str, pd.DataFrame], study_files: dict[str, list[Path]]
) -> None:
    path = study_files["weather"][0]
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    read = pd.read_csv(path, sep=";", parse_dates=["date"], compression="gzip")

    assert lines[0] == "date;region;temperature_c;precipitation_mm"
    assert all(
        re.fullmatch(r"\d{4}-\d{2}-\d{2};[a-z]+;-?\d+\.\d;\d+\.\d", line) for line in lines[1:]
    )
    pd.testing.assert_frame_equal(read, study["weather"], check_exact=True)
    assert len(read) == STUDY.days * len(REGIONS)
    assert not read.duplicated(["date", "region"]).any()
    assert (read["precipitation_mm"] >= 0).all()
    assert 0.3 < (read["precipitation_mm"] == 0).mean() < 0.8


def test_weather_is_warm_in_summer_and_noisy_from_day_to_day(
    study: dict[str, pd.DataFrame],
) -> None:
    weather = study["weather"]
    month = weather["date"].dt.month
    by_region = weather.groupby([month, "region"])["temperature_c"].mean().unstack()

    assert (by_region.loc[7] > by_region.loc[1] + 10).all()
    anomaly = weather["temperature_c"] - weather.groupby([month, "region"])[
        "temperature_c"
    ].transform("mean")
    assert 1.5 < anomaly.std() < 5.0


def test_sales_files_are_parquet_in_the_declared_schema(
    study_files: dict[str, list[Path]],
) -> None:
    for path in study_files["sales"]:
        schema = pq.read_schema(path)
        assert schema.remove_metadata() == SALES_SCHEMA, path.name
        assert schema.field("recorded_at").type == pa.timestamp("us")
        assert schema.field("recorded_at").type.tz is None
        assert schema.field("date").type == pa.date32()


def test_sales_files_read_back_to_the_delivered_rows(
    study: dict[str, pd.DataFrame], study_files: dict[str, list[Path]]
) -> None:
    read = _read_sales_files(study_files["sales"])

    pd.testing.assert_frame_equal(read, study["drops"], check_exact=True)
    assert (read["units"] >= 0).all()
    assert (read["price"] == read["price"].round(2)).all()
    assert (read["recorded_at"] == read["recorded_at"].dt.floor("us")).all()


def test_each_drop_holds_rows_recorded_since_the_previous_drop(
    study: dict[str, pd.DataFrame],
) -> None:
    drops = study["drops"]
    drop_dates = pd.to_datetime([STUDY.drop_date(k) for k in range(STUDY.drops)])
    previous = dict(zip(drop_dates[1:], drop_dates[:-1], strict=True))
    since = drops[DROP_DATE_COLUMN].map(previous).fillna(pd.Timestamp(STUDY.start))

    assert sorted(drops[DROP_DATE_COLUMN].unique()) == list(drop_dates)
    assert (drops["recorded_at"] < drops[DROP_DATE_COLUMN]).all()
    assert (drops["recorded_at"] >= since).all()
    assert (drops["date"] < drops[DROP_DATE_COLUMN]).all()
    assert (drops["recorded_at"] >= drops["date"]).all()


def test_truth_has_exactly_one_row_per_store_item_and_day(study: dict[str, pd.DataFrame]) -> None:
    truth = study["sales"]
    grid = pd.MultiIndex.from_product(
        [
            pd.date_range(STUDY.start, periods=STUDY.days, freq="D"),
            range(1, STUDY.stores + 1),
            range(1, STUDY.items + 1),
        ],
        names=KEY,
    )

    assert pd.MultiIndex.from_frame(truth[KEY]).equals(grid)
    assert (truth["units"] >= 0).all()


def test_the_newest_version_of_each_known_row_is_the_truth(study: dict[str, pd.DataFrame]) -> None:
    drops = study["drops"]
    known = drops[drops["item_id"].isin(study["items"]["item_id"])]
    newest = (
        known.sort_values("recorded_at")
        .drop_duplicates(KEY, keep="last")
        .sort_values(KEY, ignore_index=True)
        .drop(columns=DROP_DATE_COLUMN)
    )

    pd.testing.assert_frame_equal(newest, study["sales"], check_exact=True)


def test_about_one_percent_of_rows_arrive_in_the_next_drop_recorded_after_their_own(
    study: dict[str, pd.DataFrame],
) -> None:
    drops = study["drops"]
    first = drops.sort_values("recorded_at").drop_duplicates(KEY, keep="first")
    day = (first["date"] - pd.Timestamp(STUDY.start)).dt.days
    drop_dates = pd.to_datetime([STUDY.drop_date(k) for k in range(STUDY.drops)])
    own = (day // STUDY.drop_days).to_numpy()
    own_drop = pd.Series(drop_dates[own], index=first.index)
    late = first[first[DROP_DATE_COLUMN] != own_drop]

    assert 0.005 < len(late) / len(first) < 0.02
    next_drop = drop_dates[own[first.index.get_indexer(late.index)] + 1]
    assert (late[DROP_DATE_COLUMN].to_numpy() == next_drop).all()
    assert (late["recorded_at"] >= own_drop[late.index]).all()


def test_corrections_come_in_a_later_drop_with_a_later_recorded_at_and_other_units(
    study: dict[str, pd.DataFrame],
) -> None:
    drops = study["drops"]
    versions = drops[drops.duplicated(KEY, keep=False)].sort_values([*KEY, "recorded_at"])
    pairs = versions.groupby(KEY)
    sent, corrected = pairs.nth(0).set_index(KEY), pairs.nth(1).set_index(KEY)

    assert pairs.size().eq(2).all()
    assert 0.0025 < len(corrected) / len(study["sales"]) < 0.01
    assert (corrected[DROP_DATE_COLUMN] > sent[DROP_DATE_COLUMN]).all()
    assert (corrected["recorded_at"] > sent["recorded_at"]).all()
    assert (corrected["units"] != sent["units"]).all()
    columns = ["price", "on_promotion", "stock_out"]
    pd.testing.assert_frame_equal(corrected[columns], sent[columns])
    truth = study["sales"].set_index(KEY).loc[corrected.index]
    pd.testing.assert_series_equal(corrected["units"], truth["units"])


def test_a_few_rows_are_for_items_missing_from_items_csv(
    study_files: dict[str, list[Path]],
) -> None:
    listed = set(pd.read_csv(study_files["items"][0])["item_id"])
    read = _read_sales_files(study_files["sales"])
    unknown = read[~read["item_id"].isin(listed)]

    assert 1 <= len(unknown) <= 0.002 * len(read)
    assert (unknown["item_id"] > max(listed)).all()
    assert not unknown.duplicated(KEY).any()


def test_small_data_still_has_an_unknown_item_row() -> None:
    frames = simulate_demand(DemandSpec(stores=2, items=10, days=100, seed=1))
    unknown = ~frames["drops"]["item_id"].isin(frames["items"]["item_id"])

    assert unknown.sum() == 1
    assert frames["sales"]["item_id"].isin(frames["items"]["item_id"]).all()


def test_weekday_means_follow_each_categorys_declared_profile(sales: pd.DataFrame) -> None:
    means = _ordinary(sales).pivot_table(
        index="weekday", columns="category", values="units", aggfunc="mean"
    )
    for category in means.columns:
        observed = means[category] / means[category].mean()
        declared = np.asarray(WEEKLY_PROFILE[category])
        declared = declared / declared.mean()
        if declared.max() - declared.min() > 0.3:
            assert np.corrcoef(observed, declared)[0, 1] > 0.9, category
            assert observed[5] > 1.2 * observed[1], category  # Saturday over Tuesday
        else:
            assert observed.max() / observed.min() < 1.2, category


def test_promotion_days_sell_clearly_more_than_the_same_items_other_days(
    sales: pd.DataFrame,
) -> None:
    sold = sales[~sales["stock_out"]]
    means = sold.groupby(["store_id", "item_id", "on_promotion"])["units"].mean().unstack()
    lift = (means[True] / means[False]).dropna()

    assert 0.05 < sales["on_promotion"].mean() < 0.10
    assert lift.median() > 1.5
    assert (lift > 1.0).mean() > 0.9


def test_promotions_cut_the_price_by_ten_to_thirty_percent_in_runs(
    study: dict[str, pd.DataFrame],
) -> None:
    truth = study["sales"]
    regular = truth[~truth["on_promotion"]].groupby(["date", "item_id"])["price"].median()
    promoted = truth[truth["on_promotion"]].join(regular.rename("regular"), on=["date", "item_id"])
    ratio = (promoted["price"] / promoted["regular"]).dropna()

    assert ratio.between(0.68, 0.92).all()
    flags = truth.sort_values(["store_id", "item_id", "date"])["on_promotion"].to_numpy()
    starts = (flags[1:] & ~flags[:-1]).sum()
    assert 3 <= flags.sum() / starts <= 8


def test_prices_stay_at_base_price_apart_from_rare_permanent_changes(
    study: dict[str, pd.DataFrame],
) -> None:
    truth = study["sales"].merge(study["items"], on="item_id")
    regular = truth[~truth["on_promotion"]]

    at_base = regular["price"] == regular["base_price"]
    assert at_base[regular["date"] == pd.Timestamp(STUDY.start)].all()
    assert 0.3 < at_base.mean() < 1.0
    # A regular price is the same in every store on a day: changes are chain-wide.
    assert regular.groupby(["date", "item_id"])["price"].nunique().eq(1).all()
    changes = regular.sort_values(["store_id", "item_id", "date"])
    changed = changes.groupby(["store_id", "item_id"])["price"].diff().fillna(0) != 0
    assert changed.sum() <= 4 * STUDY.stores * STUDY.items


def test_stock_outs_are_rare_runs_that_sell_less(sales: pd.DataFrame) -> None:
    means = sales.groupby(["store_id", "item_id", "stock_out"])["units"].mean().unstack()
    ratio = (means[True] / means[False]).dropna()
    ordered = sales.sort_values(["store_id", "item_id", "date"])
    same_run = ordered["stock_out"] & ordered.groupby(["store_id", "item_id"])["stock_out"].shift(
        1, fill_value=False
    )

    assert 0.01 < sales["stock_out"].mean() < 0.025
    assert ratio.median() < 0.3
    # Only the day the shelf empties sells anything.
    assert (ordered.loc[same_run, "units"] == 0).all()
    assert same_run.sum() > 0.3 * sales["stock_out"].sum()


def test_summer_beverages_and_produce_sell_more_than_in_winter(sales: pd.DataFrame) -> None:
    ordinary = _ordinary(sales)
    month = ordinary["date"].dt.month
    summer = ordinary[month.isin([6, 7, 8])].groupby("category")["units"].mean()
    winter = ordinary[month.isin([12, 1, 2])].groupby("category")["units"].mean()

    assert summer["beverages"] > 1.5 * winter["beverages"]
    assert summer["produce"] > 1.2 * winter["produce"]
    assert summer["household"] == pytest.approx(winter["household"], rel=0.2)


def test_hot_days_sell_more_beverages_and_rain_keeps_shoppers_from_convenience_stores(
    sales: pd.DataFrame, study: dict[str, pd.DataFrame]
) -> None:
    ordinary = _ordinary(sales).merge(study["weather"], on=["date", "region"])
    warm_months = ordinary[ordinary["date"].dt.month.isin([5, 6, 7, 8, 9])]
    drinks = warm_months[warm_months["category"] == "beverages"]
    by_heat = drinks.groupby(["store_id", "item_id", drinks["temperature_c"] >= 22])["units"]
    heat_ratio = (by_heat.mean().unstack()[True] / by_heat.mean().unstack()[False]).dropna()
    wet = ordinary["precipitation_mm"] >= 5
    dry = ordinary["precipitation_mm"] == 0
    by_rain = ordinary[wet | dry].groupby(["store_type", wet[wet | dry]])["units"].mean().unstack()
    rain_ratio = by_rain[True] / by_rain[False]

    assert heat_ratio.median() > 1.15
    assert rain_ratio["convenience"] < 0.85
    assert rain_ratio.drop("convenience").min() > 0.9


def test_sales_dip_on_holidays_and_rise_the_day_before(study: dict[str, pd.DataFrame]) -> None:
    truth = study["sales"]
    daily = truth[~truth["on_promotion"]].groupby("date")["units"].mean()
    holidays = study["holidays"]["date"]
    eves = (holidays - pd.Timedelta(days=1))[lambda d: ~d.isin(holidays)]
    usual = daily[~daily.index.isin(pd.concat([holidays, eves]))]
    usual_by_weekday = usual.groupby(usual.index.weekday).mean()

    def relative(days: pd.Series) -> pd.Series:
        days = days[days.isin(daily.index)]
        return daily[days].to_numpy() / usual_by_weekday[days.dt.weekday].to_numpy()

    assert relative(holidays).mean() < 0.75
    assert relative(eves).mean() > 1.1


def test_big_stores_sell_more(sales: pd.DataFrame) -> None:
    means = sales.groupby("store_type")["units"].mean()

    assert means.get("hyper", np.inf) > means["super"] > means.get("convenience", 0.0)


def test_a_datetime_start_stands_for_its_date() -> None:
    spec = DemandSpec(stores=2, items=3, days=10, start=datetime(2023, 1, 1, 6), seed=5)
    aware = DemandSpec(
        stores=2, items=3, days=10, start=datetime(2023, 1, 1, 1, tzinfo=UTC), seed=5
    )
    plain = DemandSpec(stores=2, items=3, days=10, start=date(2023, 1, 1), seed=5)

    assert spec.start == aware.start == date(2023, 1, 1)
    assert type(spec.start) is date
    for key, frame in simulate_demand(plain).items():
        pd.testing.assert_frame_equal(simulate_demand(spec)[key], frame, check_exact=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stores", 0),
        ("items", 0),
        ("days", 0),
        ("drop_days", 0),
        ("days", -3),
        ("stores", 2.5),
        ("seed", -1),
        ("start", "2023-01-01"),
    ],
)
def test_spec_rejects_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        DemandSpec(**{field: value})


def test_every_drop_has_a_file_even_when_all_its_rows_came_late(tmp_path: Path) -> None:
    # One row a day, a drop a day: over a year some drop's only row is late.
    spec = DemandSpec(stores=1, items=1, days=400, drop_days=1, seed=3)
    paths = write_demand(spec, tmp_path)
    counts = [pq.read_metadata(path).num_rows for path in paths["sales"]]

    assert len(paths["sales"]) == spec.drops == 400
    assert 0 in counts
    assert sum(counts) == len(simulate_demand(spec)["drops"])
    assert all(pq.read_schema(path).remove_metadata() == SALES_SCHEMA for path in paths["sales"])


def test_a_one_day_period_gives_one_drop_without_late_rows_or_corrections(tmp_path: Path) -> None:
    spec = DemandSpec(stores=2, items=2, days=1, seed=2)
    paths = write_demand(spec, tmp_path)
    frames = simulate_demand(spec)

    assert [p.name for p in paths["sales"]] == ["sales_2023-01-02.parquet"]
    assert len(frames["drops"]) == len(frames["sales"]) == 4

"""Ingestion of any declared data set: each file format, event-time derivation, column rule,
reference check and version correction, on tiny hand-written files."""

from __future__ import annotations

import gzip
import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyspark.sql.functions as F
import pytest

from featurehouse.errors import InputDataError
from featurehouse.ingest import ingest_dataset, ingest_use_case
from featurehouse.io import Lakehouse
from featurehouse.usecase import (
    Candidate,
    Column,
    Csv,
    DateAndHour,
    Entity,
    FromCounter,
    Label,
    Parquet,
    RawDataset,
    Reference,
    Regression,
    Series,
    Spine,
    UseCase,
)
from tests.helpers import local_settings

USE_CASE = "shop"
NOW = datetime(2024, 6, 1)

STORES = RawDataset(
    "stores",
    "stores*.csv*",
    (Column("store_id", "bigint"), Column("city", "string")),
    keys=("store_id",),
)
SALES = RawDataset(
    "sales",
    "sales*.csv*",
    (
        Column("timestamp", "timestamp", raw="sold_at"),
        Column("store_id", "bigint", raw="store"),
        Column("units", "bigint"),
    ),
    keys=("store_id", "timestamp"),
    time="timestamp",
    references=(Reference(("store_id",), "stores"),),
)
# Sales first: ingestion must still load the stores they reference before them.
SHOP = UseCase(
    name=USE_CASE,
    description="Units sold per store",
    entity=Entity("store", {"store_id": "bigint"}),
    datasets=(SALES, STORES),
    tables=(),
    spine=Spine(SALES, every=timedelta(hours=1)),
    label=Label("units_next_day", "sum", SALES, horizon=timedelta(days=1), column="units"),
    task=Regression(prediction="predicted_units"),
    candidates=(Candidate("none", lambda inputs: None),),
    model_name="units_model",
)


@pytest.fixture
def settings(tmp_path):
    return local_settings(tmp_path, use_cases={USE_CASE: {}})


@pytest.fixture
def lake(spark, settings) -> Lakehouse:
    return Lakehouse(spark, settings, USE_CASE)


@pytest.fixture
def folder(tmp_path) -> Path:
    path = tmp_path / "raw"
    path.mkdir()
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def rows(lake: Lakehouse, key: str, *columns: str) -> list[tuple]:
    return sorted(tuple(r) for r in lake.read(key).select(*columns).collect())


def quarantine(lake: Lakehouse) -> list[tuple[str, str]]:
    return sorted((r["reason"], r["record"]) for r in lake.read("quarantine").collect())


def test_a_headerless_file_takes_its_columns_from_the_declared_names(lake, folder):
    dataset = RawDataset(
        "readings",
        "readings*.csv",
        (Column("sensor", "bigint", raw="id"), Column("value", "double")),
        keys=("sensor",),
        format=Csv(header=False, names=("id", "note", "value")),
    )
    write(folder / "readings.csv", "1,first,2.5\n2,second,3.5\n3,third\n")

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    assert rows(lake, "readings", "sensor", "value") == [(1, 2.5), (2, 3.5)]
    assert report.quarantine_reasons == {"truncated line: 2 of 3 fields": 1}
    assert report.ignored_columns == {}
    assert report.reconciles()
    assert lake.read("readings").columns == ["sensor", "value", "source_file", "ingested_at"]


def test_a_semicolon_delimited_file_is_split_on_semicolons_outside_quotes(lake, folder):
    dataset = RawDataset(
        "products",
        "products*.csv",
        (Column("sku", "bigint"), Column("name", "string"), Column("price", "double")),
        keys=("sku",),
        format=Csv(delimiter=";"),
    )
    write(folder / "products.csv", 'price;sku;name\n2.5;1;"tea; green"\nabc;2;coffee\n')

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    assert rows(lake, "products", "sku", "name", "price") == [(1, "tea; green", 2.5)]
    assert quarantine(lake) == [
        ("non-numeric price", '{"sku":"2","name":"coffee","price":"abc"}'),
    ]
    assert report.reconciles()


def test_whitespace_separated_run_to_failure_data_gets_its_event_time_from_the_cycle(lake, folder):
    # Like NASA's turbofan files: no header, runs of spaces, a trailing blank.
    dataset = RawDataset(
        "cycles",
        "train_*.txt",
        (Column("unit", "bigint"), Column("cycle", "bigint"), Column("s1", "double")),
        keys=("unit", "cycle"),
        time=FromCounter("cycle", origin=datetime(2020, 1, 1), step=timedelta(hours=1)),
        format=Csv(header=False, delimiter="whitespace", names=("unit", "cycle", "s1")),
    )
    write(folder / "train_FD001.txt", "1 1  518.67 \n1\t2   518.70\n\n  2 1 519.01\n2 2\n")

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    assert rows(lake, "cycles", "unit", "cycle", "s1", "timestamp") == [
        (1, 1, 518.67, datetime(2020, 1, 1, 1)),
        (1, 2, 518.70, datetime(2020, 1, 1, 2)),
        (2, 1, 519.01, datetime(2020, 1, 1, 1)),
    ]
    assert report.quarantine_reasons == {"truncated line: 2 of 3 fields": 1}
    assert (report.rows_read, report.accepted) == (4, 3)


def test_a_gzipped_file_is_read_and_a_constant_column_added_to_each_row(lake, folder):
    # One series without an entity column: the declaration names its one store.
    dataset = RawDataset(
        "daily",
        "daily*.csv*",
        (
            Column("store_id", "bigint", value=7),
            Column("day", "date", format="dd/MM/yyyy"),
            Column("units", "bigint"),
        ),
        keys=("store_id", "day"),
    )
    (folder / "daily.csv.gz").write_bytes(gzip.compress(b"day,units\r\n01/02/2015,5\r\n"))

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    assert rows(lake, "daily", "store_id", "day", "units") == [(7, date(2015, 2, 1), 5)]
    assert (report.files, report.rows_read, report.accepted, report.quarantined) == (1, 1, 1, 0)


def write_parquet(path: Path, columns: dict[str, pa.Array]) -> None:
    pq.write_table(pa.table(columns), path)


def test_parquet_columns_are_found_by_name_and_bad_values_quarantined_as_json(lake, folder):
    dataset = RawDataset(
        "meter",
        "meter*.parquet",
        (
            Column("timestamp", "timestamp", raw="read_at"),
            Column("meter_id", "bigint"),
            Column("kwh", "double"),
        ),
        keys=("meter_id", "timestamp"),
        time="timestamp",
        format=Parquet(),
    )
    stamps = [datetime(2023, 1, 1, h) for h in range(4)]
    write_parquet(
        folder / "meter_1.parquet",
        {
            "kwh": pa.array(["1.5", "abc", "2.5", None]),
            # pandas writes integers with gaps as floats: 3.0 is an id, 3.5 is not.
            "meter_id": pa.array([3.0, 3.0, 3.5, 3.0]),
            "read_at": pa.array(stamps, pa.timestamp("us")),
            "firmware": pa.array(["v1"] * 4),
        },
    )
    write_parquet(
        folder / "meter_2.parquet",
        {
            "meter_id": pa.array([4], pa.int64()),
            "read_at": pa.array([datetime(2999, 1, 1)], pa.timestamp("us")),
            "kwh": pa.array([1.0]),
        },
    )

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    assert rows(lake, "meter", "meter_id", "timestamp", "kwh") == [(3, stamps[0], 1.5)]
    assert report.ignored_columns == {"meter_1.parquet": ("firmware",)}
    assert quarantine(lake) == [
        ("missing kwh", '{"read_at":"2023-01-01 03:00:00","meter_id":"3.0"}'),
        (
            "non-integer meter_id",
            '{"read_at":"2023-01-01 02:00:00","meter_id":"3.5","kwh":"2.5"}',
        ),
        ("non-numeric kwh", '{"read_at":"2023-01-01 01:00:00","meter_id":"3.0","kwh":"abc"}'),
        ("timestamp in the future", '{"read_at":"2999-01-01 00:00:00","meter_id":"4","kwh":"1.0"}'),
    ]
    assert (report.files, report.rows_read, report.accepted, report.quarantined) == (2, 5, 1, 4)


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (
            lambda path: path.write_text("meter_id,kwh\n1,2\n"),
            "meter.parquet: cannot be read as Parquet",
        ),
        (
            lambda path: write_parquet(path, {"meter_id": pa.array([1])}),
            "meter.parquet: missing required column(s) kwh (columns: meter_id)",
        ),
        (
            lambda path: write_parquet(
                path,
                {
                    "meter_id": pa.array([1]),
                    "kwh": pa.array([1.0]),
                    "at": pa.array([datetime(2023, 1, 1)], pa.timestamp("ns")),
                },
            ),
            "meter.parquet: column(s) at hold nanosecond timestamps",
        ),
    ],
    ids=["not-parquet", "missing-column", "nanoseconds"],
)
def test_a_parquet_file_that_does_not_match_is_refused_naming_it(lake, folder, prepare, message):
    dataset = RawDataset(
        "meter",
        "meter*.parquet",
        (Column("meter_id", "bigint"), Column("kwh", "double")),
        keys=("meter_id",),
        format=Parquet(),
    )
    prepare(folder / "meter.parquet")

    with pytest.raises(InputDataError, match=re.escape(message)):
        ingest_dataset(lake, folder, dataset, now=NOW)

    assert not lake.exists("meter")


def test_event_time_from_a_date_and_an_hour_of_the_day(lake, folder):
    dataset = RawDataset(
        "trips",
        "trips*.csv",
        (
            Column("station", "string"),
            Column("day", "date", format="dd/MM/yyyy"),
            Column("hour", "bigint"),
            Column("trips", "bigint"),
        ),
        keys=("station", "timestamp"),
        time=DateAndHour("day", "hour"),
    )
    write(
        folder / "trips.csv",
        "station,day,hour,trips\n"
        "a,01/02/2015,0,3\n"
        "a,01/02/2015,23,4\n"
        "a,01/02/2015,24,5\n"
        "a,2015-02-01,1,6\n"
        "a,01/06/2024,2,7\n",
    )

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    assert rows(lake, "trips", "timestamp", "trips") == [
        (datetime(2015, 2, 1, 0), 3),
        (datetime(2015, 2, 1, 23), 4),
    ]
    assert report.quarantine_reasons == {
        "hour outside 0-23": 1,
        "timestamp in the future": 1,
        "unparsable day": 1,
    }
    assert lake.read("trips").columns == [
        "station",
        "day",
        "hour",
        "trips",
        "timestamp",
        "source_file",
        "ingested_at",
    ]


def test_declared_rules_quarantine_values_out_of_range_or_not_allowed(lake, folder):
    dataset = RawDataset(
        "items",
        "items*.csv",
        (
            Column("item", "bigint"),
            Column("age", "bigint", min=0),
            Column("units", "double", max=1000),
            Column("category", "string", allowed=("food", "toys")),
            Column("on_sale", "boolean"),
            Column("note", "string", nullable=True),
            Column("launched", "date", nullable=True),
        ),
        keys=("item",),
    )
    write(
        folder / "items.csv",
        "item,age,units,category,on_sale,note,launched\n"
        "1,0,1000,food,TRUE,,\n"
        "2,3,1.5,toys,0,gift,2020-05-01\n"
        "3,-1,1.5,food,true,,\n"
        "4,3,1000.5,food,true,,\n"
        "5,3,1.5,books,true,,\n"
        "6,3,,food,true,,\n"
        "7,3,1.5,food,maybe,,\n"
        "8,3,1.5,food,false,,not a date\n",
    )

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    assert rows(lake, "items", "item", "on_sale", "note", "launched") == [
        (1, True, None, None),
        (2, False, "gift", date(2020, 5, 1)),
    ]
    assert report.quarantine_reasons == {
        "age below 0": 1,
        "category not one of food, toys": 1,
        "missing units": 1,
        "non-boolean on_sale": 1,
        "unparsable launched": 1,
        "units above 1000": 1,
    }
    assert report.reconciles()


def test_a_row_referencing_an_unknown_key_is_quarantined_and_a_known_one_accepted(lake, folder):
    write(folder / "stores.csv", "store_id,city\n1,Lyon\n")
    write(
        folder / "sales.csv",
        "sold_at,store,units\n2024-01-01 10:00:00,1,3\n2024-01-01 10:00:00,2,4\n",
    )

    reports = ingest_use_case(lake, SHOP, folder, now=NOW)

    assert [r.dataset for r in reports] == ["stores", "sales"]
    assert rows(lake, "sales", "store_id", "units") == [(1, 3)]
    assert reports[1].quarantine_reasons == {"unknown store_id (not in stores)": 1}
    assert all(r.reconciles() for r in reports)


def test_a_folder_with_one_data_set_ingests_it_and_leaves_the_others_alone(lake, folder):
    write(folder / "stores.csv", "store_id,city\n1,Lyon\n")
    write(folder / "sales_1.csv", "sold_at,store,units\n2024-01-01 10:00:00,1,3\n")
    ingest_use_case(lake, SHOP, folder, now=NOW)
    stores_version = lake.version("stores")
    (folder / "stores.csv").unlink()
    (folder / "sales_1.csv").unlink()
    write(folder / "sales_2.csv", "sold_at,store,units\n2024-01-01 11:00:00,1,5\n")

    reports = {r.dataset: r for r in ingest_use_case(lake, SHOP, folder, now=NOW)}

    assert reports["stores"].skipped
    assert reports["stores"].summary() == "stores: no files (stores*.csv*), skipped"
    assert (reports["sales"].files, reports["sales"].inserted) == (1, 1)
    assert lake.version("stores") == stores_version
    assert rows(lake, "sales", "units") == [(3,), (5,)]


def test_a_folder_without_any_file_of_the_use_case_is_one_error(lake, folder):
    write(folder / "unrelated.txt", "hello\n")

    with pytest.raises(InputDataError) as error:
        ingest_use_case(lake, SHOP, folder, now=NOW)

    assert str(error.value) == (
        f"no input files of use case shop in {folder}:"
        " no sales files (sales*.csv*), no stores files (stores*.csv*)"
    )
    assert not lake.exists("stores")


PRICES = RawDataset(
    "prices",
    "prices*.csv",
    (Column("sku", "bigint"), Column("price", "double"), Column("revision", "bigint")),
    keys=("sku",),
    version="revision",
)


def price_of(lake: Lakehouse, sku: int) -> tuple[float, int]:
    row = lake.read("prices").where(F.col("sku") == sku).first()
    return row["price"], row["revision"]


def test_a_greater_version_replaces_the_stored_row_and_a_rerun_changes_nothing(lake, folder):
    write(folder / "prices_1.csv", "sku,price,revision\n1,10.0,1\n1,11.0,2\n2,5.0,1\n")
    first = ingest_dataset(lake, folder, PRICES, now=NOW)
    # A later drop corrects sku 1 and repeats sku 2's revision with another price.
    write(folder / "prices_2.csv", "sku,price,revision\n1,12.0,3\n2,6.0,1\n")

    second = ingest_dataset(lake, folder, PRICES, now=NOW)
    again = ingest_dataset(lake, folder, PRICES, now=NOW)

    assert (first.rows_read, first.accepted, first.superseded, first.inserted) == (3, 2, 1, 2)
    assert first.quarantined == 0
    assert (second.rows_read, second.accepted, second.superseded) == (5, 2, 2)
    assert second.quarantine_reasons == {"duplicate key": 1}
    assert (second.inserted, second.updated) == (0, 1)
    assert (again.inserted, again.updated) == (0, 0)
    assert all(r.reconciles() for r in (first, second, again))
    assert price_of(lake, 1) == (12.0, 3)
    assert price_of(lake, 2) == (5.0, 1)
    assert lake.read("prices").count() == 2


def test_an_older_version_arriving_late_does_not_replace_the_stored_row(lake, folder):
    write(folder / "prices_1.csv", "sku,price,revision\n1,11.0,2\n")
    ingest_dataset(lake, folder, PRICES, now=NOW)
    (folder / "prices_1.csv").unlink()
    write(folder / "prices_0.csv", "sku,price,revision\n1,10.0,1\n")

    late = ingest_dataset(lake, folder, PRICES, now=NOW)

    assert (late.accepted, late.inserted, late.updated) == (1, 0, 0)
    assert price_of(lake, 1) == (11.0, 2)


def test_each_time_series_gets_a_health_status_and_a_bad_one_stops_nothing(lake, folder):
    """Hourly readings per sensor: one clean, one with every problem, one too short."""
    dataset = RawDataset(
        "readings",
        "readings*.csv",
        (
            Column("sensor", "string"),
            Column("timestamp", "timestamp", format="yyyy-MM-dd HH:mm"),
            Column("value", "double"),
        ),
        keys=("sensor", "timestamp"),
        time="timestamp",
        series=Series(("sensor",), "value", timedelta(hours=1), min_rows=10, constant_rows=4),
    )
    start = datetime(2024, 1, 1)

    def line(sensor: str, hour: int, value: float) -> str:
        return f"{sensor},{start + timedelta(hours=hour):%Y-%m-%d %H:%M},{value}\n"

    clean = [line("clean", h, h % 3) for h in range(12)]
    # Hours 0-4, then 3 again (a backwards step and a duplicate), a gap of two missing hours
    # (7, 8), and a value stuck for five samples (hours 9-13).
    bad = [line("bad", h, h) for h in range(5)] + [line("bad", 3, 99.0)]
    bad += [line("bad", h, h) for h in (5, 6)] + [line("bad", h, 7.0) for h in range(9, 14)]
    short = [line("short", h, h) for h in range(3)]
    write(folder / "readings.csv", "sensor,timestamp,value\n" + "".join(clean + bad + short))

    report = ingest_dataset(lake, folder, dataset, now=NOW)

    status = {h.entity: h for h in report.series}
    assert status["sensor=clean"].status == "ok"
    assert status["sensor=bad"].status == (
        "1 gap (2 missing samples); 1 duplicate timestamp (quarantined);"
        " 1 backwards step in time; constant for 4.0 h (5 samples)"
    )
    assert (status["sensor=bad"].rows, status["sensor=bad"].duplicates) == (12, 1)
    assert status["sensor=short"].status == "too little history: 3 samples, 10 needed"
    assert report.accepted == 12 + 12 + 3 and report.reconciles()
    assert "3 series: 1 ok; sensor=bad: 1 gap" in report.summary()

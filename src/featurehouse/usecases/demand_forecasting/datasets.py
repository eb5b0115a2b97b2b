"""Retail demand: the (store, item) entity and five raw data sets in four formats.

The simulator writes what a retailer's systems typically export: store and item master
data as CSV, the holiday calendar as whitespace-separated text without a header, daily
weather by region as gzip-compressed semicolon-separated CSV, and weekly drops of sales
as Parquet. Sales rows can arrive late (in a later drop) and be corrected (sent again
with a later `recorded_at`): the newest version of a (store, item, date) wins.
"""

from __future__ import annotations

from featurehouse.usecase import Column, Csv, Entity, Parquet, RawDataset, Reference

STORE_ID, ITEM_ID = "store_id", "item_id"
STORE_ITEM = Entity(
    "store_item", {STORE_ID: "bigint", ITEM_ID: "bigint"}, "One item's sales in one store"
)

REGIONS = ("north", "south", "east", "west")
STORE_TYPES = ("hyper", "super", "convenience")
CATEGORIES = ("dairy", "bakery", "produce", "beverages", "household")
DATE = Column("date", "timestamp", format="yyyy-MM-dd")

STORES = RawDataset(
    "stores",
    "stores*.csv*",
    (
        Column(STORE_ID, "bigint"),
        Column("region", "string", allowed=REGIONS),
        Column("store_type", "string", allowed=STORE_TYPES),
        Column("size_sqm", "bigint", min=1),
    ),
    keys=(STORE_ID,),
    description="The stores: region, format and floor space",
)
ITEMS = RawDataset(
    "items",
    "items*.csv*",
    (
        Column(ITEM_ID, "bigint"),
        Column("category", "string", allowed=CATEGORIES),
        Column("base_price", "double", min=0.01),
    ),
    keys=(ITEM_ID,),
    description="The items: category and list price",
)
HOLIDAYS = RawDataset(
    "holidays",
    "holidays*.txt*",
    (DATE, Column("holiday", "string")),
    keys=("date",),
    time="date",
    format=Csv(header=False, delimiter="whitespace", names=("date", "holiday")),
    description="Public holidays, known in advance",
)
WEATHER = RawDataset(
    "weather",
    "weather*.csv*",
    (
        DATE,
        Column("region", "string", allowed=REGIONS),
        Column("temperature_c", "double", min=-60, max=60),
        Column("precipitation_mm", "double", min=0),
    ),
    keys=("region", "date"),
    time="date",
    format=Csv(delimiter=";"),
    description="Daily weather per region",
)
SALES = RawDataset(
    "sales",
    "sales_*.parquet",
    (
        Column("date", "timestamp"),
        Column(STORE_ID, "bigint"),
        Column(ITEM_ID, "bigint"),
        Column("units", "bigint", min=0),
        Column("price", "double", min=0),
        Column("on_promotion", "boolean"),
        Column("stock_out", "boolean"),
        Column("recorded_at", "timestamp"),
    ),
    keys=(STORE_ID, ITEM_ID, "date"),
    time="date",
    format=Parquet(),
    # A sale of a store or item the master data does not know (a discontinued SKU) is refused.
    references=(Reference((STORE_ID,), "stores"), Reference((ITEM_ID,), "items")),
    version="recorded_at",
    description="Units sold per store, item and day; late and corrected rows included",
)

DATASETS = (STORES, ITEMS, HOLIDAYS, WEATHER, SALES)

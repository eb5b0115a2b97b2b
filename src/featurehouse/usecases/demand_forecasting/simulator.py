"""A seeded simulator of retail demand: daily unit sales of items in stores, as raw files.

Forecasting benchmarks need any number of stores, items and days, and a known truth
behind the noise. The simulator draws the units a store sells of an item on a day
from a negative binomial (a Poisson whose mean carries gamma noise of shape
`_DISPERSION`), whose mean is a product of effects that a forecaster can learn from
history, the calendar, prices, promotions and weather:

* level: a store factor (hypermarkets sell ~2.5x a supermarket, convenience stores
  ~0.45x, and bigger stores of a type sell more) times an item popularity
  (log-normal) times a category base times a store-item log-normal noise;
* trend: each store grows or shrinks slowly, log-linearly, by N(2%, 5%) a year;
* weekly seasonality: a day-of-week profile per category (`WEEKLY_PROFILE`),
  Friday/Saturday peaks for beverages and bakery, nearly flat for household;
  hypermarkets exaggerate it (weekend trips) and convenience stores flatten it;
* yearly seasonality: 1 + amplitude * cos(day of year - peak) per category
  (`YEARLY_SEASONALITY`): beverages +-30% and produce +-20% peak in July, bakery
  and dairy peak mildly in winter, household in spring;
* promotions: on ~7% of store-item days, in runs of 3 to 7 days, the price drops by
  10-30%; demand rises by the price effect and by a category lift for display and
  advertising (x1.35 to x1.7) on top, and storable categories dip for 3 days after
  a run (customers stocked up);
* price: demand scales with (price / base_price) ** -elasticity, elasticity 0.9 to
  1.8 by category; besides promotions, an item's regular price changes about once a
  year by -4%..+8% (prices end in 9 cents, like shelf prices), chain-wide;
* holidays: stores open short hours on a public holiday (x0.55), and sales rise
  the day before (up to +50% for beverages) and two days before;
* weather: each store sees its region's weather. Days above 18 C raise beverages
  by 5% and produce by 1% per degree; rain keeps people from convenience stores
  (-3% per mm, up to -30%) and a little from the others;
* footfall: a store-wide log-normal shock per store and day, shared by its items.

Stock-outs censor the demand: on ~1.7% of store-item days (three times as often
during a promotion, when shelves empty faster) an item is out of stock for a run of
1 to 4 days; the first day sells a fraction (20-70%) of its demand, the others
nothing, and the row says `stock_out`.

Sales arrive as Parquet drops every `drop_days` days: a drop arrives at midnight
after its last sales day, is named by that date, and holds the rows recorded
(`recorded_at`, naive UTC) since the previous drop, with the problems of a real feed: ~1% of rows arrive one drop
late (with a later `recorded_at`), ~0.5% are first sent with wrong units and sent
again, corrected, 1 to 3 drops later (the newest `recorded_at` is the truth), and
~0.05% are sales of discontinued items that items.csv no longer lists.

Every random draw comes from one `numpy.random.Generator` in a fixed order, so the
same `DemandSpec` gives the same frames and byte-identical files. The work is
vectorised over (day, store, item) arrays, at a peak of about 400 bytes per row
(7.3M rows, 50 stores x 200 items x 2 years, need under 3 GB); loops run only over
days (weather), drops (files) and the few days of a promotion or stock-out run.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

REGIONS = ("north", "south", "east", "west")
STORE_TYPES = ("hyper", "super", "convenience")
CATEGORIES = ("dairy", "bakery", "produce", "beverages", "household")

STORES_COLUMNS = ("store_id", "region", "store_type", "size_sqm")
ITEMS_COLUMNS = ("item_id", "category", "base_price")
HOLIDAYS_COLUMNS = ("date", "name")
WEATHER_COLUMNS = ("date", "region", "temperature_c", "precipitation_mm")
SALES_COLUMNS = (
    "date",
    "store_id",
    "item_id",
    "units",
    "price",
    "on_promotion",
    "stock_out",
    "recorded_at",
)
# The drops frame carries, besides SALES_COLUMNS, the date of the file a row came in.
DROP_DATE_COLUMN = "drop_date"

FILE_NAMES = {
    "stores": "stores.csv",
    "items": "items.csv",
    "holidays": "holidays.txt",
    "weather": "weather.csv.gz",
}
SALES_FILE_GLOB = "sales_*.parquet"
WEATHER_DELIMITER = ";"
DATE_FORMAT = "%Y-%m-%d"
# Spark 4 refuses nanosecond Parquet timestamps, hence microseconds.
SALES_SCHEMA = pa.schema(
    [
        ("date", pa.date32()),
        ("store_id", pa.int64()),
        ("item_id", pa.int64()),
        ("units", pa.int64()),
        ("price", pa.float64()),
        ("on_promotion", pa.bool_()),
        ("stock_out", pa.bool_()),
        ("recorded_at", pa.timestamp("us")),
    ]
)

# Data problems of the sales feed, as shares of the true rows.
LATE_RATE = 0.01
CORRECTION_RATE = 0.005
UNKNOWN_ITEM_RATE = 0.0005
# Below this many true rows, the share of unknown items may round to none.
UNKNOWN_ITEM_MIN_ROWS = 2000
# Discontinued SKUs take the ids just above the listed items.
DISCONTINUED_SKUS = 3
MAX_CORRECTION_DELAY_DROPS = 3

# Mon..Sun, normalised to mean 1 in use.
WEEKLY_PROFILE = {
    "dairy": (0.95, 0.90, 0.92, 0.97, 1.08, 1.22, 0.96),
    "bakery": (0.90, 0.88, 0.90, 0.95, 1.10, 1.35, 0.92),
    "produce": (0.92, 0.88, 0.92, 0.98, 1.12, 1.25, 0.93),
    "beverages": (0.85, 0.82, 0.86, 0.95, 1.20, 1.40, 0.92),
    "household": (1.05, 1.02, 1.00, 1.00, 0.98, 1.00, 0.95),
}
# Exponent on the weekly profile by store type.
_WEEKLY_STRENGTH = {"hyper": 1.3, "super": 1.0, "convenience": 0.4}
# (amplitude, day of year of the peak)
YEARLY_SEASONALITY = {
    "dairy": (0.05, 15),
    "bakery": (0.08, 350),
    "produce": (0.20, 190),
    "beverages": (0.30, 200),
    "household": (0.06, 95),
}
PROMOTION_LIFT = {
    "dairy": 1.35,
    "bakery": 1.40,
    "produce": 1.45,
    "beverages": 1.70,
    "household": 1.50,
}
PRICE_ELASTICITY = {"dairy": 1.2, "bakery": 0.9, "produce": 1.4, "beverages": 1.8, "household": 1.6}
# Demand in the days after a promotion run: storable goods were bought ahead.
_POST_PROMOTION_DIP = {
    "dairy": 0.95,
    "bakery": 1.0,
    "produce": 1.0,
    "beverages": 0.8,
    "household": 0.8,
}
_POST_PROMOTION_DAYS = 3
# How strongly a category's sales rise before a holiday, scaling _HOLIDAY_EVE_LIFT.
_HOLIDAY_SENSITIVITY = {
    "dairy": 1.0,
    "bakery": 1.3,
    "produce": 1.1,
    "beverages": 1.5,
    "household": 0.3,
}
_HOLIDAY_EVE_LIFT = (0.35, 0.12)  # one and two days before
_HOLIDAY_FACTOR = 0.55
_HOT_THRESHOLD_C = 18.0
_HEAT_SLOPE = {"dairy": 0.0, "bakery": 0.0, "produce": 0.01, "beverages": 0.05, "household": 0.0}
_RAIN_SLOPE = {"hyper": 0.005, "super": 0.005, "convenience": 0.03}
_RAIN_CAP_MM = 10.0

_BASE_UNITS = 5.0
_CATEGORY_LEVEL = {"dairy": 1.6, "bakery": 1.3, "produce": 1.2, "beverages": 1.0, "household": 0.5}
_CATEGORY_PRICE = {"dairy": 1.8, "bakery": 2.2, "produce": 2.5, "beverages": 1.6, "household": 4.5}
_PRICE_SIGMA = 0.35
_STORE_TYPE_SHARES = (0.2, 0.5, 0.3)
_STORE_TYPE_LEVEL = {"hyper": 2.5, "super": 1.0, "convenience": 0.45}
_STORE_SIZE_SQM = {"hyper": (6000, 12000), "super": (1200, 3000), "convenience": (80, 300)}
_STORE_SIGMA = 0.15
_ITEM_SIGMA = 0.5
_STORE_ITEM_SIGMA = 0.25
_TREND_PER_YEAR = (0.02, 0.05)  # mean, sd
_FOOTFALL_SIGMA = 0.08
_DISPERSION = 10.0

_PRICE_CHANGES_PER_YEAR = 1.0
_PRICE_CHANGE = (-0.04, 0.08)
_PROMOTION_START_RATE = 0.014
_PROMOTION_DAYS = (3, 7)
_PROMOTION_DISCOUNT = (0.10, 0.30)
_STOCK_OUT_START_RATE = 0.006
_STOCK_OUT_PROMOTION_FACTOR = 3.0
_STOCK_OUT_DAYS = (1, 4)
_STOCK_OUT_FIRST_DAY_SHARE = (0.2, 0.7)

# (mean C, yearly amplitude C, P(wet | dry yesterday), P(wet | wet yesterday)), by REGIONS.
_CLIMATE = (
    (7.0, 9.0, 0.28, 0.62),
    (15.0, 9.0, 0.15, 0.50),
    (10.0, 12.0, 0.20, 0.55),
    (11.0, 7.0, 0.32, 0.68),
)
_COLDEST_DAY_OF_YEAR = 20
_TEMPERATURE_AR = 0.75
_TEMPERATURE_SD = 3.0
_RAIN_GAMMA = (0.8, 5.0)  # shape, scale in mm

# POS systems upload a day's sales in the evening.
_UPLOAD_START = timedelta(hours=20)
_UPLOAD_SPREAD = timedelta(hours=4)

_DAY_NS = 86_400 * 10**9
_US_NS = 1_000


@dataclass(frozen=True)
class DemandSpec:
    """What to simulate: stores, items, the sales period, the seed and the drop interval.

    `start` is the first sales day; a datetime (as YAML may give) stands for its date,
    in UTC if it is aware. Sales files arrive every `drop_days` days.
    """

    stores: int = 10
    items: int = 20
    start: date = date(2023, 1, 1)
    days: int = 730
    seed: int = 7
    drop_days: int = 7

    def __post_init__(self) -> None:
        for name in ("stores", "items", "days", "drop_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        if isinstance(self.seed, bool) or not isinstance(self.seed, Integral) or self.seed < 0:
            raise ValueError(f"seed must be a whole number of at least 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "start", _as_date(self.start))

    @property
    def end(self) -> date:
        """The day after the last sales day."""
        return self.start + timedelta(days=self.days)

    @property
    def drops(self) -> int:
        return -(-self.days // self.drop_days)

    def drop_date(self, drop: int) -> date:
        """The day drop `drop` (0-based) arrives: the day after the last sales day it holds."""
        return self.start + timedelta(days=min((drop + 1) * self.drop_days, self.days))


def sales_file_name(drop_date: date) -> str:
    return f"sales_{drop_date:%Y-%m-%d}.parquet"


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.date()
    if isinstance(value, date):
        return value
    raise ValueError(f"start must be a date or a datetime, got {value!r}")


@dataclass(frozen=True)
class _Stores:
    region: np.ndarray  # index into REGIONS
    store_type: np.ndarray  # index into STORE_TYPES
    size_sqm: np.ndarray
    level: np.ndarray
    trend: np.ndarray  # log growth per year


@dataclass(frozen=True)
class _Items:
    category: np.ndarray  # index into CATEGORIES
    base_price: np.ndarray
    level: np.ndarray


@dataclass(frozen=True)
class _Calendar:
    dates: np.ndarray  # datetime64[ns], one per sales day
    weekday: np.ndarray  # 0 = Monday
    day_of_year: np.ndarray
    holiday: np.ndarray  # bool per day
    eve: tuple[np.ndarray, np.ndarray]  # one and two days before a holiday
    holidays: pd.DataFrame  # the public holidays in the period


def simulate_demand(spec: DemandSpec) -> dict[str, pd.DataFrame]:
    """Simulate the raw tables and the sales feed.

    Keys: `stores`, `items`, `holidays` and `weather` (the files' contents); `sales`,
    the truth with one row per (date, store, item), sorted so, with the `recorded_at`
    of the row's newest version and no discontinued items; and `drops`, every row as
    delivered (late, corrected and unknown-item rows included), with `drop_date`,
    sorted by drop, date, store, item and recorded_at.
    """
    rng = np.random.default_rng(spec.seed)
    calendar = _calendar(spec)
    stores = _draw_stores(rng, spec.stores)
    items = _draw_items(rng, spec.items)
    level = stores.level[:, None] * items.level[None, :]
    level = level * rng.lognormal(-0.5 * _STORE_ITEM_SIGMA**2, _STORE_ITEM_SIGMA, size=level.shape)
    temperature, precipitation = _draw_weather(rng, calendar)
    regular_price = _draw_regular_prices(rng, items, spec.days)
    shape = (spec.days, spec.stores, spec.items)
    promotion, discount = _draw_promotions(rng, shape)
    price = np.where(
        promotion,
        np.maximum(np.round(regular_price[:, None, :] * (1.0 - discount), 2), 0.01),
        regular_price[:, None, :],
    )
    stock_out = _draw_stock_outs(rng, promotion)
    mean = _expected_demand(
        rng, spec, calendar, stores, items, level, temperature, precipitation, price, promotion
    )
    units = _draw_units(rng, mean, stock_out)
    truth, drops = _feed(rng, spec, units, price, promotion, stock_out)
    return {
        "stores": _stores_frame(stores),
        "items": _items_frame(items),
        "holidays": calendar.holidays,
        "weather": _weather_frame(calendar, temperature, precipitation),
        "sales": truth,
        "drops": drops,
    }


def write_demand(spec: DemandSpec, out_dir: Path) -> dict[str, list[Path]]:
    """Simulate the demand `spec` describes and write its raw files into `out_dir`."""
    return write_demand_frames(spec, simulate_demand(spec), out_dir)


def write_demand_frames(
    spec: DemandSpec, frames: dict[str, pd.DataFrame], out_dir: Path
) -> dict[str, list[Path]]:
    """Write the frames `simulate_demand(spec)` gave and return the files' paths.

    One path per key, and for `sales` one per drop of `spec`, in order: a drop whose
    rows all came late still has its file, with no rows, as a real feed would send.

    stores.csv and items.csv are comma-separated with a header; holidays.txt is
    `YYYY-MM-DD name` lines without a header; weather.csv.gz is gzipped,
    semicolon-separated, with a header; sales_YYYY-MM-DD.parquet holds a drop, named
    by its arrival date, in `SALES_SCHEMA`. Decimals are written with a fixed number
    of places (prices 2, weather 1). Each file is written beside its target and
    renamed into place, so a reader never sees half a file, and the gzip header
    carries no time or name, so the same frames always give the same bytes.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stores, items, weather = frames["stores"], frames["items"], frames["weather"]
    paths = {key: [out_dir / name] for key, name in FILE_NAMES.items()}
    _write_atomically(
        paths["stores"][0],
        _csv_bytes(
            STORES_COLUMNS,
            [
                pa.array(stores["store_id"], pa.int64()),
                pa.array(stores["region"], pa.string()),
                pa.array(stores["store_type"], pa.string()),
                pa.array(stores["size_sqm"], pa.int64()),
            ],
            ",",
        ),
    )
    _write_atomically(
        paths["items"][0],
        _csv_bytes(
            ITEMS_COLUMNS,
            [
                pa.array(items["item_id"], pa.int64()),
                pa.array(items["category"], pa.string()),
                _decimal_text(items["base_price"].to_numpy(), 2),
            ],
            ",",
        ),
    )
    holidays = frames["holidays"]
    lines = holidays["date"].dt.strftime(DATE_FORMAT) + " " + holidays["name"] + "\n"
    _write_atomically(paths["holidays"][0], "".join(lines).encode())
    weather_csv = _csv_bytes(
        WEATHER_COLUMNS,
        [
            _date32(weather["date"]),
            pa.array(weather["region"], pa.string()),
            _decimal_text(weather["temperature_c"].to_numpy(), 1),
            _decimal_text(weather["precipitation_mm"].to_numpy(), 1),
        ],
        WEATHER_DELIMITER,
    )
    _write_atomically(paths["weather"][0], _gzip(weather_csv))
    paths["sales"] = _write_drops(spec, frames["drops"], out_dir)
    return paths


def _write_drops(spec: DemandSpec, drops: pd.DataFrame, out_dir: Path) -> list[Path]:
    # Sorted by drop, so each drop is a slice.
    delivered = drops[DROP_DATE_COLUMN].to_numpy()
    paths = []
    for drop in range(spec.drops):
        drop_date = spec.drop_date(drop)
        moment = np.datetime64(drop_date, "ns")
        begin, end = (np.searchsorted(delivered, moment, side=side) for side in ("left", "right"))
        part = drops.iloc[begin:end]
        table = pa.Table.from_arrays(
            [
                _date32(part["date"]),
                pa.array(part["store_id"], pa.int64()),
                pa.array(part["item_id"], pa.int64()),
                pa.array(part["units"], pa.int64()),
                pa.array(part["price"], pa.float64()),
                pa.array(part["on_promotion"], pa.bool_()),
                pa.array(part["stock_out"], pa.bool_()),
                # A safe cast: it fails rather than drop a fraction of a microsecond.
                pa.array(part["recorded_at"]).cast(pa.timestamp("us")),
            ],
            schema=SALES_SCHEMA,
        )
        path = out_dir / sales_file_name(drop_date)
        partial = path.with_name(f".{path.name}.partial")
        pq.write_table(table, partial)
        os.replace(partial, path)
        paths.append(path)
    return paths


def _date32(values: pd.Series) -> pa.Array:
    return pa.array(values.to_numpy()).cast(pa.date32())


def _csv_bytes(names: tuple[str, ...], columns: list[pa.Array], delimiter: str) -> bytes:
    """CSV with a bare header (Arrow would quote it) and unquoted values (none need quotes)."""
    buffer = io.BytesIO()
    buffer.write((delimiter.join(names) + "\n").encode())
    table = pa.Table.from_arrays(columns, names=list(names))
    options = pa_csv.WriteOptions(include_header=False, delimiter=delimiter, quoting_style="none")
    pa_csv.write_csv(table, buffer, options)
    return buffer.getvalue()


def _decimal_text(values: np.ndarray, decimals: int) -> pa.Array:
    """Numbers as text with exactly `decimals` places (Arrow would print 12.0 as 12)."""
    scaled = np.rint(np.asarray(values, dtype=np.float64) * 10**decimals).astype(np.int64)
    whole, fraction = np.divmod(np.abs(scaled), 10**decimals)
    fraction_text = pc.utf8_lpad(pa.array(fraction).cast(pa.string()), width=decimals, padding="0")
    body = pc.binary_join_element_wise(pa.array(whole).cast(pa.string()), fraction_text, ".")
    sign = pa.array(np.where(scaled < 0, "-", ""), pa.string())
    return pc.binary_join_element_wise(sign, body, "")


def _gzip(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as archive:
        archive.write(data)
    return buffer.getvalue()


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday) // 451
    month, day = divmod(h + weekday - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _last_monday_of_august(year: int) -> date:
    last = date(year, 8, 31)
    return last - timedelta(days=last.weekday())


def public_holidays(year: int) -> list[tuple[date, str]]:
    """The eight public holidays of a year: four on fixed dates, four that move."""
    easter = _easter(year)
    return sorted(
        [
            (date(year, 1, 1), "new_year"),
            (easter - timedelta(days=2), "good_friday"),
            (easter + timedelta(days=1), "easter_monday"),
            (date(year, 5, 1), "labour_day"),
            (easter + timedelta(days=39), "ascension_day"),
            (_last_monday_of_august(year), "summer_bank_holiday"),
            (date(year, 12, 25), "christmas"),
            (date(year, 12, 26), "boxing_day"),
        ]
    )


def _calendar(spec: DemandSpec) -> _Calendar:
    dates = np.datetime64(spec.start, "D") + np.arange(spec.days)
    stamps = pd.DatetimeIndex(dates.astype("datetime64[ns]"))
    # Holidays of the next year too: the last days of the period feel their eves.
    known = [h for y in range(spec.start.year, spec.end.year + 2) for h in public_holidays(y)]
    known_days = np.array([np.datetime64(d, "D") for d, _ in known])
    offset = (known_days - np.datetime64(spec.start, "D")).astype(np.int64)
    holiday = np.zeros(spec.days + 2, dtype=bool)
    inside = (offset >= 0) & (offset < spec.days + 2)
    holiday[offset[inside]] = True
    on = holiday[: spec.days]
    eve1 = holiday[1 : spec.days + 1] & ~on
    eve2 = holiday[2 : spec.days + 2] & ~on & ~eve1
    in_period = [(d, name) for d, name in known if spec.start <= d < spec.end]
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime([d for d, _ in in_period]).astype("datetime64[ns]"),
            "name": pd.Series([name for _, name in in_period], dtype=object),
        }
    )
    return _Calendar(
        dates=stamps.to_numpy(),
        weekday=stamps.weekday.to_numpy(),
        day_of_year=stamps.dayofyear.to_numpy(),
        holiday=on,
        eve=(eve1, eve2),
        holidays=frame,
    )


def _draw_stores(rng: np.random.Generator, count: int) -> _Stores:
    region = rng.integers(0, len(REGIONS), size=count)
    store_type = rng.choice(len(STORE_TYPES), size=count, p=_STORE_TYPE_SHARES)
    low = np.array([_STORE_SIZE_SQM[t][0] for t in STORE_TYPES])[store_type]
    high = np.array([_STORE_SIZE_SQM[t][1] for t in STORE_TYPES])[store_type]
    size = rng.integers(low, high, endpoint=True)
    # Within a type, sales grow with floor space, but less than in proportion.
    relative_size = np.sqrt(2.0 * size / (low + high))
    type_level = np.array([_STORE_TYPE_LEVEL[t] for t in STORE_TYPES])[store_type]
    noise = rng.lognormal(-0.5 * _STORE_SIGMA**2, _STORE_SIGMA, size=count)
    trend = rng.normal(*_TREND_PER_YEAR, size=count)
    return _Stores(
        region, store_type, size.astype(np.int64), type_level * relative_size * noise, trend
    )


def _draw_items(rng: np.random.Generator, count: int) -> _Items:
    category = rng.integers(0, len(CATEGORIES), size=count)
    typical = np.array([_CATEGORY_PRICE[c] for c in CATEGORIES])[category]
    base_price = _shelf_price(typical * rng.lognormal(0.0, _PRICE_SIGMA, size=count))
    popularity = rng.lognormal(-0.5 * _ITEM_SIGMA**2, _ITEM_SIGMA, size=count)
    category_level = np.array([_CATEGORY_LEVEL[c] for c in CATEGORIES])[category]
    return _Items(category, base_price, _BASE_UNITS * category_level * popularity)


def _shelf_price(price: np.ndarray) -> np.ndarray:
    """The price rounded down to end in 9 cents (at least 0.09)."""
    return np.round(np.floor(price * 10.0) / 10.0 + 0.09, 2)


def _draw_weather(rng: np.random.Generator, calendar: _Calendar) -> tuple[np.ndarray, np.ndarray]:
    """Daily temperature and precipitation per region, shape (days, regions), rounded to 0.1.

    Temperature is a yearly cosine plus an AR(1) anomaly, so warm spells last a few
    days; wet days follow a two-state Markov chain, so rain comes in spells too.
    """
    days, regions = calendar.dates.size, len(REGIONS)
    climate = np.asarray(_CLIMATE)
    innovation = rng.standard_normal((days, regions))
    wet_u = rng.random((days, regions))
    amount = rng.gamma(*_RAIN_GAMMA, size=(days, regions))

    anomaly = np.empty((days, regions))
    wet = np.empty((days, regions), dtype=bool)
    anomaly[0] = _TEMPERATURE_SD * innovation[0]
    dry_to_wet, wet_to_wet = climate[:, 2], climate[:, 3]
    wet[0] = wet_u[0] < dry_to_wet / (1.0 - wet_to_wet + dry_to_wet)
    keep = np.sqrt(1.0 - _TEMPERATURE_AR**2) * _TEMPERATURE_SD
    for day in range(1, days):
        anomaly[day] = _TEMPERATURE_AR * anomaly[day - 1] + keep * innovation[day]
        wet[day] = wet_u[day] < np.where(wet[day - 1], wet_to_wet, dry_to_wet)

    phase = 2.0 * np.pi * (calendar.day_of_year - _COLDEST_DAY_OF_YEAR) / 365.25
    seasonal = climate[:, 0] - climate[:, 1] * np.cos(phase)[:, None]
    temperature = np.round(seasonal + anomaly, 1)
    precipitation = np.where(wet, np.maximum(np.round(amount, 1), 0.1), 0.0)
    return temperature, precipitation


def _draw_regular_prices(rng: np.random.Generator, items: _Items, days: int) -> np.ndarray:
    """Shelf price of each item per day, shape (days, items): base, then rare permanent changes."""
    count = items.base_price.size
    changes = rng.poisson(_PRICE_CHANGES_PER_YEAR * days / 365.25, size=count)
    item = np.repeat(np.arange(count), changes)
    day = rng.integers(1, max(days, 2), size=item.size)
    step = np.log1p(rng.uniform(*_PRICE_CHANGE, size=item.size))
    log_change = np.zeros((days + 1, count))
    np.add.at(log_change, (day, item), step)
    factor = np.exp(np.cumsum(log_change[:days], axis=0))
    changed = _shelf_price(items.base_price * factor)
    return np.where(factor == 1.0, items.base_price, changed)


def _runs(start: np.ndarray, length: np.ndarray, longest: int) -> np.ndarray:
    """True on the `length` days from each start, along axis 0 (days)."""
    covered = np.zeros(start.shape, dtype=bool)
    days = start.shape[0]
    for offset in range(min(longest, days)):
        covered[offset:] |= (start & (length > offset))[: days - offset]
    return covered


def _draw_promotions(
    rng: np.random.Generator, shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Promotion days and their discount, shape (days, stores, items); a later run wins an overlap."""
    start = rng.random(shape) < _PROMOTION_START_RATE
    low, high = _PROMOTION_DAYS
    length = rng.integers(low, high, size=shape, endpoint=True)
    discount = np.round(rng.uniform(*_PROMOTION_DISCOUNT, size=shape), 2)
    promotion = _runs(start, length, high)
    run_discount = np.zeros(shape)
    days = shape[0]
    for offset in reversed(range(min(high, days))):
        active = (start & (length > offset))[: days - offset]
        target = run_discount[offset:]
        target[active] = discount[: days - offset][active]
    return promotion, run_discount


def _draw_stock_outs(rng: np.random.Generator, promotion: np.ndarray) -> np.ndarray:
    rate = np.where(
        promotion, _STOCK_OUT_START_RATE * _STOCK_OUT_PROMOTION_FACTOR, _STOCK_OUT_START_RATE
    )
    start = rng.random(promotion.shape) < rate
    low, high = _STOCK_OUT_DAYS
    length = rng.integers(low, high, size=promotion.shape, endpoint=True)
    return _runs(start, length, high)


def _per_category(values: dict[str, float], items: _Items) -> np.ndarray:
    return np.array([values[c] for c in CATEGORIES])[items.category]


def _expected_demand(
    rng: np.random.Generator,
    spec: DemandSpec,
    calendar: _Calendar,
    stores: _Stores,
    items: _Items,
    level: np.ndarray,
    temperature: np.ndarray,
    precipitation: np.ndarray,
    price: np.ndarray,
    promotion: np.ndarray,
) -> np.ndarray:
    """Mean units per (day, store, item), the product of the effects in the module docstring."""
    years = np.arange(spec.days) / 365.25
    mean = level[None, :, :] * np.exp(years[:, None] * stores.trend[None, :])[:, :, None]

    profile = np.array([WEEKLY_PROFILE[c] for c in CATEGORIES]).T  # (weekday, category)
    strength = np.array([_WEEKLY_STRENGTH[t] for t in STORE_TYPES])
    weekly = profile[:, None, :] ** strength[None, :, None]  # (weekday, type, category)
    weekly /= weekly.mean(axis=0, keepdims=True)
    mean *= weekly[
        calendar.weekday[:, None, None], stores.store_type[None, :, None], items.category
    ]

    amplitude = _per_category({c: a for c, (a, _) in YEARLY_SEASONALITY.items()}, items)
    peak = _per_category({c: p for c, (_, p) in YEARLY_SEASONALITY.items()}, items)
    phase = 2.0 * np.pi * (calendar.day_of_year[:, None] - peak[None, :]) / 365.25
    mean *= (1.0 + amplitude * np.cos(phase))[:, None, :]

    mean *= np.where(promotion, _per_category(PROMOTION_LIFT, items), 1.0)
    mean *= (price / items.base_price) ** -_per_category(PRICE_ELASTICITY, items)
    after = np.zeros(promotion.shape, dtype=bool)
    for lag in range(1, min(_POST_PROMOTION_DAYS + 1, spec.days)):
        after[lag:] |= promotion[:-lag]
    after &= ~promotion
    mean *= np.where(after, _per_category(_POST_PROMOTION_DIP, items), 1.0)

    sensitivity = _per_category(_HOLIDAY_SENSITIVITY, items)
    eve1, eve2 = calendar.eve
    holiday = np.ones((spec.days, items.category.size))
    holiday[eve1] = 1.0 + _HOLIDAY_EVE_LIFT[0] * sensitivity
    holiday[eve2] = 1.0 + _HOLIDAY_EVE_LIFT[1] * sensitivity
    holiday[calendar.holiday] = _HOLIDAY_FACTOR
    mean *= holiday[:, None, :]

    store_temperature = temperature[:, stores.region]  # (days, stores)
    heat = np.maximum(store_temperature - _HOT_THRESHOLD_C, 0.0)
    mean *= 1.0 + heat[:, :, None] * _per_category(_HEAT_SLOPE, items)[None, None, :]
    rain_slope = np.array([_RAIN_SLOPE[t] for t in STORE_TYPES])[stores.store_type]
    rain = np.minimum(precipitation[:, stores.region], _RAIN_CAP_MM)
    mean *= (1.0 - rain_slope * rain)[:, :, None]

    footfall = rng.lognormal(
        -0.5 * _FOOTFALL_SIGMA**2, _FOOTFALL_SIGMA, size=(spec.days, spec.stores)
    )
    mean *= footfall[:, :, None]
    return mean


def _draw_units(rng: np.random.Generator, mean: np.ndarray, stock_out: np.ndarray) -> np.ndarray:
    """Negative binomial units, censored by stock-outs: part of the first day, nothing after."""
    rate = mean * rng.gamma(_DISPERSION, 1.0 / _DISPERSION, size=mean.shape)
    units = rng.poisson(rate).astype(np.int64)
    first = stock_out.copy()
    first[1:] &= ~stock_out[:-1]
    share = rng.uniform(*_STOCK_OUT_FIRST_DAY_SHARE, size=int(first.sum()))
    units[first] = rng.binomial(units[first], share)
    units[stock_out & ~first] = 0
    return units


def _feed(
    rng: np.random.Generator,
    spec: DemandSpec,
    units: np.ndarray,
    price: np.ndarray,
    promotion: np.ndarray,
    stock_out: np.ndarray,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The truth and the delivered rows, with late rows, corrections and unknown items."""
    days, stores, items = units.shape
    rows = units.size
    day = np.repeat(np.arange(days), stores * items)
    store = np.tile(np.repeat(np.arange(1, stores + 1, dtype=np.int64), items), days)
    item = np.tile(np.arange(1, items + 1, dtype=np.int64), days * stores)
    units, price = units.ravel(), price.ravel()
    promotion, stock_out = promotion.ravel(), stock_out.ravel()

    start_ns = np.datetime64(spec.start, "ns").astype(np.int64)
    # cutoff[k] is the arrival of drop k at midnight; a drop holds rows recorded before it.
    cutoff = start_ns + _DAY_NS * np.array(
        [(spec.drop_date(k) - spec.start).days for k in range(spec.drops)], dtype=np.int64
    )
    window_start = np.r_[start_ns, cutoff[:-1]]
    last = spec.drops - 1
    natural = day // spec.drop_days

    uploaded = _upload_times(rng, start_ns, day)
    late = (rng.random(rows) < LATE_RATE) & (natural < last)
    first_drop = natural + late
    late_at = _times_in_windows(rng, window_start, cutoff, first_drop)
    first_at = np.where(late, late_at, uploaded)

    corrected = (rng.random(rows) < CORRECTION_RATE) & (first_drop < last)
    delay = rng.integers(1, MAX_CORRECTION_DELAY_DROPS, size=rows, endpoint=True)
    correction_drop = np.minimum(first_drop + delay, last)
    correction_at = _times_in_windows(rng, window_start, cutoff, correction_drop)
    error = rng.integers(1, np.maximum(units // 3, 2), endpoint=True) * rng.choice(
        [-1, 1], size=rows
    )
    wrong = units + error
    wrong = np.where(wrong < 0, units - error, wrong)

    extra = _unknown_items(rng, spec, start_ns, rows)

    truth = _sales_frame(
        start_ns,
        day,
        store,
        item,
        units,
        price,
        promotion,
        stock_out,
        np.where(corrected, correction_at, first_at),
    )
    delivered = {
        "day": np.concatenate([day, day[corrected], extra["day"]]),
        "store": np.concatenate([store, store[corrected], extra["store"]]),
        "item": np.concatenate([item, item[corrected], extra["item"]]),
        "units": np.concatenate(
            [np.where(corrected, wrong, units), units[corrected], extra["units"]]
        ),
        "price": np.concatenate([price, price[corrected], extra["price"]]),
        "promotion": np.concatenate([promotion, promotion[corrected], extra["promotion"]]),
        "stock_out": np.concatenate([stock_out, stock_out[corrected], extra["stock_out"]]),
        "at": np.concatenate([first_at, correction_at[corrected], extra["at"]]),
        "drop": np.concatenate(
            [first_drop, correction_drop[corrected], extra["day"] // spec.drop_days]
        ),
    }
    order = np.lexsort(
        (
            delivered["at"],
            delivered["item"],
            delivered["store"],
            delivered["day"],
            delivered["drop"],
        )
    )
    delivered = {key: values[order] for key, values in delivered.items()}
    drops = _sales_frame(
        start_ns,
        delivered["day"],
        delivered["store"],
        delivered["item"],
        delivered["units"],
        delivered["price"],
        delivered["promotion"],
        delivered["stock_out"],
        delivered["at"],
    )
    drops[DROP_DATE_COLUMN] = cutoff[delivered["drop"]].astype("datetime64[ns]")
    return truth, drops


def _upload_times(rng: np.random.Generator, start_ns: int, day: np.ndarray) -> np.ndarray:
    """Evening of the sales day, in whole microseconds (ns since the epoch)."""
    spread_us = _UPLOAD_SPREAD // timedelta(microseconds=1)
    offset_us = rng.integers(0, spread_us, size=day.size)
    return (
        start_ns
        + day * _DAY_NS
        + _UPLOAD_START // timedelta(microseconds=1) * _US_NS
        + offset_us * _US_NS
    )


def _times_in_windows(
    rng: np.random.Generator, window_start: np.ndarray, cutoff: np.ndarray, drop: np.ndarray
) -> np.ndarray:
    """A uniform time in whole microseconds in [window_start, cutoff) of each row's drop."""
    span_us = (cutoff - window_start) // _US_NS
    offset_us = np.floor(rng.random(drop.size) * span_us[drop]).astype(np.int64)
    return window_start[drop] + offset_us * _US_NS


def _unknown_items(
    rng: np.random.Generator, spec: DemandSpec, start_ns: int, rows: int
) -> dict[str, np.ndarray]:
    """Sales of discontinued SKUs: at most one per store and day, recorded on time."""
    count = round(UNKNOWN_ITEM_RATE * rows)
    if rows >= UNKNOWN_ITEM_MIN_ROWS:
        count = max(count, 1)
    slot = rng.choice(spec.days * spec.stores, size=count, replace=False)
    day, store = np.divmod(slot, spec.stores)
    return {
        "day": day,
        "store": store.astype(np.int64) + 1,
        "item": spec.items + 1 + rng.integers(0, DISCONTINUED_SKUS, size=count),
        "units": rng.poisson(2.0, size=count).astype(np.int64),
        "price": _shelf_price(rng.uniform(0.5, 5.0, size=count)),
        "promotion": np.zeros(count, dtype=bool),
        "stock_out": np.zeros(count, dtype=bool),
        "at": _upload_times(rng, start_ns, day),
    }


def _sales_frame(
    start_ns: int,
    day: np.ndarray,
    store: np.ndarray,
    item: np.ndarray,
    units: np.ndarray,
    price: np.ndarray,
    promotion: np.ndarray,
    stock_out: np.ndarray,
    recorded_ns: np.ndarray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": (start_ns + day.astype(np.int64) * _DAY_NS).astype("datetime64[ns]"),
            "store_id": store.astype(np.int64),
            "item_id": item.astype(np.int64),
            "units": units.astype(np.int64),
            "price": price.astype(np.float64),
            "on_promotion": promotion.astype(bool),
            "stock_out": stock_out.astype(bool),
            "recorded_at": recorded_ns.astype("datetime64[ns]"),
        }
    )


def _stores_frame(stores: _Stores) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "store_id": np.arange(1, stores.region.size + 1, dtype=np.int64),
            "region": np.asarray(REGIONS, dtype=object)[stores.region],
            "store_type": np.asarray(STORE_TYPES, dtype=object)[stores.store_type],
            "size_sqm": stores.size_sqm,
        }
    )


def _items_frame(items: _Items) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": np.arange(1, items.category.size + 1, dtype=np.int64),
            "category": np.asarray(CATEGORIES, dtype=object)[items.category],
            "base_price": items.base_price.astype(np.float64),
        }
    )


def _weather_frame(
    calendar: _Calendar, temperature: np.ndarray, precipitation: np.ndarray
) -> pd.DataFrame:
    days, regions = temperature.shape
    return pd.DataFrame(
        {
            "date": np.repeat(calendar.dates, regions),
            "region": np.tile(np.asarray(REGIONS, dtype=object), days),
            "temperature_c": temperature.ravel(),
            "precipitation_mm": precipitation.ravel(),
        }
    )

"""The published `hour.csv` of the UCI Bike Sharing data set, declared as it is.

The file has no entity column (it is one city's system) and no timestamp: the event
time is derived from the date and the hour, and the entity key is a constant. Times are
the city's local time, read as UTC (there is no zone in the file).
"""

from __future__ import annotations

from featurehouse.usecase import Column, DateAndHour, Entity, RawDataset

SYSTEM = "system"
BIKE_SYSTEM = Entity("bike_system", {SYSTEM: "string"}, "A city's bike-sharing system")

RENTALS = RawDataset(
    "rentals",
    "hour*.csv*",
    (
        Column(SYSTEM, "string", value="capital_bikeshare"),
        Column("date", "date", raw="dteday", format="yyyy-MM-dd"),
        Column("hour", "bigint", raw="hr", min=0, max=23),
        Column("holiday", "bigint", allowed=("0", "1")),
        Column("weekday", "bigint", min=0, max=6),
        Column("workingday", "bigint", allowed=("0", "1")),
        Column("weathersit", "bigint", min=1, max=4, description="1 clear .. 4 heavy rain"),
        Column("temp", "double", min=0, max=1, description="Temperature / 41 °C"),
        Column("atemp", "double", min=0, max=1, description="Feeling temperature / 50 °C"),
        Column("hum", "double", min=0, max=1, description="Humidity / 100"),
        Column("windspeed", "double", min=0, max=1, description="Wind speed / 67"),
        Column("casual", "bigint", min=0),
        Column("registered", "bigint", min=0),
        Column("cnt", "bigint", min=0, description="Rentals in the hour"),
    ),
    keys=(SYSTEM, "timestamp"),
    time=DateAndHour("date", "hour"),
    description="Hourly rentals of Capital Bikeshare with the hour's weather and calendar",
)

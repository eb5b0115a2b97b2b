"""The machine and its five raw data sets, in the format of the public Azure
predictive-maintenance data (CSV with a header, `yyyy-MM-dd HH:mm:ss` times)."""

from __future__ import annotations

from featurehouse.usecase import Column, Entity, RawDataset, Reference

MACHINE_ID = "machine_id"
MACHINE = Entity("machine", {MACHINE_ID: "bigint"}, "One machine of the fleet")

_TIME = Column("timestamp", "timestamp", raw="datetime", format="yyyy-MM-dd HH:mm:ss")
_MACHINE = Column("machine_id", "bigint", raw="machineID")
# A reading, error or record of a machine that is not in the machine list is refused.
_KNOWN_MACHINE = (Reference(("machine_id",), "machines"),)

MACHINES = RawDataset(
    "machines",
    "PdM_machines*.csv*",
    (_MACHINE, Column("model", "string"), Column("age", "bigint", min=0)),
    keys=("machine_id",),
    description="The fleet: each machine's model and age in years",
)
TELEMETRY = RawDataset(
    "telemetry",
    "PdM_telemetry*.csv*",
    (
        _TIME,
        _MACHINE,
        Column("volt", "double"),
        Column("rotate", "double"),
        Column("pressure", "double"),
        Column("vibration", "double"),
    ),
    keys=("machine_id", "timestamp"),
    time="timestamp",
    references=_KNOWN_MACHINE,
    description="Hourly sensor readings per machine",
)
ERRORS = RawDataset(
    "errors",
    "PdM_errors*.csv*",
    (_TIME, _MACHINE, Column("error_id", "string", raw="errorID")),
    keys=("machine_id", "timestamp", "error_id"),
    time="timestamp",
    references=_KNOWN_MACHINE,
    description="Errors the machines logged (they do not stop the machine)",
)
MAINTENANCE = RawDataset(
    "maintenance",
    "PdM_maint*.csv*",
    (_TIME, _MACHINE, Column("component", "string", raw="comp")),
    keys=("machine_id", "timestamp", "component"),
    time="timestamp",
    references=_KNOWN_MACHINE,
    description="Component replacements, scheduled or after a failure",
)
FAILURES = RawDataset(
    "failures",
    "PdM_failures*.csv*",
    (_TIME, _MACHINE, Column("component", "string", raw="failure")),
    keys=("machine_id", "timestamp", "component"),
    time="timestamp",
    references=_KNOWN_MACHINE,
    description="Component failures",
)

DATASETS = (MACHINES, TELEMETRY, ERRORS, MAINTENANCE, FAILURES)

"""Declarative data-quality expectations for feature tables, checked inside the feature job.

Row-level expectations are SQL predicates a good row satisfies; a row that fails one
is quarantined with the expectation's name as its reason (a null value passes: a
range says nothing about a missing reading). Table-level expectations (uniqueness,
freshness) judge the batch as a whole. Every expectation has a severity: `warn`
records the failure and goes on, `fail` stops the job before anything is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyspark.sql.functions as F
from pyspark.sql import DataFrame

from featurehouse.io.lakehouse import sql_string

SEVERITIES = ("warn", "fail")
REASON = "_dq_reason"


@dataclass(frozen=True)
class Expectation:
    """`kind` is "row" (predicate per row), "unique" (columns) or "fresh" (timestamp column)."""

    name: str
    kind: str
    severity: str
    predicate: str = ""
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"expectation {self.name!r}: severity must be one of {SEVERITIES}")

    def failing(self) -> str:
        """SQL: true for a row that breaks a row-level expectation (null counts as passing)."""
        return f"NOT coalesce({self.predicate}, true)"


def not_null(*columns: str, severity: str = "fail") -> Expectation:
    predicate = " AND ".join(f"`{c}` IS NOT NULL" for c in columns)
    return Expectation(f"{', '.join(columns)} not null", "row", severity, predicate)


def in_range(
    column: str, low: float | None = None, high: float | None = None, *, severity: str = "warn"
) -> Expectation:
    bounds = [f"`{column}` >= {low}"] if low is not None else []
    bounds += [f"`{column}` <= {high}"] if high is not None else []
    # isnan: NaN compares greater than any number in Spark, so it would pass `<= high` alone.
    predicate = " AND ".join([*bounds, f"NOT isnan(`{column}`)"])
    text = f"in [{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    return Expectation(f"{column} {text}", "row", severity, predicate)


def unique(*columns: str, severity: str = "fail") -> Expectation:
    return Expectation(f"({', '.join(columns)}) unique", "unique", severity, columns=columns)


def fresh(column: str, *, severity: str = "warn") -> Expectation:
    """The newest `column` is recent enough; the allowed age is configuration (quality.*)."""
    return Expectation(f"{column} fresh", "fresh", severity, columns=(column,))


@dataclass(frozen=True)
class CheckResult:
    expectation: Expectation
    passed: bool | None  # None: not checked (e.g. freshness with no maximum age configured)
    failed_rows: int
    total_rows: int
    detail: str

    @property
    def status(self) -> str:
        return "skipped" if self.passed is None else ("pass" if self.passed else "fail")


def with_reasons(batch: DataFrame, expectations: Sequence[Expectation]) -> DataFrame:
    """Adds `_dq_reason`: the names of the row-level expectations a row breaks, or null."""
    # One SQL expression: a table has dozens of expectations, and building each from
    # Column objects costs several Python-to-JVM calls.
    reasons = [
        f"IF({e.failing()}, {sql_string(e.name)}, NULL)" for e in expectations if e.kind == "row"
    ]
    reason = f"concat_ws('; ', {', '.join(reasons)})" if reasons else "''"
    return batch.withColumn(REASON, F.expr(f"nullif({reason}, '')"))


@dataclass(frozen=True)
class BatchQuality:
    rows: int
    quarantined: int  # rows that break at least one row-level expectation
    results: tuple[CheckResult, ...]

    @property
    def failed(self) -> list[CheckResult]:
        """Failed expectations of severity `fail`: the batch must not be published."""
        return [c for c in self.results if c.passed is False and c.expectation.severity == "fail"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [c for c in self.results if c.passed is False and c.expectation.severity == "warn"]


def check_batch(
    batch: DataFrame,
    expectations: Sequence[Expectation],
    *,
    now: datetime,
    max_age: timedelta | None,
) -> BatchQuality:
    """Evaluates every expectation on `batch` (with `_dq_reason`) in a single aggregation."""
    metrics = [F.count(F.lit(1)).alias("rows"), F.count(REASON).alias("quarantined")]
    for i, e in enumerate(expectations):
        if e.kind == "row":
            metrics.append(F.expr(f"count_if({e.failing()})").alias(f"e{i}"))
        elif e.kind == "unique":
            distinct = F.count_distinct(*[F.col(c) for c in e.columns])
            metrics.append((F.count(F.lit(1)) - distinct).alias(f"e{i}"))
        elif e.kind == "fresh":
            metrics.append(F.max(e.columns[0]).alias(f"e{i}"))
        else:
            raise ValueError(f"unknown expectation kind {e.kind!r}")
    row = batch.agg(*metrics).collect()[0]
    total = int(row["rows"])
    results = tuple(
        _result(e, row[f"e{i}"], total, now, max_age) for i, e in enumerate(expectations)
    )
    return BatchQuality(total, int(row["quarantined"]), results)


def _result(e: Expectation, value, total: int, now: datetime, max_age) -> CheckResult:
    if e.kind == "fresh":
        if max_age is None:
            return CheckResult(e, None, 0, total, "no maximum age configured")
        if value is None:
            return CheckResult(e, False, 0, total, "no rows")
        age = now - value
        return CheckResult(e, age <= max_age, 0, total, f"newest {value}, {age} old")
    failed = int(value or 0)
    what = "duplicate rows" if e.kind == "unique" else "rows fail"
    return CheckResult(e, failed == 0, failed, total, f"{failed} of {total} {what}")

"""Reduce whole windows to what the drift statistics need, in three Spark passes.

The input is one DataFrame with every window's rows, labelled by a window column (for example
"baseline", "previous", "current"), the monitored columns and the slice columns. Every row
counts: nothing below is computed on a sample except where the bin edges go.

1. **Rows per reference window** (`groupBy(window).count()`; on Delta this reads no column).
2. **A uniform sample of each reference window** (`rand() < fraction`, at most `sample_rows`
   rows, all of a smaller window) to the driver: its percentiles (`grid` bins) and deciles
   (`bins` bins) are each numeric column's bin edges. The sample only places the edges: the
   counts per bin are exact, so the empirical CDF at every edge is exact.
3. **One pass over every row of every window** (`mapInArrow`, vectorised numpy over Arrow
   batches of 10,000 rows): per window, slice and column, the row and non-null counts, mean
   and sum of squared deviations (exact, merged with Chan's formula), min, max, a HyperLogLog
   sketch of the distinct values, and for numbers the count and sum of values per bin and a
   quantile summary, for categories the count per category. Each chunk's values are sorted
   once (numpy's SIMD sort): bin counts are the edges' positions in the sorted values, bin
   sums differences of their running sum, and the quantile summary 200 evenly ranked values
   per chunk, which bounds the profile's quantile rank error by 1/400. Each Spark partition
   returns one small row per (window, slice, column); the driver merges them.

Why not native aggregates: on 2 cores, 2 x 100k rows x 50 columns, unpivoting to (column,
value) rows with a binary search for the bin in SQL expressions cost ~12-20 CPU s, a wide
aggregate of min, max, mean and std of 50 columns ~4 CPU s (its generated code is past the
JIT limit), and `percentile_approx` of 50 columns over one 100k window ~7.5 CPU s, against
~4 CPU s for pass 3 with every statistic, most of it Spark's conversion of rows to Arrow.

A value is null for the statistics when it is SQL NULL or NaN. The slice ALL (slice key None)
is the whole window; each slice column also gives one slice per value (null is a value).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyspark.sql.functions as F
from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = ("feature", "prediction")

PROFILE_PROBABILITIES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
"""The quantiles kept in the profile table."""
SAMPLE_ROWS = 50_000
"""Rows of a reference window whose quantiles place the bin edges (no sample below this
size): each bin then holds its share of the reference within about 0.1 percentage point."""
QUANTILE_POINTS = 200
"""Evenly ranked values kept per chunk of 10,000 for the profile's quantiles."""
MAX_QUANTILE_POINTS = 20_000
"""A summary with more points is thinned to half as many (each thinning adds at most
1/MAX_QUANTILE_POINTS to the rank error)."""
HLL_PRECISION = 12
"""HyperLogLog registers 2^12: distinct counts within about 1.6% (one standard error)."""
CHUNK_ROWS = 10_000
"""Rows processed at a time (Spark's Arrow batches hold 10,000). Arrays of a column then stay
under 128 KB, glibc's threshold for fresh memory maps: at 16,384 rows and above every numpy
temporary page-faults, and the same pass cost ten times the CPU."""

_WINDOW = "_w"

SliceId = tuple[str | None, str | None]
"""(slice key, slice value); ALL = (None, None) is the whole window."""
ALL: SliceId = (None, None)


@dataclass(frozen=True)
class MonitoredColumn:
    name: str
    kind: str
    """"feature" or "prediction"."""
    data_type: str
    """"numeric" or "categorical"."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.data_type not in (NUMERIC, CATEGORICAL):
            raise ValueError(f"data_type must be numeric or categorical, got {self.data_type!r}")


@dataclass(frozen=True)
class Profile:
    """One column of one window and slice."""

    window: str
    slice_key: str | None
    slice_value: str | None
    column: str
    rows: int
    count: int
    """Non-null values."""
    mean: float | None = None
    stddev: float | None = None
    """Sample standard deviation (None below two values)."""
    min: float | None = None
    max: float | None = None
    quantiles: dict[float, float] = field(default_factory=dict)
    """Quantiles by probability (numbers only), from the window's sample."""
    distinct: int = 0
    """Distinct non-null values: exact for categories, HyperLogLog for numbers."""

    @property
    def nulls(self) -> int:
        return self.rows - self.count

    @property
    def population_std(self) -> float:
        """Standard deviation with denominator n (0 for fewer than two values)."""
        if self.stddev is None or self.count < 2:
            return 0.0
        return float(self.stddev) * math.sqrt((self.count - 1) / self.count)


@dataclass(frozen=True)
class Histogram:
    """A numeric column's count and sum of values per bin of its edges."""

    counts: np.ndarray
    sums: np.ndarray


@dataclass(frozen=True)
class Measurements:
    """What the passes found: profiles, bin edges, counts per bin or per category."""

    windows: tuple[str, ...]
    columns: tuple[MonitoredColumn, ...]
    slices: tuple[str, ...]
    profiles: dict[tuple[str, SliceId, str], Profile]
    edges: dict[str, np.ndarray]
    """Per numeric column: sorted bin edges (the reference windows' quantiles)."""
    coarse_edges: dict[tuple[str, str], np.ndarray]
    """Per (reference window, numeric column): its deciles, a subset of the column's edges."""
    histograms: dict[tuple[str, SliceId, str], Histogram]
    categories: dict[tuple[str, SliceId, str], dict[str | None, int]]

    def profile(self, window: str, slice_id: SliceId, column: str) -> Profile:
        """The profile, or an empty one when the window (or slice) has no rows."""
        found = self.profiles.get((window, slice_id, column))
        return found or Profile(window, slice_id[0], slice_id[1], column, rows=0, count=0)

    def rows(self, window: str, slice_id: SliceId = ALL) -> int:
        """Rows of a window or slice, null or not."""
        if not self.columns:
            return 0
        return self.profile(window, slice_id, self.columns[0].name).rows

    def slice_ids(self, windows: Sequence[str]) -> list[SliceId]:
        """ALL, then every slice found in any of `windows`, sorted."""
        found = {slice_id for (w, slice_id, _) in self.profiles if w in windows} - {ALL}
        return [ALL, *sorted(found, key=lambda s: (s[0], s[1] is None, s[1] or ""))]

    def histogram(self, window: str, slice_id: SliceId, column: str) -> Histogram:
        found = self.histograms.get((window, slice_id, column))
        if found is not None:
            return found
        size = self.edges[column].size + 1
        return Histogram(np.zeros(size), np.zeros(size))


def measure(
    frame: DataFrame,
    *,
    window_column: str,
    windows: Sequence[str],
    references: Sequence[str],
    columns: Sequence[MonitoredColumn],
    slices: Sequence[str] = (),
    grid: int = 100,
    bins: int = 10,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 7,
) -> Measurements:
    """Profile every window of `frame` and count every column's values per bin or category.

    `references` are the windows others are compared with: their percentiles (1/grid, 2/grid,
    ...) and deciles (1/bins, ...) over the whole window are the bin edges of each numeric
    column, shared by all windows and slices.
    """
    windows = tuple(windows)
    _check_arguments(frame, window_column, windows, references, columns, slices)
    grid_probabilities = _probabilities(grid)
    coarse_probabilities = _probabilities(bins)
    edge_probabilities = tuple(sorted({*grid_probabilities, *coarse_probabilities}))
    prepared = _prepared(frame, window_column, windows, columns, slices)
    quantiles = _reference_quantiles(
        prepared, windows, references, columns, edge_probabilities, sample_rows, seed
    )
    edges, coarse_edges, shifts = {}, {}, {}
    for column in columns:
        if column.data_type != NUMERIC:
            continue
        found = [quantiles[(w, column.name)] for w in references if (w, column.name) in quantiles]
        values = [q[p] for q in found for p in edge_probabilities]
        edges[column.name] = np.unique(np.asarray(values, dtype="float64"))
        for w in references:
            q = quantiles.get((w, column.name), {})
            coarse_edges[(w, column.name)] = np.unique(
                np.asarray([q[p] for p in coarse_probabilities if p in q], dtype="float64")
            )
        # Moments are accumulated around a typical value, so large offsets cost no precision.
        shifts[column.name] = float(np.median(values)) if values else 0.0
    spec = KernelSpec(
        columns=tuple(columns),
        slices=tuple(slices),
        edges=tuple(edges.get(c.name, np.empty(0)) for c in columns),
        shifts=tuple(shifts.get(c.name, 0.0) for c in columns),
    )
    summaries = (
        prepared.mapInArrow(lambda batches: summarise_batches(batches, spec), SUMMARY_DDL)
        .toArrow()
        .to_pylist()
    )
    profiles, histograms, categories = {}, {}, {}
    for (w, slice_index, slice_value, c), summary in merge_summaries(summaries, spec).items():
        window, column = windows[w], columns[c]
        slice_id: SliceId = ALL if slice_index < 0 else (slices[slice_index], slice_value)
        key = (window, slice_id, column.name)
        profiles[key] = summary.profile(window, slice_id, column, spec.shifts[c])
        if column.data_type == NUMERIC:
            histograms[key] = Histogram(
                summary.bin_counts, summary.bin_sums + spec.shifts[c] * summary.bin_counts
            )
        else:
            categories[key] = dict(summary.categories)
    return Measurements(
        windows=windows,
        columns=tuple(columns),
        slices=tuple(slices),
        profiles=profiles,
        edges=edges,
        coarse_edges=coarse_edges,
        histograms=histograms,
        categories=categories,
    )


def _check_arguments(
    frame: DataFrame,
    window_column: str,
    windows: Sequence[str],
    references: Sequence[str],
    columns: Sequence[MonitoredColumn],
    slices: Sequence[str],
) -> None:
    names = [c.name for c in columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"columns requested more than once: {duplicated}")
    missing = [n for n in dict.fromkeys([window_column, *names, *slices]) if n not in frame.columns]
    if missing:
        raise ValueError(f"columns missing from the windows' frame: {missing}")
    if not set(references) <= set(windows):
        raise ValueError(f"reference windows {list(references)} must be among {list(windows)}")


def _probabilities(bins: int) -> tuple[float, ...]:
    if bins < 2:
        raise ValueError(f"need at least 2 bins, got {bins}")
    return tuple(round(k / bins, 10) for k in range(1, bins))


def _prepared(
    frame: DataFrame,
    window_column: str,
    windows: Sequence[str],
    columns: Sequence[MonitoredColumn],
    slices: Sequence[str],
) -> DataFrame:
    """Window as its index in `windows`, slices as strings, numbers as doubles, categories as
    strings, under positional names (s0.., c0..). Written as SQL expressions:
    one call into the JVM instead of several per column."""
    cases = " ".join(
        f"WHEN {_quoted(window_column)} = {_sql_string(name)} THEN {index}"
        for index, name in enumerate(windows)
    )
    selected = [f"CAST(CASE {cases} END AS INT) AS {_WINDOW}"]
    selected += [f"CAST({_quoted(s)} AS STRING) AS s{i}" for i, s in enumerate(slices)]
    for i, column in enumerate(columns):
        if column.data_type == NUMERIC:
            # NaN stays NaN: the pass over the rows treats it as null (cheaper there than a
            # nanvl per value here, which pushed the projection past the JIT's method limit).
            selected.append(f"CAST({_quoted(column.name)} AS DOUBLE) AS c{i}")
        else:
            selected.append(f"CAST({_quoted(column.name)} AS STRING) AS c{i}")
    return frame.selectExpr(*selected).where(f"{_WINDOW} IS NOT NULL")


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _sql_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _reference_quantiles(
    prepared: DataFrame,
    windows: Sequence[str],
    references: Sequence[str],
    columns: Sequence[MonitoredColumn],
    probabilities: Sequence[float],
    sample_rows: int,
    seed: int,
) -> dict[tuple[str, str], dict[float, float]]:
    """Quantiles of every numeric column of each reference window (whole window), from a
    uniform sample of at most `sample_rows` rows; values of the sample ("inverted CDF"), never
    interpolated. Windows and columns without a value are left out."""
    numeric = [i for i, c in enumerate(columns) if c.data_type == NUMERIC]
    codes = [windows.index(w) for w in references]
    if not numeric or not codes:
        return {}
    in_references = prepared.where(F.col(_WINDOW).isin(codes))
    rows = {r[_WINDOW]: r["count"] for r in in_references.groupBy(_WINDOW).count().collect()}
    if not rows:
        return {}
    fraction = F.lit(0.0)
    for code, n in rows.items():
        share = F.lit(min(1.0, sample_rows / n))
        fraction = F.when(F.col(_WINDOW) == code, share).otherwise(fraction)
    sample = (
        in_references.where(F.rand(seed) < fraction)
        .select(_WINDOW, *[f"c{i}" for i in numeric])
        .toArrow()
    )
    window_codes = sample.column(_WINDOW).to_numpy()
    result: dict[tuple[str, str], dict[float, float]] = {}
    for code in codes:
        in_window = window_codes == code
        for i in numeric:
            values = sample.column(f"c{i}").to_numpy(zero_copy_only=False)[in_window]
            values = values[~np.isnan(values)]
            if values.size:
                q = np.quantile(values, probabilities, method="inverted_cdf")
                result[(windows[code], columns[i].name)] = dict(
                    zip(probabilities, q.tolist(), strict=True)
                )
    return result


# --- the pass over every row: pure numpy / pyarrow, tested without Spark -----------------------

SUMMARY_DDL = (
    "window int, slice int, slice_value string, column int, rows bigint, count bigint,"
    " mean double, m2 double, min double, max double, bin_counts array<bigint>,"
    " bin_sums array<double>, hll binary, points array<double>, weights array<double>,"
    " categories array<string>, category_counts array<bigint>"
)
_SUMMARY_SCHEMA = pa.schema(
    [
        ("window", pa.int32()),
        ("slice", pa.int32()),
        ("slice_value", pa.string()),
        ("column", pa.int32()),
        ("rows", pa.int64()),
        ("count", pa.int64()),
        ("mean", pa.float64()),
        ("m2", pa.float64()),
        ("min", pa.float64()),
        ("max", pa.float64()),
        ("bin_counts", pa.list_(pa.int64())),
        ("bin_sums", pa.list_(pa.float64())),
        ("hll", pa.binary()),
        ("points", pa.list_(pa.float64())),
        ("weights", pa.list_(pa.float64())),
        ("categories", pa.list_(pa.string())),
        ("category_counts", pa.list_(pa.int64())),
    ]
)


@dataclass(frozen=True)
class KernelSpec:
    """What the pass over every row needs: the columns, slices, each numeric column's bin edges
    and the offset its moments are accumulated around."""

    columns: tuple[MonitoredColumn, ...]
    slices: tuple[str, ...]
    edges: tuple[np.ndarray, ...]
    shifts: tuple[float, ...]
    chunk_rows: int = CHUNK_ROWS


@dataclass
class Summary:
    """One column of one window and slice: mergeable counts, moments, sketch and histogram.
    Numbers are relative to the column's shift."""

    rows: int = 0
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    bin_counts: np.ndarray | None = None
    bin_sums: np.ndarray | None = None
    hll: np.ndarray | None = None
    points: np.ndarray | None = None
    """Quantile summary: values, each standing for `weights` values of the column."""
    weights: np.ndarray | None = None
    categories: dict[str | None, int] = field(default_factory=dict)

    def add(self, other: Summary) -> None:
        """Merge `other` into this summary (Chan et al.'s update for mean and M2)."""
        total = self.count + other.count
        if other.count:
            delta = other.mean - self.mean
            self.mean += delta * other.count / total
            self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.rows += other.rows
        self.count = total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.bin_counts is not None:
            if self.bin_counts is None:
                self.bin_counts, self.bin_sums = other.bin_counts.copy(), other.bin_sums.copy()
            else:
                self.bin_counts += other.bin_counts
                self.bin_sums += other.bin_sums
        if other.hll is not None:
            self.hll = other.hll.copy() if self.hll is None else np.maximum(self.hll, other.hll)
        if other.points is not None:
            if self.points is None:
                self.points, self.weights = other.points, other.weights
            else:
                self.points, self.weights = _thinned(
                    np.concatenate([self.points, other.points]),
                    np.concatenate([self.weights, other.weights]),
                )
        for category, n in other.categories.items():
            self.categories[category] = self.categories.get(category, 0) + n

    def profile(
        self,
        window: str,
        slice_id: SliceId,
        column: MonitoredColumn,
        shift: float,
    ) -> Profile:
        if column.data_type == CATEGORICAL:
            distinct = sum(1 for k, n in self.categories.items() if k is not None and n > 0)
            return Profile(window, *slice_id, column.name, self.rows, self.count, distinct=distinct)
        if self.count == 0:
            return Profile(window, *slice_id, column.name, self.rows, 0)
        stddev = math.sqrt(max(self.m2, 0.0) / (self.count - 1)) if self.count > 1 else None
        distinct = hll_estimate(self.hll) if self.hll is not None else 0
        return Profile(
            window,
            *slice_id,
            column.name,
            rows=self.rows,
            count=self.count,
            mean=self.mean + shift,
            stddev=stddev,
            min=self.min + shift,
            max=self.max + shift,
            quantiles=self.quantiles(PROFILE_PROBABILITIES, shift),
            distinct=int(min(distinct, self.count)),
        )

    def quantiles(self, probabilities: Sequence[float], shift: float = 0.0) -> dict[float, float]:
        """Quantiles from the summary's points: the smallest point whose cumulative weight
        reaches p of the total (like numpy's "inverted_cdf" on the raw values)."""
        if self.points is None or self.points.size == 0:
            return {}
        order = np.argsort(self.points, kind="stable")
        values, cumulative = self.points[order], np.cumsum(self.weights[order])
        ranks = np.asarray(probabilities) * cumulative[-1]
        index = np.minimum(np.searchsorted(cumulative, ranks, side="left"), values.size - 1)
        found = np.clip(values[index], self.min, self.max) + shift
        return dict(zip(probabilities, found.tolist(), strict=True))


def _thinned(points: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_QUANTILE_POINTS points: past it, half as many, evenly spaced by weight."""
    if points.size <= MAX_QUANTILE_POINTS:
        return points, weights
    order = np.argsort(points, kind="stable")
    points, cumulative = points[order], np.cumsum(weights[order])
    keep = MAX_QUANTILE_POINTS // 2
    targets = (np.arange(keep) + 0.5) * cumulative[-1] / keep
    index = np.minimum(np.searchsorted(cumulative, targets, side="left"), points.size - 1)
    return points[index], np.full(keep, cumulative[-1] / keep)


def summarise_batches(
    batches: Iterator[pa.RecordBatch], spec: KernelSpec
) -> Iterator[pa.RecordBatch]:
    """One Spark partition's summaries: a row per (window, slice, slice value, column) seen."""
    summaries: dict[tuple[int, int, str | None, int], Summary] = {}
    for batch in batches:
        for offset in range(0, batch.num_rows, spec.chunk_rows):
            chunk = pa.Table.from_batches([batch.slice(offset, spec.chunk_rows)])
            _summarise_chunk(chunk, spec, summaries)
    yield _summary_batch(summaries)


def _summarise_chunk(table: pa.Table, spec: KernelSpec, summaries: dict) -> None:
    """Add one chunk of rows to `summaries`.

    Per group (a window, or a window and slice value) and numeric column, the values are
    sorted once: the bin counts are then the positions of the edges in the sorted values, the
    bin sums differences of their running sum, min and max the ends. Sorting (SIMD in numpy)
    is several times cheaper than looking up each value's bin.
    """
    window = table.column(_WINDOW).to_numpy()
    groupings = [_Grouping.of(-1, window, [None])]
    for s in range(len(spec.slices)):
        codes, labels = _encode(table.column(f"s{s}"))
        groupings.append(_Grouping.of(s, window * len(labels) + codes, labels))
    for c, column in enumerate(spec.columns):
        values = table.column(f"c{c}")
        if column.data_type == NUMERIC:
            x = np.subtract(values.to_numpy(zero_copy_only=False), spec.shifts[c], dtype=np.float64)
            edges = spec.edges[c] - spec.shifts[c]
            registers, ranks = _hll_hashes(x)
            for grouping in groupings:
                xg, rg, kg = (
                    (x, registers, ranks)
                    if grouping.order is None
                    else (x[grouping.order], registers[grouping.order], ranks[grouping.order])
                )
                for group, start, stop in grouping.groups():
                    part = _numeric_summary(xg[start:stop], rg[start:stop], kg[start:stop], edges)
                    _merge_into(summaries, (*grouping.key(group), c), part)
        else:
            codes, labels = _encode(values)
            valid = np.asarray([label is not None for label in labels], dtype=bool)[codes]
            k = len(labels)
            for grouping in groupings:
                counts = np.bincount(
                    grouping.ids[valid] * k + codes[valid], minlength=grouping.size * k
                ).reshape(grouping.size, k)
                for group, start, stop in grouping.groups():
                    found = {labels[i]: int(counts[group, i]) for i in np.nonzero(counts[group])[0]}
                    part = Summary(rows=stop - start, count=sum(found.values()), categories=found)
                    _merge_into(summaries, (*grouping.key(group), c), part)


@dataclass(frozen=True)
class _Grouping:
    """Rows of a chunk grouped by window (slice -1) or by window and one slice column's value;
    `order` makes each group contiguous (None when the rows are already one group)."""

    slice_index: int
    ids: np.ndarray
    size: int
    labels: list
    order: np.ndarray | None
    bounds: np.ndarray

    @classmethod
    def of(cls, slice_index: int, ids: np.ndarray, labels: list) -> _Grouping:
        size = (int(ids.max()) + 1) if ids.size else 0
        counts = np.bincount(ids, minlength=size)
        single = np.count_nonzero(counts) <= 1
        order = None if single else np.argsort(ids, kind="stable")
        return cls(slice_index, ids, size, labels, order, np.concatenate([[0], np.cumsum(counts)]))

    def groups(self) -> Iterator[tuple[int, int, int]]:
        """(group, start, stop) of every non-empty group, in the `order`ed rows."""
        for group in np.nonzero(np.diff(self.bounds))[0]:
            yield int(group), int(self.bounds[group]), int(self.bounds[group + 1])

    def key(self, group: int) -> tuple[int, int, str | None]:
        """(window, slice index, slice value) of a group."""
        return group // len(self.labels), self.slice_index, self.labels[group % len(self.labels)]


def _numeric_summary(
    values: np.ndarray, registers: np.ndarray, ranks: np.ndarray, edges: np.ndarray
) -> Summary:
    """Counts, exact moments, min, max, sketch and histogram of one group's values (NaN:
    null)."""
    valid = ~np.isnan(values)
    ordered = np.sort(values)  # NaN sorts last
    k = int(np.count_nonzero(valid))
    ordered = ordered[:k]
    positions = np.concatenate([[0], np.searchsorted(ordered, edges, side="right"), [k]])
    running = np.concatenate([[0.0], np.cumsum(ordered)])
    sketch = np.zeros(1 << HLL_PRECISION, dtype=np.uint8)
    np.maximum.at(sketch, registers[valid], ranks[valid])
    mean = running[-1] / k if k else 0.0
    deviations = ordered - mean
    kept = min(k, QUANTILE_POINTS)
    picks = ((np.arange(kept) + 0.5) * k / kept).astype(np.int64) if kept else np.empty(0, int)
    return Summary(
        rows=int(values.size),
        count=k,
        mean=float(mean),
        m2=float(np.dot(deviations, deviations)),
        min=float(ordered[0]) if k else math.inf,
        max=float(ordered[-1]) if k else -math.inf,
        bin_counts=np.diff(positions).astype("int64"),
        bin_sums=np.diff(running[positions]),
        hll=sketch,
        points=ordered[picks],
        weights=np.full(kept, k / kept) if kept else np.empty(0),
    )


def _merge_into(summaries: dict, key: tuple, part: Summary) -> None:
    found = summaries.get(key)
    if found is None:
        summaries[key] = part
    else:
        found.add(part)


def _encode(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, list]:
    """Codes 0..k-1 per value and the k labels (None for null, which is its own code)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    encoded = pc.dictionary_encode(column, null_encoding="encode")
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype("int64")
    return codes, encoded.dictionary.to_pylist()


def _summary_batch(summaries: Mapping[tuple, Summary]) -> pa.RecordBatch:
    keys = sorted(summaries, key=lambda k: (k[0], k[1], k[2] is None, k[2] or "", k[3]))
    rows = []
    for w, slice_index, slice_value, c in keys:
        s = summaries[(w, slice_index, slice_value, c)]
        rows.append(
            {
                "window": w,
                "slice": slice_index,
                "slice_value": slice_value,
                "column": c,
                "rows": s.rows,
                "count": s.count,
                "mean": s.mean,
                "m2": s.m2,
                "min": s.min,
                "max": s.max,
                "bin_counts": None if s.bin_counts is None else s.bin_counts.tolist(),
                "bin_sums": None if s.bin_sums is None else s.bin_sums.tolist(),
                "hll": None if s.hll is None else s.hll.tobytes(),
                "points": None if s.points is None else s.points.tolist(),
                "weights": None if s.weights is None else s.weights.tolist(),
                "categories": list(s.categories) if s.categories else None,
                "category_counts": list(s.categories.values()) if s.categories else None,
            }
        )
    return pa.RecordBatch.from_pylist(rows, schema=_SUMMARY_SCHEMA)


def merge_summaries(
    rows: Sequence[Mapping], spec: KernelSpec
) -> dict[tuple[int, int, str | None, int], Summary]:
    """The partitions' summary rows merged per (window, slice, slice value, column)."""
    merged: dict[tuple[int, int, str | None, int], Summary] = {}
    for row in rows:
        column = spec.columns[row["column"]]
        part = Summary(
            rows=row["rows"],
            count=row["count"],
            mean=row["mean"],
            m2=row["m2"],
            min=row["min"],
            max=row["max"],
        )
        if column.data_type == NUMERIC:
            part.bin_counts = np.asarray(row["bin_counts"], dtype="float64")
            part.bin_sums = np.asarray(row["bin_sums"], dtype="float64")
            part.hll = np.frombuffer(row["hll"], dtype=np.uint8)
            part.points = np.asarray(row["points"], dtype="float64")
            part.weights = np.asarray(row["weights"], dtype="float64")
        elif row["categories"]:
            part.categories = dict(zip(row["categories"], row["category_counts"], strict=True))
        _merge_into(merged, (row["window"], row["slice"], row["slice_value"], row["column"]), part)
    return merged


# --- HyperLogLog ------------------------------------------------------------------------------

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _hll_hashes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per value: its HyperLogLog register and rank, from SplitMix64's mix of the double's
    bits; -0.0 hashes as 0.0. Operations are in place: fresh
    numpy temporaries of this size cost more in page faults than the arithmetic."""
    z = values + 0.0
    z = z.view(np.uint64)
    scratch = np.empty_like(z)
    with np.errstate(over="ignore"):
        np.add(z, np.uint64(0x9E3779B97F4A7C15), out=z)
        for shift, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            np.right_shift(z, np.uint64(shift), out=scratch)
            np.bitwise_xor(z, scratch, out=z)
            np.multiply(z, np.uint64(multiplier), out=z)
        np.right_shift(z, np.uint64(31), out=scratch)
        np.bitwise_xor(z, scratch, out=z)
    np.right_shift(z, np.uint64(64 - HLL_PRECISION), out=scratch)
    registers = scratch.astype(np.intp)
    np.bitwise_and(z, np.uint64((1 << (64 - HLL_PRECISION)) - 1), out=z)
    # The rest (< 2^52) is exact as a double: its exponent bits are floor(log2(rest)) + 1023
    # (0 for 0), so the rank (leading zeros + 1 in 64 - p bits) needs no logarithm.
    exponent = z.astype(np.float64).view(np.uint64) >> np.uint64(52)
    ranks = np.where(
        exponent == 0, 65 - HLL_PRECISION, (64 - HLL_PRECISION + 1023) - exponent.astype(np.int64)
    ).astype(np.uint8)
    return registers, ranks


def hll_estimate(registers: np.ndarray) -> int:
    """Distinct values from HyperLogLog registers, with the small-range (linear counting)
    correction."""
    m = registers.size
    alpha = 0.7213 / (1 + 1.079 / m)
    estimate = alpha * m * m / np.sum(np.exp2(-registers.astype("float64")))
    zeros = int(np.count_nonzero(registers == 0))
    if estimate <= 2.5 * m and zeros:
        estimate = m * math.log(m / zeros)
    return int(round(estimate))

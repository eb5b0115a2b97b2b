"""The monitoring report: one self-contained HTML page per use case, for a person.

It shows what the monitoring tables and the registry hold: drift per column over time
(against the training baseline), the dataset verdict per window, performance per window
against each model version's own test value, the newest data-quality results, and the
model versions and when each became champion. Charts are matplotlib figures inlined as PNG
(no network, no script library); a few lines of script only report, in the browser's console
and on the page's `data-charts-rendered` attribute, how many charts decoded.

`write_report` writes the page (locally under `<storage.root>/reports/<use case>/`) and logs
it to MLflow in the use case's experiment, as the artifact of a run named "monitoring report".
"""

from __future__ import annotations

import base64
import html
import io
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyspark.sql.functions as F  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from featurehouse.config import Settings  # noqa: E402
from featurehouse.io import Lakehouse  # noqa: E402
from featurehouse.usecase import UseCase  # noqa: E402

REPORT_FILE = "monitoring_report.html"
NEWEST_ROWS = 30  # the newest data-quality results and scoring runs shown


@dataclass(frozen=True)
class ReportData:
    use_case: str
    description: str
    model_name: str
    generated_at: datetime
    metric: str
    drift: pd.DataFrame
    """Baseline comparison, whole windows: window_end, column, test, statistic, drifted,
    dataset_drifted."""
    performance: pd.DataFrame
    """model_version, window_start, window_end, <metric>, test_<metric>, change."""
    quality: pd.DataFrame
    versions: pd.DataFrame
    """version, created, aliases, test value, validation."""
    champions: pd.DataFrame
    """Each change of the champion alias: version, at, by, action, reason."""
    scoring: pd.DataFrame
    """The newest batch scoring runs: scored_at, model_version, rows, seconds, rows/s."""


@dataclass(frozen=True)
class ReportResult:
    use_case: str
    path: Path
    charts: int
    run_id: str | None

    def describe(self) -> str:
        return f"{self.use_case}: monitoring report ({self.charts} charts) at {self.path}"


# ---------------------------------------------------------------------------------------
# Reading


def _frame(lake: Lakehouse, key: str, columns: list[str], where: str | None = None):
    if not lake.exists(key):
        return pd.DataFrame(columns=columns)
    table = lake.read(key)
    if where:
        table = table.where(where)
    return table.select(*[c for c in columns if c in table.columns]).toPandas()


def report_data(lake: Lakehouse, settings: Settings, use_case: UseCase) -> ReportData:
    from featurehouse.training.evaluate import promotion_metric
    from featurehouse.training.lifecycle import history
    from featurehouse.training.registry import configure_mlflow

    uc_settings = settings.use_case(use_case.name)
    metric = promotion_metric(use_case, uc_settings)
    drift = _frame(
        lake,
        "drift_metrics",
        ["window_end", "column", "kind", "test", "ks_statistic", "drifted", "dataset_drifted"],
        "comparison = 'baseline' AND slice_key IS NULL",
    )
    performance = _frame(
        lake,
        "performance",
        ["model_version", "window_start", "window_end", metric, f"test_{metric}", "change"],
    )
    quality = pd.DataFrame()
    if lake.exists("data_quality"):
        quality = (
            lake.read("data_quality")
            .orderBy(F.col("checked_at").desc(), "table_name", "expectation")
            .limit(NEWEST_ROWS)
            .select("checked_at", "table_name", "expectation", "severity", "status")
            .toPandas()
        )
    scoring = _frame(lake, "scoring_runs", ["scored_at", "model_version", "rows", "seconds"])
    scoring = scoring.sort_values("scored_at", ascending=False).head(NEWEST_ROWS)
    # Typed: before any scoring run the frame is empty, of object columns.
    rate = scoring["rows"].astype("float64") / scoring["seconds"].astype("float64")
    scoring["rows/s"] = rate.round(1)
    configure_mlflow(settings)
    found = history(settings, use_case)
    versions = pd.DataFrame(
        [
            {
                "version": v.version,
                "created": datetime.fromtimestamp(v.created / 1000, UTC),
                "aliases": ", ".join(v.aliases),
                f"test {v.metric}": v.test_value,
                "validation": v.validation,
            }
            for v in found.versions
        ]
    )
    champions = pd.DataFrame(
        [
            {"version": c.version, "at": c.at, "by": c.by, "action": c.action, "reason": c.reason}
            for c in found.changes
        ]
    )
    return ReportData(
        use_case=use_case.name,
        description=use_case.description,
        model_name=found.model,
        generated_at=datetime.now(UTC),
        metric=metric,
        drift=drift,
        performance=performance,
        quality=quality,
        versions=versions,
        champions=champions,
        scoring=scoring,
    )


# ---------------------------------------------------------------------------------------
# Charts


def drift_figure(drift: pd.DataFrame) -> Figure | None:
    """KS statistic per column (rows) and window (columns); drifted cells are outlined."""
    if drift.empty:
        return None
    grid = drift.pivot_table(index="column", columns="window_end", values="ks_statistic")
    flags = drift.pivot_table(index="column", columns="window_end", values="drifted", aggfunc="max")
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * grid.shape[1] + 4), 0.28 * grid.shape[0] + 1.6))
    image = ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=7)
    ax.set_xticks(range(grid.shape[1]), [f"{t:%Y-%m-%d %H:%M}" for t in grid.columns], fontsize=7)
    for (row, col), flagged in np.ndenumerate(flags.reindex_like(grid).to_numpy()):
        if flagged == 1:
            ax.add_patch(plt.Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
    fig.colorbar(image, ax=ax, label="KS statistic against the training baseline")
    ax.set_title("Drift per column and window (red: drifted)")
    fig.tight_layout()
    return fig


def drift_share_figure(drift: pd.DataFrame) -> Figure | None:
    """The share of feature columns drifted per window, and the dataset verdict."""
    features = drift[drift["kind"] == "feature"] if "kind" in drift else drift
    if features.empty:
        return None
    per_window = features.groupby("window_end").agg(
        share=("drifted", "mean"), dataset=("dataset_drifted", "max")
    )
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colours = ["tab:red" if d else "tab:blue" for d in per_window["dataset"]]
    ax.bar(range(len(per_window)), per_window["share"], color=colours)
    ax.set_xticks(range(len(per_window)), [f"{t:%Y-%m-%d}" for t in per_window.index], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of feature columns drifted")
    ax.set_title("Dataset drift per window (red: dataset drift)")
    fig.tight_layout()
    return fig


def performance_figure(performance: pd.DataFrame, metric: str) -> Figure | None:
    """The promotion metric per window for each version, beside its test value (dashed)."""
    if performance.empty or metric not in performance:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for version, rows in performance.sort_values("window_start").groupby("model_version"):
        (line,) = ax.plot(rows["window_start"], rows[metric], marker="o", label=f"v{version}")
        test = rows[f"test_{metric}"].dropna()
        if not test.empty:
            ax.axhline(test.iloc[0], color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} on labelled predictions per window (dashed: test window)")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def versions_figure(champions: pd.DataFrame) -> Figure | None:
    """Which version was champion when: a step line over the alias changes."""
    if champions.empty:
        return None
    times = pd.to_datetime(champions["at"], utc=True)
    versions = champions["version"].astype(int)
    fig, ax = plt.subplots(figsize=(7, 2.6))
    ax.step(times, versions, where="post", marker="o", color="tab:green")
    ax.set_yticks(sorted(set(versions)))
    ax.set_ylabel("champion version")
    ax.set_title("Champion over time (promotions and rollbacks)")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def png_data_uri(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---------------------------------------------------------------------------------------
# The page

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0; } .lead { color: #555; margin-top: .3rem; }
section { margin: 2rem 0; } img.chart { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: .85rem; } td, th { padding: .2rem .6rem;
border-bottom: 1px solid #eee; text-align: left; } .empty { color: #888; font-style: italic; }
"""

# Reports, to the console and the page, how many charts the browser decoded.
_SCRIPT = """
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("img.chart")];
  const ok = charts.filter((img) => img.complete && img.naturalWidth > 0);
  document.body.dataset.chartsRendered = String(ok.length);
  if (ok.length === charts.length) console.log(`charts rendered: ${ok.length} of ${charts.length}`);
  else console.error(`charts failed: ${charts.length - ok.length} of ${charts.length}`);
});
"""


def _table(frame: pd.DataFrame, empty: str) -> str:
    if frame.empty:
        return f'<p class="empty">{html.escape(empty)}</p>'
    return frame.to_html(index=False, border=0, na_rep="", float_format=lambda v: f"{v:.4g}")


def _chart(uri: str | None, alt: str, empty: str) -> str:
    if uri is None:
        return f'<p class="empty">{html.escape(empty)}</p>'
    return f'<img class="chart" alt="{html.escape(alt)}" src="{uri}">'


def render_html(data: ReportData) -> tuple[str, int]:
    """The page, and how many charts it holds."""
    figures = {
        "drift": drift_figure(data.drift),
        "share": drift_share_figure(data.drift),
        "performance": performance_figure(data.performance, data.metric),
        "champions": versions_figure(data.champions),
    }
    uris = {key: png_data_uri(fig) if fig is not None else None for key, fig in figures.items()}
    latest = ""
    if not data.drift.empty:
        newest = data.drift[data.drift["window_end"] == data.drift["window_end"].max()]
        features = newest[newest["kind"] == "feature"]
        latest = (
            f"<p>Newest window (to {newest['window_end'].iloc[0]:%Y-%m-%d %H:%M}):"
            f" {int(features['drifted'].sum())} of {len(features)} feature columns drifted;"
            f" dataset drift: {'yes' if newest['dataset_drifted'].any() else 'no'}.</p>"
        )
    title = f"{data.use_case}: monitoring report"
    body = f"""
<h1>{html.escape(title)}</h1>
<p class="lead">{html.escape(data.description)} Model {html.escape(data.model_name)};
generated {data.generated_at:%Y-%m-%d %H:%M} UTC.</p>
<section><h2>Drift against the training baseline</h2>{latest}
{_chart(uris["drift"], "drift per column and window", "No drift results yet.")}
{_chart(uris["share"], "dataset drift per window", "")}</section>
<section><h2>Performance when labels arrive</h2>
{_chart(uris["performance"], "performance per window", "No labelled predictions yet.")}
{_table(data.performance, "")}</section>
<section><h2>Model versions</h2>
{_chart(uris["champions"], "champion over time", "No champion yet.")}
{_table(data.versions, "No registered version.")}
<h3>Champion changes</h3>{_table(data.champions, "None.")}</section>
<section><h2>Batch scoring runs (newest {NEWEST_ROWS})</h2>
{_table(data.scoring, "No scoring run yet.")}</section>
<section><h2>Data quality (newest {NEWEST_ROWS} results)</h2>
{_table(data.quality, "No data-quality results yet.")}</section>
"""
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}<script>{_SCRIPT}</script></body></html>\n"
    )
    return page, sum(uri is not None for uri in uris.values())


def report_path(settings: Settings, use_case: str) -> Path:
    """Locally `<storage.root>/reports/<use case>/`; elsewhere a temporary folder (the page
    lives in MLflow there)."""
    root = settings.storage.root
    folder = root / "reports" / use_case if root else Path(tempfile.mkdtemp()) / use_case
    return folder / REPORT_FILE


def write_report(
    lake: Lakehouse, settings: Settings, use_case: UseCase, out: Path | None = None
) -> ReportResult:
    import mlflow

    from featurehouse.training.registry import configure_mlflow

    page, charts = render_html(report_data(lake, settings, use_case))
    path = out or report_path(settings, use_case.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    configure_mlflow(settings, use_case.name)
    with mlflow.start_run(run_name="monitoring report") as run:
        mlflow.set_tag("featurehouse.kind", "monitoring_report")
        mlflow.log_artifact(str(path))
    return ReportResult(use_case.name, path, charts, run.info.run_id)

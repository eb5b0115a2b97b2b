"""Alerts: what monitoring found that a person must hear about.

Each alert is a row in the use case's alerts table, a warning in the log, and a JSON POST
to the webhook `monitoring.webhook_url` names (a Slack or Teams incoming webhook, a
PagerDuty events endpoint behind a small relay, ...). An alert is identified by its use
case, kind and subject (e.g. the drift window's end), so a rerun of the same monitoring
run neither duplicates the row nor posts twice.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyspark.sql.functions as F

from featurehouse.io import Lakehouse

log = logging.getLogger(__name__)

TABLE = "alerts"
ALERT_KEYS = ("kind", "subject")


@dataclass(frozen=True)
class Alert:
    use_case: str
    kind: str  # "drift", "performance_drop", "data_quality", "stale_features", "anomaly"
    subject: str  # what it is about, unique per kind: a window, a table, a version
    message: str
    severity: str = "warning"


def drift_alerts(report) -> list[Alert]:
    """A dataset drift verdict from the drift job (`monitoring.job.DriftReport`)."""
    if not report.drifted:
        return []
    return [
        Alert(
            report.use_case,
            "drift",
            f"window ending {report.window_end:%Y-%m-%d %H:%M}",
            f"dataset drift against the champion v{report.model_version}'s reference:"
            f" {', '.join(report.drifted_columns[:10])}",
        )
    ]


def performance_alerts(report) -> list[Alert]:
    """Every window of a performance report that dropped beyond the margin."""
    return [
        Alert(report.use_case, "performance_drop", text.split(":")[0], text, "critical")
        for text in report.dropped
    ]


def anomaly_alerts(use_case: str, keys: Sequence[str], events: Sequence[dict]) -> list[Alert]:
    """One alert per new anomaly event from batch scoring (`scoring.ScoringResult`)."""
    alerts = []
    for event in events:
        entity = ", ".join(f"{k}={event[k]}" for k in keys)
        alerts.append(
            Alert(
                use_case,
                "anomaly",
                f"{entity} from {event['start']:%Y-%m-%d %H:%M}",
                f"anomaly at {entity}: {event['rows']} flagged row(s) from"
                f" {event['start']:%Y-%m-%d %H:%M} to {event['end']:%Y-%m-%d %H:%M}, peak score"
                f" {event['peak_score']:.3f} at {event['peak_time']:%Y-%m-%d %H:%M}",
            )
        )
    return alerts


def quality_alerts(use_case: str, checks: Sequence[str], severity: str) -> list[Alert]:
    """Data-quality checks that failed (severity "critical": the table was not published)
    or warned (a stale table, a rule of severity `warn`), as the feature job names them."""
    return [Alert(use_case, "data_quality", check, check, severity) for check in checks]


def raise_alerts(lake: Lakehouse, alerts: Sequence[Alert], webhook_url: str | None) -> list[Alert]:
    """Record the alerts not raised before; log and post those. Returns the new ones."""
    if not alerts:
        return []
    rows = lake.spark.createDataFrame([asdict(a) for a in alerts]).withColumn(
        "raised_at", F.current_timestamp()
    )
    known = set()
    if lake.exists(TABLE):
        known = {(r["kind"], r["subject"]) for r in lake.read(TABLE).select(*ALERT_KEYS).collect()}
    new = [a for a in alerts if (a.kind, a.subject) not in known]
    lake.merge(rows, TABLE, ALERT_KEYS)
    for alert in new:
        log.warning(
            "ALERT %s [%s] %s: %s", alert.use_case, alert.kind, alert.subject, alert.message
        )
        if webhook_url:
            post(webhook_url, alert)
    return new


def post(url: str, alert: Alert, timeout: float = 10.0) -> None:
    """One JSON POST; a webhook that is down is logged, never fatal to the job."""
    body = {**asdict(alert), "raised_at": datetime.now(UTC).isoformat(), "text": alert.message}
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except OSError as exc:
        log.error("alert webhook %s failed: %s", url, exc)

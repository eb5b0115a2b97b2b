"""The service's Prometheus metrics, in a registry of its own (one per app, so that two apps
in one process, e.g. in tests, never share counters).

With several worker processes each worker answers `/metrics` for itself; scrape them
through the load balancer's per-instance targets, or run one worker per container.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.parser import text_string_to_metric_families

# Request latencies, seconds: fine below 5 ms, where the service is meant to answer.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
UNKNOWN = "unknown"


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "featurehouse_requests",
            "Prediction requests answered, by use case and HTTP status code.",
            ["use_case", "code"],
            registry=r,
        )
        self.errors = Counter(
            "featurehouse_request_errors",
            "Prediction requests answered with an error (HTTP status >= 400).",
            ["use_case", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "featurehouse_request_latency_seconds",
            "Time from a prediction request's arrival to its answer, in the service.",
            ["use_case"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.entities = Counter(
            "featurehouse_entities",
            "Entities asked for, by outcome: predicted, or why not (not found, missing features).",
            ["use_case", "outcome"],
            registry=r,
        )
        self.model_version = Gauge(
            "featurehouse_model_version",
            "The champion version each use case serves (0: none).",
            ["use_case", "model"],
            registry=r,
        )
        self.model_swaps = Counter(
            "featurehouse_model_swaps",
            "Champion changes picked up without a restart.",
            ["use_case"],
            registry=r,
        )
        self.log_queue = Gauge(
            "featurehouse_inference_log_queued_rows",
            "Inference log rows waiting to be written.",
            registry=r,
        )
        self.log_written = Counter(
            "featurehouse_inference_log_written_rows",
            "Inference log rows written to batch files.",
            ["use_case"],
            registry=r,
        )
        self.log_dropped = Counter(
            "featurehouse_inference_log_dropped_rows",
            "Inference log rows dropped: the queue was full, or a batch could not be written.",
            ["use_case"],
            registry=r,
        )
        self._requests: dict[tuple[str, int], tuple] = {}
        self._latency: dict[str, object] = {}

    def observe_request(self, use_case: str, code: int, seconds: float) -> None:
        """Counted on every prediction request (children cached: no label lookup per call)."""
        children = self._requests.get((use_case, code))
        if children is None:
            error = self.errors.labels(use_case, str(code)) if code >= 400 else None
            children = (self.requests.labels(use_case, str(code)), error)
            self._requests[(use_case, code)] = children
        children[0].inc()
        if children[1] is not None:
            children[1].inc()
        latency = self._latency.get(use_case)
        if latency is None:
            latency = self._latency[use_case] = self.latency.labels(use_case)
        latency.observe(seconds)


@dataclass(frozen=True)
class LatencySummary:
    requests: int
    p50_ms: float  # the upper bound of the bucket holding the median
    p99_ms: float

    def describe(self) -> str:
        return f"{self.requests:,d} requests, p50 <= {self.p50_ms:g} ms, p99 <= {self.p99_ms:g} ms"


def latency_summary(exposition: str, use_case: str) -> LatencySummary | None:
    """A use case's request latency from the service's `/metrics` text: p50 and p99 as the
    upper bounds of their histogram buckets (a histogram keeps no finer detail). None when
    the use case has answered no request."""
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(exposition):
        if family.name != "featurehouse_request_latency_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("use_case") == use_case:
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None

    def quantile(q: float) -> float:
        bound = next(le for le, count in buckets if count >= q * total)
        return bound * 1000

    return LatencySummary(int(total), quantile(0.5), quantile(0.99))

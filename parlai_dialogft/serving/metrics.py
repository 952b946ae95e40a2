"""Prometheus metrics of one server, and the ASGI middleware that counts its requests.

Every server gets its own ``CollectorRegistry`` (not prometheus-client's global one), so
several apps can live in one process (the tests start a few) without duplicate names.

What an operator asks, and the series that answers it:

* is it up, how loaded?    ``dialogft_requests_total{route,code}``, ``dialogft_queue_depth``
* is it failing?           ``dialogft_request_errors_total{route,code}`` (4xx and 5xx)
* how slow?                ``dialogft_request_latency_seconds{route}`` (until the last byte),
                           ``dialogft_time_to_first_token_seconds`` (streamed requests: until
                           their first content chunk)
* is work cut short?       ``dialogft_search_steps_total`` (search steps run, summed over rows),
                           ``dialogft_stopped_early_total{reason}`` (searches ended for a
                           client that left, a stop string, or max_tokens)
* how fast does it write?  ``rate(dialogft_generated_tokens_total[1m])`` = tokens/s
* is batching working?     ``dialogft_batch_size``, ``dialogft_batch_seconds``
* do users like it?        ``dialogft_feedback_total{rating}`` (since the server started) and, with
                           ``--serve-log-db``, ``dialogft_logged_feedback{rating}`` (the log,
                           over the retention window) and ``dialogft_logged_replies``
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Optional

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("dialogft_requests", "HTTP requests answered", ["route", "code"], registry=r)
        self.errors = Counter("dialogft_request_errors", "HTTP requests answered with a 4xx or 5xx",
                              ["route", "code"], registry=r)
        self.latency = Histogram("dialogft_request_latency_seconds", "request start to last byte sent",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.prompt_tokens = Counter("dialogft_prompt_tokens", "tokens read by the model", registry=r)
        self.generated_tokens = Counter("dialogft_generated_tokens", "tokens in replies sent", registry=r)
        self.batch_size = Histogram("dialogft_batch_size", "rows per generation call (a decoding step of the running "
                                    "batch, or a micro-batch)",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("dialogft_batch_seconds", "seconds per generation call (a step, or a "
                                       "micro-batch)", buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("dialogft_queue_depth", "requests waiting for a batch", registry=r)
        self.feedback = Counter("dialogft_feedback", "feedback received since start", ["rating"], registry=r)
        self.time_to_first_token = Histogram("dialogft_time_to_first_token_seconds",
                                             "streamed requests: request start to the first content chunk",
                                             buckets=LATENCY_BUCKETS, registry=r)
        self.search_steps = Counter("dialogft_search_steps", "search steps run, summed over batch rows", registry=r)
        self.stopped_early = Counter("dialogft_stopped_early", "searches ended before the model ended them",
                                     ["reason"], registry=r)
        for reason in ("disconnect", "stop", "length"):
            self.stopped_early.labels(reason)
        for rating in ("up", "down"):
            self.feedback.labels(rating)  # present at 0, so rate() and ratios work from the start

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def observe_search(self, steps: int, ended_by: Optional[str]) -> None:
        """One request's search: its steps, and why it was ended early (None: it was not)."""
        self.search_steps.inc(steps)
        if ended_by is not None:
            self.stopped_early.labels(ended_by).inc()

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)

    def watch_store(self, aggregates: Callable[[], Dict[str, int]]) -> None:
        """Export the log's own counts at each scrape (they survive restarts; counters do not)."""
        self.registry.register(_StoreCollector(aggregates))

    def render(self) -> "tuple[bytes, str]":
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StoreCollector:
    def __init__(self, aggregates: Callable[[], Dict[str, int]]):
        self._aggregates = aggregates

    def describe(self):
        return []  # computed at scrape time; nothing to check at registration

    def collect(self):
        counts = self._aggregates()
        feedback = GaugeMetricFamily("dialogft_logged_feedback", "feedback in the log (retention window)",
                                     labels=["rating"])
        for rating in ("up", "down"):
            feedback.add_metric([rating], counts.get(f"feedback_{rating}", 0))
        yield feedback
        yield GaugeMetricFamily("dialogft_logged_replies", "replies in the log (retention window)",
                                value=counts.get("replies", 0))


class MetricsMiddleware:
    """Pure ASGI (works for streamed responses): counts each HTTP request when it ends.

    The route label is the matched route's path template, or ``other``: unmatched paths
    (scanners probing ``/wp-admin``) must not create a series each.
    """

    def __init__(self, app, metrics: ServingMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status: Dict[str, int] = {}

        async def send_and_watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_watch)
        except Exception:
            status.setdefault("code", 500)
            raise
        finally:
            self._record(scope, status.get("code", 500), time.perf_counter() - start)

    def _record(self, scope, code: int, seconds: float) -> None:
        route = scope.get("route")
        name: Optional[str] = getattr(route, "path", None) or "other"
        self.metrics.requests.labels(name, str(code)).inc()
        if code >= 400:
            self.metrics.errors.labels(name, str(code)).inc()
        self.metrics.latency.labels(name).observe(seconds)

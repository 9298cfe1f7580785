"""Prometheus metrics. Names follow Prometheus conventions: `_total` counters,
base units (seconds), one registry per app so tests can run several apps."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("llmops_http_requests_total", "HTTP requests by route, method and status code",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("llmops_http_request_duration_seconds", "End-to-end HTTP request latency",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("llmops_time_to_first_token_seconds", "Time from arrival to the first generated token",
                              buckets=LATENCY_BUCKETS, registry=r)
        self.tpot = Histogram("llmops_time_per_output_token_seconds", "Mean time per output token after the first",
                              buckets=TOKEN_TIME_BUCKETS, registry=r)
        self.queue_length = Gauge("llmops_queue_length", "Sequences waiting for a batch slot", registry=r)
        self.running_batch = Gauge("llmops_running_batch_size", "Sequences in the running batch", registry=r)
        self.prompt_tokens = Counter("llmops_prompt_tokens_total", "Prompt tokens prefilled", registry=r)
        self.generation_tokens = Counter("llmops_generation_tokens_total", "Tokens generated", registry=r)
        self.rate_limited = Counter("llmops_rate_limit_rejections_total", "Requests rejected by rate limits",
                                    ["limit"], registry=r)
        self.auth_failures = Counter("llmops_auth_failures_total", "Requests rejected by authentication",
                                     ["reason"], registry=r)
        self.pii = Counter("llmops_pii_redactions_total", "PII findings acted upon", ["type", "direction", "mode"],
                           registry=r)
        self.queue_rejections = Counter("llmops_queue_rejections_total", "Requests rejected because the queue was full",
                                        registry=r)
        self.cancelled = Counter("llmops_sequences_cancelled_total",
                                 "Sequences dropped from the queue or batch because the client went away", registry=r)
        self.ready = Gauge("llmops_ready", "1 when the model is loaded and the server accepts work", registry=r)

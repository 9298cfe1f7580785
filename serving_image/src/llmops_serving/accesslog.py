"""Structured JSON logs with ECS field names (one JSON object per line on stdout).

Access log records carry: @timestamp, log.level, message, event.dataset
("llmops.access"), event.duration (nanoseconds, ECS convention),
http.request.id, http.request.method, url.path, http.response.status_code,
client.ip, user.name (the authenticated principal), user_agent.original and
llm.usage.{prompt,completion,total}_tokens. Nested objects, so Filebeat's ndjson
parser and Elasticsearch take them as they are. Prompt/completion text is only
added (llm.prompt / llm.completion) when log_prompts is explicitly enabled.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import sys

ACCESS_LOGGER = "llmops_serving.access"


class ECSFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "@timestamp": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "log": {"level": record.levelname.lower(), "logger": record.name},
            "message": record.getMessage(),
            "ecs": {"version": "8.11.0"},
            "service": {"name": "llmops-serving"},
        }
        fields = getattr(record, "event_fields", None)
        if fields:
            _merge(doc, fields)
        if record.exc_info:
            doc["error"] = {"type": record.exc_info[0].__name__, "message": str(record.exc_info[1]),
                            "stack_trace": self.formatException(record.exc_info)}
        return json.dumps(doc, default=str, ensure_ascii=False)


def _merge(doc: dict, fields: dict) -> None:
    """Expand dotted keys into nested objects."""
    for key, value in fields.items():
        node = doc
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(ECSFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # replaced by our access log


def access_log(*, request_id: str, method: str, path: str, status: int, duration_s: float, client_ip: str | None,
               principal: str | None, user_agent: str | None, usage: dict | None, extra: dict | None = None) -> None:
    fields = {
        "event.dataset": "llmops.access",
        "event.kind": "event",
        "event.category": ["web"],
        "event.outcome": "success" if status < 400 else "failure",
        "event.duration": int(duration_s * 1e9),
        "http.request.id": request_id,
        "http.request.method": method,
        "url.path": path,
        "http.response.status_code": status,
    }
    if client_ip:
        fields["client.ip"] = client_ip
    if principal:
        fields["user.name"] = principal
    if user_agent:
        fields["user_agent.original"] = user_agent
    if usage:
        for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if k in usage:
                fields[f"llm.usage.{k}"] = usage[k]
    if extra:
        fields.update(extra)
    logging.getLogger(ACCESS_LOGGER).info(f"{method} {path} {status}", extra={"event_fields": fields})

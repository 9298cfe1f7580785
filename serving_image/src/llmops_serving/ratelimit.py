"""Per-principal rate limits: requests/minute and tokens/minute token buckets.

Each principal has two buckets (requests, tokens) of capacity = the per-minute
limit, refilled continuously at limit/60 per second. A request costs 1 request
and (prompt tokens + max_tokens * n) tokens, the same estimate OpenAI uses; it is
admitted only if both buckets can pay, and then both are charged together.

MemoryLimiter keeps buckets in-process. RedisLimiter runs the same algorithm as
one Lua script (atomic on the Redis server, using Redis' own clock) so several
replicas share one limit.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    limit_requests: int
    limit_tokens: int
    remaining_requests: int
    remaining_tokens: int
    reset_requests: float   # seconds until the request bucket is full again
    reset_tokens: float
    retry_after: float      # seconds until this request could pass (0 when allowed)
    limit: str = ""         # which limit refused: "requests" | "tokens"

    def headers(self) -> dict[str, str]:
        h = {}
        if self.limit_requests:
            h["x-ratelimit-limit-requests"] = str(self.limit_requests)
            h["x-ratelimit-remaining-requests"] = str(max(0, self.remaining_requests))
            h["x-ratelimit-reset-requests"] = _duration(self.reset_requests)
        if self.limit_tokens:
            h["x-ratelimit-limit-tokens"] = str(self.limit_tokens)
            h["x-ratelimit-remaining-tokens"] = str(max(0, self.remaining_tokens))
            h["x-ratelimit-reset-tokens"] = _duration(self.reset_tokens)
        if not self.allowed:
            h["retry-after"] = str(max(1, math.ceil(self.retry_after)))
        return h


def _duration(seconds: float) -> str:
    """OpenAI style: '1s', '6m0s', '250ms'."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    seconds = math.ceil(seconds)
    m, s = divmod(seconds, 60)
    return f"{m}m{s}s" if m else f"{s}s"


class MemoryLimiter:
    def __init__(self, rpm: int, tpm: int, clock=time.monotonic):
        self.rpm, self.tpm, self.clock = rpm, tpm, clock
        self._buckets: dict[str, list[float]] = {}  # name -> [requests, tokens, last_ts]
        self._lock = threading.Lock()

    async def check(self, principal: str, tokens: int) -> Decision:
        return self.check_sync(principal, tokens)

    def check_sync(self, principal: str, tokens: int) -> Decision:
        with self._lock:
            now = self.clock()
            b = self._buckets.get(principal)
            if b is None:
                b = self._buckets[principal] = [float(self.rpm), float(self.tpm), now]
            elapsed = max(0.0, now - b[2])
            b[0] = min(self.rpm, b[0] + elapsed * self.rpm / 60.0)
            b[1] = min(self.tpm, b[1] + elapsed * self.tpm / 60.0)
            b[2] = now
            return _decide(b, self.rpm, self.tpm, tokens)


def _decide(b: list[float], rpm: int, tpm: int, tokens: int) -> Decision:
    need_r = 1 if rpm else 0
    need_t = tokens if tpm else 0
    short_r = max(0.0, need_r - b[0]) if rpm else 0.0
    short_t = max(0.0, need_t - b[1]) if tpm else 0.0
    allowed = short_r == 0 and short_t == 0
    if allowed:
        b[0] -= need_r
        b[1] -= need_t
    wait_r = short_r * 60.0 / rpm if rpm else 0.0
    # a request bigger than the whole token bucket can never pass; say so with a minute
    wait_t = (short_t * 60.0 / tpm if need_t <= tpm else 60.0) if tpm else 0.0
    return Decision(
        allowed=allowed, limit_requests=rpm, limit_tokens=tpm,
        remaining_requests=int(b[0]), remaining_tokens=int(b[1]),
        reset_requests=(rpm - b[0]) * 60.0 / rpm if rpm else 0.0,
        reset_tokens=(tpm - b[1]) * 60.0 / tpm if tpm else 0.0,
        retry_after=max(wait_r, wait_t),
        limit="" if allowed else ("requests" if short_r else "tokens"),
    )


# KEYS[1] = bucket hash. ARGV: rpm, tpm, tokens. Returns
# {allowed, remaining_requests*1000, remaining_tokens*1000}. Uses the Redis clock so
# replicas with skewed clocks still agree.
LUA = """
local rpm = tonumber(ARGV[1])
local tpm = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'r', 't', 'ts')
local r = tonumber(b[1]) or rpm
local tok = tonumber(b[2]) or tpm
local ts = tonumber(b[3]) or now
local el = math.max(0, now - ts)
r = math.min(rpm, r + el * rpm / 60)
tok = math.min(tpm, tok + el * tpm / 60)
local need_r = 0
if rpm > 0 then need_r = 1 end
local need_t = 0
if tpm > 0 then need_t = cost end
local allowed = 0
if r >= need_r and tok >= need_t then
  allowed = 1
  r = r - need_r
  tok = tok - need_t
end
redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(tok), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 120)
return {allowed, math.floor(r * 1000), math.floor(tok * 1000)}
"""


class RedisLimiter:
    def __init__(self, url: str, rpm: int, tpm: int, prefix: str = "llmops:rl:"):
        import redis.asyncio as aioredis
        self.rpm, self.tpm, self.prefix = rpm, tpm, prefix
        self.client = aioredis.from_url(url)
        self.script = self.client.register_script(LUA)

    async def check(self, principal: str, tokens: int) -> Decision:
        allowed, r_milli, t_milli = await self.script(keys=[self.prefix + principal],
                                                      args=[self.rpm, self.tpm, tokens])
        b = [r_milli / 1000.0, t_milli / 1000.0]
        if allowed:
            # already charged by the script; compute headers from the remaining values
            d = _decide([b[0] + (1 if self.rpm else 0), b[1] + (tokens if self.tpm else 0)], self.rpm, self.tpm, tokens)
        else:
            d = _decide(b, self.rpm, self.tpm, tokens)
            d.allowed = False
        return d

    async def close(self) -> None:
        await self.client.aclose()


def build_limiter(settings):
    if not (settings.rate_limit_rpm or settings.rate_limit_tpm):
        return None
    if settings.redis_url:
        return RedisLimiter(settings.redis_url, settings.rate_limit_rpm, settings.rate_limit_tpm,
                            settings.redis_key_prefix)
    return MemoryLimiter(settings.rate_limit_rpm, settings.rate_limit_tpm)

"""Per-client rate limits: token buckets keyed by conversation id or client address.

A limit "N/S" lets a client make N requests at once and then N every S seconds (refilled
continuously). Buckets live in one process's memory, bounded by `max_keys` (the least
recently used are forgotten, which only ever lets a client through).
"""
from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    requests: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> "Limit":
        """'30/60' -> 30 requests per 60 seconds; a clear error for anything else."""
        try:
            n, s = text.strip().split("/")
            limit = cls(int(n), float(s))
        except ValueError:
            raise ValueError(f"a rate limit is written N/S (N requests per S seconds), got {text!r}") from None
        if limit.requests < 1 or not math.isfinite(limit.seconds) or limit.seconds <= 0:
            raise ValueError(f"a rate limit needs N ≥ 1 and S > 0, got {text!r}")
        return limit

    def __str__(self) -> str:
        return f"{self.requests}/{self.seconds:g}"


class RateLimiter:
    def __init__(self, limit: Limit, max_keys: int = 100_000):
        self.limit = limit
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> float:
        """Take one request from `key`'s bucket: 0.0 when allowed, else the seconds to wait."""
        now = time.monotonic() if now is None else now
        rate = self.limit.requests / self.limit.seconds
        with self._lock:
            tokens, at = self._buckets.pop(key, (float(self.limit.requests), now))
            tokens = min(float(self.limit.requests), tokens + (now - at) * rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
            self._buckets[key] = (tokens - 1.0 if wait == 0.0 else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """'10.0.0.0/8 192.168.1.7' (spaces or commas) -> networks; a clear error for a bad entry."""
    out = []
    for item in text.replace(",", " ").split():
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an address or network: {item!r}") from None
    return tuple(out)


def in_networks(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_address(remote: str | None, forwarded_for: str | None, trusted_proxies) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy (the load
    balancer), the nearest untrusted address in X-Forwarded-For. A client cannot choose its
    address by sending the header itself: only a trusted peer's header is read."""
    address = remote or "unknown"
    if not forwarded_for or not in_networks(address, trusted_proxies):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:  # not written by our proxy: fall back to the peer
            return address
        if not in_networks(hop, trusted_proxies):
            return hop
    return address

"""Rate limits and client addresses (assistant/limits.py) and their configuration (web/guard.py)."""
from __future__ import annotations

import pytest

from assistant.limits import Limit, RateLimiter, client_address, parse_networks
from web.guard import GuardConfig

LOOPBACK = parse_networks("127.0.0.1 ::1")


def test_bucket_allows_a_burst_then_refills_at_the_rate():
    limiter = RateLimiter(Limit.parse("3/60"))
    assert [limiter.hit("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.hit("a", now=0.0) == pytest.approx(20.0)  # one request per 20 s
    assert limiter.hit("b", now=0.0) == 0.0  # another client is not affected
    assert limiter.hit("a", now=20.0) == 0.0 and limiter.hit("a", now=20.0) > 0
    assert [limiter.hit("a", now=1000.0) for _ in range(4)].count(0.0) == 3  # never more than the burst


def test_bucket_memory_is_bounded():
    limiter = RateLimiter(Limit(1, 60), max_keys=10)
    for i in range(100):
        limiter.hit(f"k{i}", now=0.0)
    assert len(limiter._buckets) == 10


@pytest.mark.parametrize("text", ["", "30", "a/60", "0/60", "5/0", "5/-1", "5/inf"])
def test_bad_limits_are_clear_errors(text):
    with pytest.raises(ValueError, match="N"):
        Limit.parse(text)


def test_forwarded_for_is_believed_only_from_a_trusted_proxy():
    assert client_address("203.0.113.9", "10.0.0.1", LOOPBACK) == "203.0.113.9"  # a client's own header
    assert client_address("127.0.0.1", "10.0.0.1", LOOPBACK) == "10.0.0.1"  # from the load balancer
    # a client's forged entry comes first; the proxy's appended one (rightmost untrusted) wins
    assert client_address("127.0.0.1", "1.2.3.4, 10.0.0.7", LOOPBACK) == "10.0.0.7"
    assert client_address("127.0.0.1", "<script>", LOOPBACK) == "127.0.0.1"
    assert client_address("127.0.0.1", None, LOOPBACK) == "127.0.0.1"


def test_guard_configuration_from_the_environment():
    cfg = GuardConfig.from_env({"ASSISTANT_LIMIT_CHAT": "5/10", "ASSISTANT_LIMIT_LOGIN_ADDRESS": "3/60",
                                "ASSISTANT_LIMIT_EXEMPT": "10.8.0.0/16, 10.9.1.1", "ASSISTANT_TRUSTED_PROXIES": "",
                                "ASSISTANT_WEB_ORIGINS": "https://mini.example.cn/"})
    assert cfg.limits["chat"][0] == Limit(5, 10) and cfg.limits["login"] == (None, Limit(3, 60))
    assert str(cfg.limits["feedback"][0]) == "20/60"  # a default
    assert len(cfg.exempt) == 2 and cfg.trusted_proxies == () and cfg.origins == {"https://mini.example.cn"}
    with pytest.raises(ValueError, match="not an address"):
        GuardConfig.from_env({"ASSISTANT_LIMIT_EXEMPT": "kiosk-1"})
    with pytest.raises(ValueError):
        GuardConfig.from_env({"ASSISTANT_LIMIT_VOICE": "lots"})

"""What the web server does before it serves a public request: who the client is, whether it
sent too much too often, and whether the request comes from another site.

Limits (environment, "N/S" = N requests at once, then N per S seconds; defaults in LIMITS):

    ASSISTANT_LIMIT_CHAT, _VOICE, _FEEDBACK      per conversation (the sender id)
    ASSISTANT_LIMIT_CHAT_ADDRESS, … , _LOGIN_ADDRESS   per client address
    ASSISTANT_LIMIT_EXEMPT      addresses/networks without the per-address limit (kiosks and
                                office networks that put many citizens behind one address; their
                                conversations keep the per-conversation limit)
    ASSISTANT_TRUSTED_PROXIES   peers whose X-Forwarded-For is believed (default: loopback, where
                                the load balancer runs)
    ASSISTANT_WEB_ORIGINS       other origins allowed to POST (e.g. the 随申办 mini-app's)
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from aiohttp import web

from assistant.limits import Limit, RateLimiter, client_address, in_networks, parse_networks

HOTLINE = "12345"
MAX_JSON = 64 * 1024  # a chat message is at most 1,000 characters; a 工单 draft a few hundred

# endpoint -> (per conversation, per address). A citizen typing sends a message every few
# seconds at most; a kiosk starts a new conversation for each person.
LIMITS: dict[str, tuple[str | None, str]] = {
    "chat": ("30/60", "300/60"),
    "voice": ("10/60", "60/60"),
    "feedback": ("20/60", "120/60"),
    "login": (None, "10/600"),
}


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def json_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
                **extra: Any) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status, headers=headers,
                             dumps=dumps)


def too_many(retry_after: float, **extra: Any) -> web.Response:
    seconds = max(1, math.ceil(retry_after))
    message = f"您的操作太频繁了，请{seconds}秒后再试。如需帮助，请拨打{HOTLINE}市民服务热线。"
    return json_error(429, "rate_limited", message, headers={"Retry-After": str(seconds)},
                       retry_after=seconds, **extra)


@dataclass
class GuardConfig:
    limits: dict[str, tuple[Limit | None, Limit]] = field(
        default_factory=lambda: {k: (v[0] and Limit.parse(v[0]), Limit.parse(v[1])) for k, v in LIMITS.items()})
    exempt: tuple = ()
    trusted_proxies: tuple = field(default_factory=lambda: parse_networks("127.0.0.1 ::1"))
    origins: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "GuardConfig":
        """The defaults with the environment's overrides; a clear ValueError for a bad value."""
        cfg = cls()
        for name, (conversation, address) in cfg.limits.items():
            key = f"ASSISTANT_LIMIT_{name.upper()}"
            if conversation is not None and env.get(key):
                conversation = Limit.parse(env[key])
            if env.get(f"{key}_ADDRESS"):
                address = Limit.parse(env[f"{key}_ADDRESS"])
            cfg.limits[name] = (conversation, address)
        cfg.exempt = parse_networks(env.get("ASSISTANT_LIMIT_EXEMPT", ""))
        if "ASSISTANT_TRUSTED_PROXIES" in env:
            cfg.trusted_proxies = parse_networks(env["ASSISTANT_TRUSTED_PROXIES"])
        cfg.origins = frozenset(o.rstrip("/") for o in env.get("ASSISTANT_WEB_ORIGINS", "").replace(",", " ").split())
        return cfg


class Guard:
    def __init__(self, cfg: GuardConfig):
        self.cfg = cfg
        self._limiters = {name: (c and RateLimiter(c), RateLimiter(a)) for name, (c, a) in cfg.limits.items()}

    def address(self, request: web.Request) -> str:
        return client_address(request.remote, request.headers.get("X-Forwarded-For"), self.cfg.trusted_proxies)

    def limited(self, endpoint: str, address: str | None = None, sender: str | None = None) -> float:
        """Count one request of this client: 0.0 when it may go on, else seconds to wait."""
        by_conversation, by_address = self._limiters[endpoint]
        if address is not None and not in_networks(address, self.cfg.exempt):
            wait = by_address.hit(address)
            if wait:
                return wait
        if sender is not None and by_conversation is not None:
            return by_conversation.hit(sender)
        return 0.0

    def cross_site(self, request: web.Request) -> bool:
        """A state-changing request sent by a page of another site (CSRF): its browser names
        the origin. Same-host pages and the configured origins pass; so do non-browser clients."""
        origin = request.headers.get("Origin")
        # "null": a form POST from a page with Referrer-Policy no-referrer (ours) hides its
        # origin; the browser's Sec-Fetch-Site still tells same-origin from cross-site
        if origin and origin != "null":
            return origin.rstrip("/") not in self.cfg.origins and urlsplit(origin).netloc != request.host
        return request.headers.get("Sec-Fetch-Site") == "cross-site"


async def read_json(request: web.Request, limit: int = MAX_JSON) -> dict[str, Any] | web.Response:
    """The request's JSON object, or a 400/413 response in Chinese."""
    if request.content_length is not None and request.content_length > limit:
        return json_error(413, "too_large", f"请求内容过大（不超过{limit // 1024} KB）。")
    raw = b""
    while len(raw) <= limit:  # a chunked body has no length: read at most one byte past the limit
        chunk = await request.content.read(limit + 1 - len(raw))
        if not chunk:
            break
        raw += chunk
    if len(raw) > limit:
        return json_error(413, "too_large", f"请求内容过大（不超过{limit // 1024} KB）。")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    return body if isinstance(body, dict) else json_error(400, "bad_request", "请求格式不正确。")

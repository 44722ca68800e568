"""A small stand-in for Rasa's REST channel, for tests and the benchmark when no assistant runs.

It implements the contract the gateway relies on:
    POST /webhooks/rest/webhook  {"sender": str, "message": str}
         -> 200 [{"recipient_id": sender, "text": str}, ...]
    GET  /                       -> 200 "Hello from Rasa: <version>" (what `rasa run` answers)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class StandinRasa:
    reply_prefix: str = "您问的是："
    received: list = field(default_factory=list)  # (sender, message) in arrival order

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.hello)
        app.router.add_post("/webhooks/rest/webhook", self.webhook)
        return app

    async def hello(self, request: web.Request) -> web.Response:
        return web.Response(text="Hello from Rasa: stand-in")

    async def webhook(self, request: web.Request) -> web.Response:
        try:
            payload = await request.json()
            sender, message = payload["sender"], payload["message"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "bad payload"}, status=400)
        if not isinstance(sender, str) or not isinstance(message, str):
            return web.json_response({"error": "bad payload"}, status=400)
        self.received.append((sender, message))
        return web.json_response(
            [
                {"recipient_id": sender, "text": f"{self.reply_prefix}{message}"},
                {"recipient_id": sender, "text": "如需人工帮助，请拨打12345市民服务热线。"},
            ],
            dumps=_dumps,
        )


def _dumps(obj) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)

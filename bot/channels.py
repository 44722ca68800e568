"""Input channels that clean every message before Rasa sees it.

Registered in credentials.yml in place of Rasa's own `rest` and `socketio` channels (same
URLs). Each message is masked (身份证号, 手机号, bank cards: seed task 18), stripped of markup,
turned into Simplified characters and cut to MAX_MESSAGE_CHARS before NLU, the tracker store or
any log sees it. A turn, REST or socket.io, that produces no reply at all (the action server is
down or slow, the tracker store failed) gets a polite answer with the 12345 hotline instead of
silence, within REPLY_TIMEOUT_S.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import re
import uuid
from typing import Any, Awaitable, Callable, Dict, Optional

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage
from rasa.core.channels.rest import RestInput
from rasa.core.channels.socketio import SocketIOInput, SocketIOOutput
from sanic.request import Request

from assistant.privacy import install_log_masking, mask_pii, mobiles
from bot import rasa_patches
from index_builder.normalize import to_simplified

log = logging.getLogger(__name__)
MAX_MESSAGE_CHARS = 1000
REPLY_TIMEOUT_S = float(os.environ.get("ASSISTANT_REPLY_TIMEOUT", "20"))
FALLBACK_REPLY = "抱歉，系统暂时繁忙，没能处理您的问题。请稍后再试，或拨打市民服务热线12345。"
_TAGS = re.compile(r"<[^<>]{0,200}>")

install_log_masking()  # Rasa's own log handlers are set up before channels load
rasa_patches.install()  # the turn-cost changes, with the channels every Rasa process loads


_tickets = None


def remember_contact(sender_id: Optional[str], text: Optional[str]) -> None:
    """A mobile number in the message may be a callback number for a 工单: keep the last one,
    encrypted, by sender (assistant.intake.store), before the message is masked."""
    global _tickets
    numbers = mobiles(text or "")
    if not numbers or not sender_id or (text or "").startswith("/"):
        return
    try:
        if _tickets is None:
            from assistant.intake.store import TicketStore

            _tickets = TicketStore(os.environ.get("ASSISTANT_TICKETS", "build/data/tickets.db"),
                                   allow_ephemeral_key=os.environ.get("ASSISTANT_DEV") == "1")
        _tickets.remember_contact(sender_id, numbers[-1])
    except Exception as exc:  # no key, a broken store: the message still goes on, masked
        log.error("callback number not kept: %s", mask_pii(str(exc)))


_CLIENT_KEY = re.compile(r"[0-9a-f]{24}")


def clean_user_text(text: Optional[str]) -> str:
    """Mask personal data, drop markup, cut to the limit. Slash-payloads pass unchanged."""
    text = text or ""
    if text.startswith("/"):
        return text[:MAX_MESSAGE_CHARS]
    text = to_simplified(_TAGS.sub(" ", text))  # NLU and the guides speak Simplified Chinese
    return mask_pii(text)[:MAX_MESSAGE_CHARS].strip()


def agent_metadata(metadata: Any) -> Optional[Dict[str, Any]]:
    """What of a client's metadata is kept: the copilot's audience, and the web server's keyed
    hash of the client address (for 好差评 review; never the address itself)."""
    if not isinstance(metadata, dict):
        return None
    kept: Dict[str, Any] = {}
    if metadata.get("audience") == "agent":
        kept["audience"] = "agent"
    if isinstance(metadata.get("client"), str) and _CLIENT_KEY.fullmatch(metadata["client"]):
        kept["client"] = metadata["client"]
    return kept or None


def replies_sent(out: Any) -> int:
    """Messages a turn's output channel has sent so far (REST collects them; socket.io counts)."""
    if isinstance(out, CollectingOutputChannel):
        return len(out.messages)
    return getattr(out, "sent", 0)


def guarded(on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Callable[[UserMessage], Awaitable[None]]:
    """Clean the text, bound the turn's time, and never leave a caller without a reply."""

    async def handle(message: UserMessage) -> None:
        remember_contact(message.sender_id, message.text)  # socket.io: the text is still raw here
        message.text = clean_user_text(message.text)
        out = message.output_channel
        before = replies_sent(out)
        who = mask_pii(message.sender_id or "")
        try:
            await asyncio.wait_for(on_new_message(message), timeout=REPLY_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.error("turn for %s took longer than %.0f s", who, REPLY_TIMEOUT_S)
        except Exception as exc:  # e.g. the tracker store or lock store unreachable: answer, then report
            log.error("turn for %s failed: %s: %s", who, type(exc).__name__, mask_pii(str(exc))[:300])
        if out is not None and replies_sent(out) == before:
            await out.send_text_message(message.sender_id, FALLBACK_REPLY)

    return handle


class CleanRestInput(RestInput):
    @classmethod
    def name(cls) -> str:
        return "rest"

    def _extract_message(self, req: Request) -> Optional[str]:
        raw = super()._extract_message(req)
        sender = (req.json or {}).get("sender") if isinstance(req.json, dict) else None
        remember_contact(str(sender) if sender else None, raw)
        return clean_user_text(raw)

    def get_metadata(self, request: Request) -> Optional[Dict[str, Any]]:
        """Only the audience passes ({"audience": "agent"} from the 12345 copilot): metadata
        is stored in the tracker, so nothing else a client sends is kept."""
        return agent_metadata((request.json or {}).get("metadata") if isinstance(request.json, dict) else None)

    def blueprint(self, on_new_message):
        return super().blueprint(guarded(on_new_message))


class CustomJsonSocketIOOutput(SocketIOOutput):
    """Counts what it sends, so that a silent turn is noticed. Rasa 3.6 emits a custom payload
    as `sio.emit(evt, **payload)`, which raises for any payload that is not emit's own keyword
    arguments (and loses the turn); send it as {"custom": payload}, the REST channel's shape."""

    sent = 0  # replies emitted in this turn (one output channel per message): see guarded()

    async def _send_message(self, socket_id: str, response: Any, **kwargs: Any) -> None:
        await super()._send_message(socket_id, response, **kwargs)
        self.sent += 1

    async def send_custom_json(self, recipient_id: str, json_message: Dict[str, Any], **kwargs: Any) -> None:
        await self._send_message(recipient_id, {"custom": json_message})


def with_custom_json(on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Callable[[UserMessage], Awaitable[Any]]:
    async def handle(message: UserMessage) -> Any:
        out = message.output_channel
        if isinstance(out, SocketIOOutput) and not isinstance(out, CustomJsonSocketIOOutput):
            message.output_channel = CustomJsonSocketIOOutput(out.sio, out.bot_message_evt)
        return await on_new_message(message)

    return handle


class CleanSocketIOInput(SocketIOInput):
    @classmethod
    def name(cls) -> str:
        return "socketio"

    def blueprint(self, on_new_message):
        webhook = super().blueprint(with_custom_json(guarded(on_new_message)))
        sio = self.sio

        # Rasa 3.6 calls sio.enter_room() without await; since python-socketio 5.10 it is a
        # coroutine there, so a persistent session never joined its room and got no replies.
        @sio.on("session_request", namespace=self.namespace)
        async def session_request(sid: str, data: Optional[Dict]) -> None:
            data = data or {}
            if not data.get("session_id"):
                data["session_id"] = uuid.uuid4().hex
            if self.session_persistence:
                joined = sio.enter_room(sid, data["session_id"], namespace=self.namespace)
                if inspect.isawaitable(joined):
                    await joined
            await sio.emit("session_confirm", data["session_id"], room=sid)

        return webhook

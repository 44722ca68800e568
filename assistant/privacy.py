"""Mask personal data (身份证号, 手机号, bank cards) before anything is logged or stored.

Seed task 18: personal data never reaches logs, the tracker store, feedback or handoff
summaries in clear. Masks keep a few characters so an agent can still match a caller.
"""
from __future__ import annotations

import logging
import re

# 18-digit resident ID (last char may be X) and the old 15-digit form; not inside longer digit runs.
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])([1-9]\d{5})(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}([\dXx])(?![0-9A-Za-z])"
                      r"|(?<!\d)[1-9]\d{5}\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}(?!\d)")
# Mainland mobile numbers, optionally written with +86 and spaces or dashes between groups.
_MOBILE = re.compile(r"(?<!\d)(?:\+?86[-\s]?)?(1[3-9]\d)[-\s]?(\d{4})[-\s]?(\d{4})(?!\d)")
# Bank cards: 16–19 digits, optionally grouped by spaces or dashes. No Luhn check: masking
# an order number by mistake costs nothing, leaving a mistyped card number in clear does.
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){15,18}\d(?!\d)")


def _mask_id(m: re.Match) -> str:
    raw = m.group(0)
    return raw[:3] + "*" * (len(raw) - 5) + raw[-2:]


def _mask_mobile(m: re.Match) -> str:
    return f"{m.group(1)}****{m.group(3)}"


def _mask_card(m: re.Match) -> str:
    digits = re.sub(r"\D", "", m.group(0))
    return digits[:4] + "*" * (len(digits) - 8) + digits[-4:]


def mask_pii(text: str) -> str:
    """Mask every ID card number, mobile number and bank card number in `text`."""
    if not text:
        return text
    text = _ID_CARD.sub(_mask_id, text)
    text = _CARD.sub(_mask_card, text)
    return _MOBILE.sub(_mask_mobile, text)


def mobiles(text: str) -> list[str]:
    """The mobile numbers in `text`, digits only (for a 工单 callback, encrypted at once)."""
    return ["".join(m.groups()) for m in _MOBILE.finditer(text or "")]


def contains_pii(text: str) -> bool:
    return mask_pii(text) != text


class PiiMaskingFilter(logging.Filter):
    """Logging filter: masks the formatted message of every record that passes through."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_pii(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_masking(logger: logging.Logger | None = None) -> None:
    """Attach the masking filter to every handler of `logger` (root by default)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, PiiMaskingFilter) for f in handler.filters):
            handler.addFilter(PiiMaskingFilter())

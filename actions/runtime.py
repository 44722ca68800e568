"""Process-wide state of the action server: the retriever (loaded once) and the store.

A missing or broken index does not crash the server: it logs one clear line, reports
"not ready" on /ready, and the answer action replies with the 12345 hotline instead.
"""
from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from pathlib import Path

from index_builder.retriever import IndexNotReady, Retriever

from assistant.dialogue import Dialogue
from assistant.intake.service import Intake
from assistant.stores import Store

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
INDEX_DIR = Path(os.environ.get("ASSISTANT_INDEX", ROOT / "build" / "indexes" / "kb"))
STORE_PATH = Path(os.environ.get("ASSISTANT_STORE", ROOT / "build" / "data" / "assistant.db"))

_lock = threading.Lock()
_retriever: Retriever | None = None
_problem: str | None = None
_dialogue: Dialogue | None = None


def retriever() -> Retriever | None:
    """The loaded retriever, or None when the index is not usable (see `problem()`)."""
    global _retriever, _problem
    with _lock:
        if _retriever is not None:  # a rebuilt index (a document added): served without a restart
            _retriever = _retriever.refreshed()
        if _retriever is None:
            try:
                _retriever = Retriever(INDEX_DIR)
                _problem = None
                log.info("index loaded from %s (%d passages)", INDEX_DIR, len(_retriever.passages))
            except IndexNotReady as exc:
                if _problem != str(exc):
                    log.error("index not ready: %s", exc)
                _problem = str(exc)
        return _retriever


def dialogue() -> Dialogue | None:
    """The conversation core over the loaded retriever (stateless: context is in the slots)."""
    global _dialogue
    r = retriever()
    if r is None:
        return None
    if _dialogue is None or _dialogue.retriever is not r:
        _dialogue = Dialogue(r)
    return _dialogue


_intake: Intake | None = None


def intake() -> Intake | None:
    """诉求 intake over the 工单 store and the intake model; None (logged) when the store cannot
    be opened, e.g. without ASSISTANT_TICKET_KEY (ASSISTANT_DEV=1 allows a throwaway key)."""
    global _intake
    with _lock:
        if _intake is None:
            try:
                _intake = Intake.open(allow_ephemeral_key=os.environ.get("ASSISTANT_DEV") == "1")
            except Exception as exc:
                log.error("工单 store not available: %s", exc)
        return _intake


def problem() -> str | None:
    return _problem


@lru_cache(maxsize=1)
def store() -> Store:
    return Store(STORE_PATH)

"""Rasa's Redis ticket lock, made safe for several replicas and quick to hand over.

Rasa 3.6's RedisLockStore serialises one conversation's turns with a ticket queue kept as one
Redis value, but changes it with a plain read-then-write, so two replicas changing it at once
lose a change: a new ticket vanishes (its message then fails with LockError) or a finished one
stays (the next message waits for it to expire). A waiting message looks again only once a
second, so a burst of one conversation's messages takes a second a turn. And a ticket expires a
fixed time after it was issued, so a message that waited long has its turn cut short, and the next
one starts beside it.

Here every change is one Redis transaction (WATCH/MULTI, retried on conflict); a waiting message
looks every LOCK_POLL_S seconds (0.05); and a ticket is a lease that its live owner renews, so it
expires only TICKET_LOCK_LIFETIME seconds after its process stopped renewing it (died).

    lock_store:
      type: bot.lock_store.AtomicRedisLockStore
      url: "127.0.0.1"        # the rest as for Rasa's `type: redis`
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from contextlib import asynccontextmanager, suppress
from typing import AsyncGenerator, Callable, Optional, Text, Tuple, TypeVar

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
Change = Callable[[Optional[TicketLock]], Tuple[Optional[TicketLock], T]]


def lease_seconds() -> float:
    return float(os.environ.get("TICKET_LOCK_LIFETIME", "0") or 0) or 60.0


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: EndpointConfig) -> None:
        super().__init__(host=endpoint_config.url, **endpoint_config.kwargs)
        self.poll_s = float(os.environ.get("LOCK_POLL_S", "0.05"))
        self.lease_s = lease_seconds()

    # -- one transaction per change -------------------------------------------------------
    def _change(self, conversation_id: Text, change: Change) -> T:
        """Apply change(lock) -> (new lock or None to delete, result) atomically."""
        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    lock, result = change(TicketLock.from_dict(json.loads(raw)) if raw else None)
                    pipe.multi()
                    if lock is None or not lock.tickets:
                        pipe.delete(key)
                    else:
                        pipe.set(key, lock.dumps())
                    pipe.execute()
                    return result
                except redis.WatchError:  # another process changed it meanwhile: read again
                    continue

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = 0) -> int:
        def issue(lock: Optional[TicketLock]) -> Tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime or self.lease_s)

        try:
            return self._change(conversation_id, issue)
        except redis.RedisError as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    def renew(self, conversation_id: Text, ticket: int) -> None:
        """Push the ticket's expiry to lease_s from now (its owner is alive)."""
        def extend(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            for t in (lock.tickets if lock else ()):
                if t.number == ticket:
                    t.expires = time.time() + self.lease_s
            return lock, None

        self._change(conversation_id, extend)

    def update_lock(self, conversation_id: Text) -> None:
        def drop_expired(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock:
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, drop_expired)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove the ticket; the lock goes with its last ticket, in the same transaction."""
        def finish(lock: Optional[TicketLock]) -> Tuple[Optional[TicketLock], None]:
            if lock:
                lock.remove_ticket_for(ticket_number)
                lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, finish)

    # -- the lock itself -------------------------------------------------------------------
    async def _renew_while_alive(self, conversation_id: Text, ticket: int) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                self.renew(conversation_id, ticket)
            except redis.RedisError as exc:  # the next renewal may reach it; the lease covers a gap
                log.warning("lock lease not renewed: %s", type(exc).__name__)

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: float = 0,
                   wait_time_in_seconds: float = 0) -> AsyncGenerator[TicketLock, None]:
        ticket = self.issue_ticket(conversation_id, lock_lifetime or self.lease_s)
        lease = asyncio.ensure_future(self._renew_while_alive(conversation_id, ticket))
        try:
            yield await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds or self.poll_s)
        finally:
            lease.cancel()
            with suppress(asyncio.CancelledError):
                await lease
            self.cleanup(conversation_id, ticket)

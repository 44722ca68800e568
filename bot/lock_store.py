"""Rasa's Redis ticket lock, made safe for several replicas and quick to hand over.

Rasa 3.6's RedisLockStore serialises one conversation's turns with a ticket queue kept as one
Redis value, but changes it with a plain read-then-write, so two replicas changing it at once
lose a change: a new ticket vanishes (its message then fails with LockError) or a finished one
stays (the next message waits for it to expire). A waiting message looks again only once a
second, so a burst of one conversation's messages takes a second a turn. And a ticket expires a
fixed time after it was issued, so a message that waited long has its turn cut short, and the next
one starts beside it.

Here every change is one Lua script, which Redis runs atomically (and in one round trip: an
uncontended turn costs two, issue and finish, where Rasa's costs seven); a waiting message looks
every LOCK_POLL_S seconds (0.05); and a ticket is a lease that its live owner renews, so it
expires only TICKET_LOCK_LIFETIME seconds after its process stopped renewing it (died). The
value keeps Rasa's format, so Rasa's own `get_lock` reads it.

    lock_store:
      type: bot.lock_store.AtomicRedisLockStore
      url: "127.0.0.1"        # the rest as for Rasa's `type: redis`
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager, suppress
from typing import AsyncGenerator, Text, Tuple

import redis
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

log = logging.getLogger(__name__)

# KEYS[1]: the lock; ARGV: op (issue | renew | finish | serving), now, conversation id, ticket
# number, lifetime. Drops expired tickets, applies op, stores the lock (deletes it when empty),
# returns {issued number or -1, the number now served or -1 when no ticket is left}.
TICKETS_LUA = """
local raw = redis.call('GET', KEYS[1])
local op, now = ARGV[1], tonumber(ARGV[2])
local number, lifetime = tonumber(ARGV[4]), tonumber(ARGV[5])
local tickets, changed = {}, false
if raw then
  for _, t in ipairs(cjson.decode(raw).tickets or {}) do
    local ticket = cjson.decode(t)
    if ticket.expires >= now then table.insert(tickets, ticket) else changed = true end
  end
end
local issued = -1
if op == 'issue' then
  issued = 0
  if #tickets > 0 then issued = tickets[#tickets].number + 1 end
  table.insert(tickets, {number = issued, expires = now + lifetime})
  changed = true
elseif op == 'renew' or op == 'finish' then
  for i = #tickets, 1, -1 do
    if tickets[i].number == number then
      if op == 'renew' then tickets[i].expires = now + lifetime else table.remove(tickets, i) end
      changed = true
    end
  end
end
if changed then
  if #tickets == 0 then
    redis.call('DEL', KEYS[1])
  else
    local encoded = {}
    for i, t in ipairs(tickets) do encoded[i] = cjson.encode(t) end
    redis.call('SET', KEYS[1], cjson.encode({conversation_id = ARGV[3], tickets = encoded}))
  end
end
local serving = -1
if #tickets > 0 then serving = tickets[1].number end
return {issued, serving}
"""


class AtomicRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: EndpointConfig) -> None:
        super().__init__(host=endpoint_config.url, **endpoint_config.kwargs)
        self.poll_s = float(os.environ.get("LOCK_POLL_S", "0.05"))
        self.lease_s = float(LOCK_LIFETIME)  # Rasa's: TICKET_LOCK_LIFETIME, else 60 s
        self._tickets = self.red.register_script(TICKETS_LUA)

    def _run(self, op: str, conversation_id: Text, number: int = -1, lifetime: float = 0) -> Tuple[int, int]:
        issued, serving = self._tickets(keys=[self.key_prefix + conversation_id],
                                        args=[op, repr(time.time()), conversation_id, number, repr(lifetime)])
        return int(issued), int(serving)

    def issue(self, conversation_id: Text, lifetime: float) -> Tuple[int, int]:
        """A new ticket: (its number, the number served now)."""
        try:
            return self._run("issue", conversation_id, lifetime=lifetime)
        except redis.RedisError as exc:
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    def issue_ticket(self, conversation_id: Text, lock_lifetime: float = 0) -> int:
        return self.issue(conversation_id, lock_lifetime or self.lease_s)[0]

    def renew(self, conversation_id: Text, ticket: int) -> None:
        """Push the ticket's expiry to lease_s from now (its owner is alive)."""
        self._run("renew", conversation_id, ticket, self.lease_s)

    def update_lock(self, conversation_id: Text) -> None:
        self._run("serving", conversation_id)

    def cleanup(self, conversation_id: Text, ticket_number: int) -> None:
        """Remove the ticket; the lock goes with its last ticket."""
        self._run("finish", conversation_id, ticket_number)

    async def _renew_while_alive(self, conversation_id: Text, ticket: int) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                self.renew(conversation_id, ticket)
            except redis.RedisError as exc:  # the next renewal may reach it; the lease covers a gap
                log.warning("lock lease not renewed: %s", type(exc).__name__)

    async def _wait_for_turn(self, conversation_id: Text, ticket: int, serving: int, poll_s: float) -> None:
        while serving != ticket:
            if serving == -1:  # our ticket is gone: it expired, so this process stalled for a lease
                raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
            await asyncio.sleep(poll_s)
            serving = self._run("serving", conversation_id)[1]

    @asynccontextmanager
    async def lock(self, conversation_id: Text, lock_lifetime: float = 0,
                   wait_time_in_seconds: float = 0) -> AsyncGenerator[None, None]:
        ticket, serving = self.issue(conversation_id, lock_lifetime or self.lease_s)
        lease = asyncio.ensure_future(self._renew_while_alive(conversation_id, ticket))
        try:
            await self._wait_for_turn(conversation_id, ticket, serving, wait_time_in_seconds or self.poll_s)
            yield None  # Rasa's callers do not use the lock object
        finally:
            lease.cancel()
            with suppress(asyncio.CancelledError):
                await lease
            self.cleanup(conversation_id, ticket)

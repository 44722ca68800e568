"""bot.lock_store against a real Redis server, run under Rasa's Python (.venv-rasa).

Two processes stand for two replicas taking turns of one conversation.
"""
from __future__ import annotations

import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import rasa_venv
from conftest import free_port_block

pytestmark = pytest.mark.skipif(not rasa_venv.RASA_PY.exists() or not shutil.which("redis-server"),
                                reason="needs .venv-rasa (make setup) and Debian's redis-server")

PRELUDE = textwrap.dedent('''
    import asyncio, os, sys, time
    import redis
    from rasa.utils.endpoints import EndpointConfig
    from bot.lock_store import AtomicRedisLockStore

    PORT = int(sys.argv[1])
    store = AtomicRedisLockStore(EndpointConfig(url="127.0.0.1", port=PORT, db=1, type="x"))
    red = redis.StrictRedis(port=PORT, db=2)
''')


@pytest.fixture()
def redis_port(tmp_path):
    port = free_port_block(1)
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    for _ in range(50):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.1)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


def start(tmp_path: Path, name: str, body: str, port: int, **env: str) -> subprocess.Popen:
    return rasa_venv.start(tmp_path / f"{name}.py", PRELUDE + textwrap.dedent(body), str(port), **env)


finish = rasa_venv.finish


BURST = '''
    async def turn(i):
        async with store.lock("one-conversation"):
            inside = red.incr("inside")
            await asyncio.sleep(0.01)
            red.decr("inside")
            return inside

    async def main():
        results = await asyncio.gather(*(turn(i) for i in range(15)), return_exceptions=True)
        errors = [type(r).__name__ for r in results if isinstance(r, Exception)]
        print(sum(1 for r in results if r == 1), max(r for r in results if isinstance(r, int)), errors)

    asyncio.run(main())
'''


def test_a_burst_from_two_replicas_is_served_one_turn_at_a_time_and_every_turn_gets_its_turn(tmp_path, redis_port):
    # a short lease: with tickets that expire a fixed time after issue, the later ones of the
    # 30 would lose their place (LockError) or start beside a running turn
    replicas = [start(tmp_path, f"r{i}", BURST, redis_port, TICKET_LOCK_LIFETIME="1") for i in (0, 1)]
    outs = [finish(p) for p in replicas]
    for out in outs:
        alone, most_inside, errors = out.split(" ", 2)
        assert alone == "15" and most_inside == "1" and errors == "[]", out


def test_a_holder_that_dies_frees_the_lock_after_its_lease_and_a_live_one_keeps_it(tmp_path, redis_port):
    holder = start(tmp_path, "holder", '''
        async def main():
            async with store.lock("c"):
                print("held", flush=True)
                await asyncio.sleep(6)   # far longer than the 1 s lease: renewed while alive
                red.set("holder-done", time.time())
                await asyncio.sleep(600)  # killed here, holding the lock
        asyncio.run(main())
    ''', redis_port, TICKET_LOCK_LIFETIME="1")
    assert holder.stdout.readline().strip() == "held"
    waiter = start(tmp_path, "waiter", '''
        async def main():
            async with store.lock("c"):
                done = red.get("holder-done")
                print("after-holder" if done else "beside-holder", flush=True)
        asyncio.run(asyncio.wait_for(main(), 30))
    ''', redis_port, TICKET_LOCK_LIFETIME="1")
    time.sleep(8)  # the holder has passed its first 6 s; now it dies holding the lock
    holder.kill()
    holder.wait()
    assert finish(waiter) == "after-holder"


def test_the_stored_lock_keeps_rasas_format(tmp_path, redis_port):
    out = finish(start(tmp_path, "format", '''
        first = store.issue_ticket("f")
        second = store.issue_ticket("f")
        lock = store.get_lock("f")  # Rasa's own reader
        print(first, second, [t.number for t in lock.tickets], lock.now_serving, lock.is_locked(second))
        store.cleanup("f", first)
        store.cleanup("f", second)
        print(store.get_lock("f"))
    ''', redis_port))
    assert out.splitlines() == ["0 1 [0, 1] 0 True", "None"]

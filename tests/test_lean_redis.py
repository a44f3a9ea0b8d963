"""The lean Redis client (every script call, the accept's reads) against real Redis: order,
errors, scripts, replicas, failures."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
import redis
from redis import exceptions as redis_errors

from api.settings import Settings
from api.store.base import open_store
from api.store.connect import lean_client
from api.store.dialing import RecordDialed
from api.store.lean_redis import LeanRedis, LeanScript, NotReplicated, hash_reply, pack
from tests.support import async_wait_until, free_port


def _blocked_in(client: redis.Redis, client_id: int, command: str) -> bool:
    """Redis has that connection blocked in `command` (CLIENT LIST flags `b`)."""
    for entry in client.client_list():
        if int(entry["id"]) == client_id:
            return entry["cmd"] == command and "b" in entry["flags"]
    return False


@pytest.fixture
async def lean(settings: Settings) -> AsyncIterator[LeanRedis]:
    client = lean_client(settings, reply_timeout=5)
    yield client
    await client.aclose()


def test_pack_writes_resp_arrays_of_bulk_strings() -> None:
    assert pack([["SET", "k", 7], [b"GET", "é"]]) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n7\r\n*2\r\n$3\r\nGET\r\n$2\r\n\xc3\xa9\r\n"
    )


async def test_concurrent_batches_get_their_own_replies(
    lean: LeanRedis, settings: Settings
) -> None:
    prefix = f"{settings.redis_prefix}:lean"

    async def roundtrip(index: int) -> list[object]:
        key = f"{prefix}:{index}"
        return await lean.execute(
            ["SET", key, f"v{index}"], ["GET", key], ["HSET", f"{key}:h", "a", index]
        )

    replies = await asyncio.gather(*(roundtrip(index) for index in range(300)))
    assert replies == [["OK", f"v{index}", 1] for index in range(300)]
    (flat,) = await lean.execute(["HGETALL", f"{prefix}:7:h"])
    assert hash_reply(flat) == {"a": "7"}


class _CountedWrites:
    """The link's own transport, counting the writes made to it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.transport.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self.transport, name)


async def test_batches_sent_in_one_loop_turn_leave_in_one_write(
    lean: LeanRedis, settings: Settings
) -> None:
    """Concurrent requests reaching Redis together cost one write (a loopback write's
    kernel time was the accept path's largest single cost), in the order they were sent."""
    await lean.execute(["PING"])
    link = lean._link
    assert link is not None
    counted = _CountedWrites(link._transport)  # type: ignore[arg-type]
    link._transport = counted  # type: ignore[assignment]
    key = f"{settings.redis_prefix}:lean:turn"
    replies = await asyncio.gather(*(lean.execute(["INCR", key], ["GET", key]) for _ in range(50)))
    assert replies == [[index, str(index)] for index in range(1, 51)]
    assert len(counted.writes) == 1
    await lean.execute(["DEL", key])
    assert len(counted.writes) == 2


async def test_a_batch_whose_link_drops_before_its_write_fails_and_the_next_reconnects(
    lean: LeanRedis, settings: Settings
) -> None:
    await lean.execute(["PING"])
    link = lean._link
    assert link is not None
    counted = _CountedWrites(link._transport)  # type: ignore[arg-type]
    link._transport = counted  # type: ignore[assignment]
    pending = asyncio.ensure_future(lean.execute(["SET", f"{settings.redis_prefix}:lean:x", 1]))
    await asyncio.sleep(0)  # sent, not yet written
    link.close()
    with pytest.raises(redis_errors.ConnectionError):
        await pending
    assert counted.writes == []  # nothing written for a batch already failed
    assert await lean.execute(["PING"]) == ["PONG"]


async def test_an_error_reply_raises_and_the_connection_stays_in_step(
    lean: LeanRedis, settings: Settings
) -> None:
    key = f"{settings.redis_prefix}:lean:plain"
    with pytest.raises(redis_errors.ResponseError, match="WRONGTYPE"):
        await lean.execute(["SET", key, "x"], ["HINCRBY", key, "f", 1], ["APPEND", key, "y"])
    # Not a transaction: the commands around the failing one ran, and replies stay matched.
    assert await lean.execute(["GET", key], ["STRLEN", key]) == ["xy", 2]


async def test_evalsha_loads_a_script_redis_does_not_know(
    lean: LeanRedis, redis_client: redis.Redis, settings: Settings
) -> None:
    script = LeanScript(f"-- {uuid.uuid4()}\nreturn {{KEYS[1], ARGV[1]}}")
    assert redis_client.script_exists(script.sha) == [False]
    key = f"{settings.redis_prefix}:lean:k"
    assert await lean.evalsha(script, [key], ["a"]) == [key, "a"]
    assert redis_client.script_exists(script.sha) == [True]
    assert await lean.evalsha(script, [key], [2]) == [key, "2"]
    with pytest.raises(redis_errors.ResponseError, match="boom"):
        await lean.evalsha(
            LeanScript(f"-- {uuid.uuid4()}\nreturn redis.error_reply('boom')"), [], []
        )


async def test_evalsha_many_answers_in_order_and_runs_each_script_once(
    lean: LeanRedis, redis_client: redis.Redis, settings: Settings
) -> None:
    """One batch of scripts Redis does not know yet: each is loaded once and each call runs
    once (a NOSCRIPT reply ran nothing); an error reply is that call's reply, not raised."""
    counter = LeanScript(f"-- {uuid.uuid4()}\nreturn redis.call('INCR', KEYS[1])")
    failing = LeanScript(f"-- {uuid.uuid4()}\nreturn redis.error_reply('boom ' .. ARGV[1])")
    key = f"{settings.redis_prefix}:lean:many"
    calls: list[tuple[LeanScript, list[str], list[str]]] = [
        (counter, [key], []),
        (failing, [], ["1"]),
        (counter, [key], []),
        (failing, [], ["2"]),
        (counter, [key], []),
    ]
    replies = await lean.evalsha_many(calls)
    assert replies[0::2] == [1, 2, 3]
    assert [str(reply) for reply in replies[1::2]] == ["boom 1", "boom 2"]
    assert all(isinstance(reply, redis_errors.ResponseError) for reply in replies[1::2])
    assert redis_client.script_exists(counter.sha, failing.sha) == [True, True]
    assert redis_client.get(key) == b"3"
    assert await lean.evalsha_many([(counter, [key], [])]) == [4]
    assert await lean.evalsha_many([]) == []


async def test_evalsha_many_waits_for_replicas_once_behind_its_scripts(
    settings: Settings,
) -> None:
    # This Redis has no replica: a WAIT for one answers 0 after its timeout.
    waiting = lean_client(settings.model_copy(update={"redis_wait_replicas": 1}))
    script = LeanScript(f"-- {uuid.uuid4()}\nreturn redis.call('INCR', KEYS[1])")
    key = f"{settings.redis_prefix}:lean:many-writes"
    try:
        with pytest.raises(NotReplicated):  # they applied: only the confirmation is missing
            await waiting.evalsha_many([(script, [key], [])] * 3)
        only_read = [(script, [key], [])]
        assert await waiting.evalsha_many(only_read, wrote=lambda reply: reply > 10) == [4]
    finally:
        await waiting.aclose()


def test_pack_refuses_what_redis_py_refuses() -> None:
    assert pack([["SET", "k", 1.5]]).endswith(b"$3\r\n1.5\r\n")
    for wrong in (None, True, ["x"]):
        with pytest.raises(redis_errors.DataError):
            pack([["SET", "k", wrong]])


async def test_a_script_waits_for_replicas_only_when_it_wrote(settings: Settings) -> None:
    # This Redis has no replica: a WAIT for one answers 0 after its timeout.
    waiting = lean_client(settings.model_copy(update={"redis_wait_replicas": 1}))
    script = LeanScript(f"-- {uuid.uuid4()}\nreturn redis.call('INCR', KEYS[1])")
    key = f"{settings.redis_prefix}:lean:writes"
    try:
        with pytest.raises(NotReplicated):
            await waiting.evalsha(script, [key], [])
        assert await waiting.evalsha(script, [key], [], wrote=lambda reply: reply > 10) == 2
        with pytest.raises(NotReplicated):  # it applied: only the confirmation is missing
            await waiting.evalsha(script, [key], [], wrote=lambda reply: reply == 3)
    finally:
        await waiting.aclose()


async def test_a_write_waiting_for_replicas_holds_up_no_other_script(settings: Settings) -> None:
    """A WAIT holds its connection until answered (up to 1 s here, with no replica): the
    store's other scripts go over a connection of their own meanwhile."""
    store = open_store(settings.model_copy(update={"redis_wait_replicas": 1}))
    # A call that does not exist: the script only reads, and answers nil.
    step = RecordDialed(
        call=store.keys.call("no-such-call"),
        sip_call_id="SCL_x",
        sip_participant_id="PA_x",
        dial_sent_at_ms=1,
    )
    try:
        held = asyncio.create_task(store.run_replicated(step))
        plain = asyncio.create_task(store.run(step))
        done, _ = await asyncio.wait({held, plain}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {plain}
        assert plain.result() is None
        with pytest.raises(NotReplicated):
            await held
    finally:
        await store.aclose()


async def test_a_killed_connection_fails_what_waits_and_the_next_call_reconnects(
    lean: LeanRedis, redis_client: redis.Redis, settings: Settings
) -> None:
    (first_id,) = await lean.execute(["CLIENT", "ID"])
    blocked = asyncio.create_task(lean.execute(["BLPOP", f"{settings.redis_prefix}:lean:q", 5]))
    await async_wait_until(
        lambda: _blocked_in(redis_client, first_id, "blpop"), what="the BLPOP to block"
    )
    assert redis_client.client_kill_filter(_id=first_id) == 1
    with pytest.raises(redis_errors.ConnectionError):
        await asyncio.wait_for(blocked, 2)
    (second_id,) = await lean.execute(["CLIENT", "ID"])
    assert second_id != first_id


async def test_a_reply_that_never_comes_times_out_and_the_client_recovers(
    settings: Settings,
) -> None:
    lean = lean_client(settings, reply_timeout=0.3)
    try:
        (first_id,) = await lean.execute(["CLIENT", "ID"])
        started = time.monotonic()
        with pytest.raises(redis_errors.TimeoutError):
            # Blocks forever on the server: only the client's reply timeout can end it.
            blpop = ["BLPOP", f"{settings.redis_prefix}:lean:never", 0]
            await asyncio.wait_for(lean.execute(blpop), 30)
        assert time.monotonic() - started >= 0.25  # not before the reply timeout (0.3 s)
        # The late reply cannot be mistaken for the next one: that runs on a new connection.
        assert await lean.execute(["ECHO", "after"]) == ["after"]
        (second_id,) = await lean.execute(["CLIENT", "ID"])
        assert second_id != first_id
    finally:
        await lean.aclose()


async def test_redis_down_is_a_connection_error() -> None:
    lean = lean_client(Settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"), connect_timeout=1)
    with pytest.raises(redis_errors.ConnectionError, match="cannot connect"):
        await lean.execute(["PING"])


async def test_the_url_selects_the_database_and_a_refused_handshake_is_reported(
    settings: Settings, redis_client: redis.Redis
) -> None:
    url = urlsplit(settings.redis_url)
    in_15 = url._replace(path="/15").geturl()
    key = f"{settings.redis_prefix}:lean:db15"
    lean = lean_client(Settings(REDIS_URL=in_15))
    other = redis.Redis.from_url(in_15)
    try:
        await lean.execute(["SET", key, "in-15", "EX", 60])
        assert other.get(key) == b"in-15"
        assert redis_client.get(key) is None
    finally:
        other.delete(key)
        other.close()
        await lean.aclose()
    wrong_url = url._replace(netloc=f":not-the-password@{url.hostname}:{url.port}").geturl()
    wrong = lean_client(Settings(REDIS_URL=wrong_url))
    with pytest.raises(redis_errors.ConnectionError, match="refused the handshake"):
        await wrong.execute(["PING"])

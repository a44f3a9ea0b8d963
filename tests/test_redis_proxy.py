"""The reply-losing Redis proxy the Redis-failure tests use: it passes everything through,
and for a matched command Redis runs it while its client gets a dropped connection."""

from __future__ import annotations

import pytest
import redis

from tests.redis_proxy import RedisProxy, parse_command, script_sha
from tests.support import SpareRedis

INCR_SCRIPT = "return redis.call('INCR', KEYS[1])"


def test_resp_commands_are_parsed_only_when_complete() -> None:
    raw = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI"
    assert parse_command(raw, 0) == ([b"GET", b"k"], 20)
    assert parse_command(raw, 20) is None
    with pytest.raises(ValueError):
        parse_command(b"PING\r\n", 0)


def test_a_lost_reply_ran_in_redis_and_drops_only_its_connection(
    redis_proxy: RedisProxy, spare_redis: SpareRedis
) -> None:
    direct = redis.Redis.from_url(spare_redis.url)
    client = redis.Redis.from_url(redis_proxy.url, protocol=2)
    try:
        incr = client.register_script(INCR_SCRIPT)
        direct.script_load(INCR_SCRIPT)
        assert incr(keys=["counter"]) == 1 and client.set("other", "x")
        rule = redis_proxy.lose_reply(
            "EVALSHA", first_arg=script_sha(INCR_SCRIPT), contains="counter"
        )
        with pytest.raises(redis.ConnectionError):
            incr(keys=["counter"])
        assert direct.get("counter") == b"2"  # it ran; only the reply was lost
        assert [args[3] for args in redis_proxy.lost(rule)] == [b"counter"]
        # One reply only: the next call and other commands go through (new connection).
        assert incr(keys=["counter"]) == 3 and client.get("other") == b"x"
        assert len(redis_proxy.lost(rule)) == 1
    finally:
        client.close()
        direct.close()

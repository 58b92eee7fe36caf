"""A private `redis-server` on a free loopback port, for tests that stop, restart or lock down Redis."""

from __future__ import annotations

import subprocess
import time

import redis


def start_redis_server(port: int, password: str | None = None) -> subprocess.Popen:
    """Start it without persistence and wait until it answers PING."""
    auth = ["--requirepass", password] if password else []
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                             "no", *auth], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, password=password, socket_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            return proc
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError("redis-server did not start")

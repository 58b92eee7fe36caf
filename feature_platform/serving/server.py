"""Running the HTTP app: `feature-platform serve` in the foreground, or a background server for tests."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn

from feature_platform.serving.app import build_app

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 6566  # Feast's feature server port
# A worker imports Feast and loads the registry before it answers uvicorn's health ping: its default 5 s
# would kill and respawn slow-starting workers forever on a busy machine.
WORKER_STARTUP_SEC = 120


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workers: int = 1) -> None:
    """Serve the platform configured by the environment until interrupted; each worker process builds
    its own app. Loopback by default: exposing it is a deployment decision."""
    uvicorn.run("feature_platform.serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="info", access_log=False, timeout_worker_healthcheck=WORKER_STARTUP_SEC)


@contextmanager
def running_server(platform, host: str = DEFAULT_HOST, port: int = 0):
    """A server on a background thread (port 0: a free one); yields its base URL, stops on exit."""
    config = uvicorn.Config(build_app(platform), host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the feature server did not start")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)

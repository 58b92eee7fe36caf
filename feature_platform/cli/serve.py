"""`serve`: Feast's HTTP feature server on the platform's registry and online store."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from feature_platform.cli.arguments import add_command, host, integer

if TYPE_CHECKING:
    from feature_platform.platform import FeaturePlatform


def register(sub) -> None:
    serve = add_command(
        sub, "serve", help="Feast's HTTP feature server on the platform's registry and online store "
        "(/get-online-features, /push, /health)",
        description="Run Feast's HTTP feature server on the platform's registry and online store: POST "
        "/get-online-features, POST /push, GET /health. Beyond loopback it needs FEATURE_PLATFORM_SERVING_TOKENS_FILE "
        "(bearer tokens and roles, docs/serving.md).",
        examples=["", "--port 6566 --workers 2",
                  "--host 0.0.0.0   # with FEATURE_PLATFORM_SERVING_TOKENS_FILE set"])
    serve.add_argument("--host", type=host, default="127.0.0.1",
                       help="interface to listen on (default 127.0.0.1: loopback only)")
    serve.add_argument("--port", type=integer(1, 65535), default=6566, help="port (default 6566, Feast's)")
    serve.add_argument("--workers", type=integer(1), default=1, help="worker processes (default 1)")
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help="listen beyond loopback without FEATURE_PLATFORM_SERVING_TOKENS_FILE (not recommended)")
    serve.set_defaults(run=serve_command)


def serve_command(platform: FeaturePlatform, args) -> int:
    from feature_platform.serving.server import serve

    loopback = args.host in ("127.0.0.1", "::1", "localhost")
    if not loopback and not platform.settings.serving_tokens_file and not args.allow_unauthenticated:
        print(f"error: refusing to serve on --host {args.host} without authentication: set "
              "FEATURE_PLATFORM_SERVING_TOKENS_FILE (see docs/serving.md) or pass --allow-unauthenticated",
              file=sys.stderr)
        return 1
    if not platform.settings.serving_tokens_file:
        print("warning: no FEATURE_PLATFORM_SERVING_TOKENS_FILE: every caller may read and push", file=sys.stderr)
    print(f"{platform!r}\nserving on http://{args.host}:{args.port} (POST /get-online-features, POST /push, GET /health)",
          file=sys.stderr)
    serve(args.host, args.port, args.workers)
    return 0

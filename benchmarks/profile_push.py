"""Where a one-row `push(direct=True)` spends its time: cProfile over N calls after a warm-up.

    .venv/bin/python -m benchmarks.profile_push [--services] [--calls 200] [--rows 1] [--top 30]

Services profile: Redis database FEATURE_PLATFORM_BENCH_REDIS_DB (default 9, flushed), PostgreSQL
database `fp_bench_push`. Embedded: a temporary home.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile

from benchmarks.push import SOURCE, _platform, _rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", action="store_true")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-push-") as home:
        platform = _platform(home, services=args.services)
        frames = [_rows(i, args.rows) for i in range(args.calls + 20)]
        for frame in frames[:20]:
            platform.push(SOURCE, frame, direct=True)
        profile = cProfile.Profile()
        profile.enable()
        for frame in frames[20:]:
            platform.push(SOURCE, frame, direct=True)
        profile.disable()
        stats = pstats.Stats(profile).sort_stats("cumulative")
        stats.print_stats(args.top)
        stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()

"""Memory limits follow from measured figures, so that admission (RESOURCE_EXHAUSTED)
comes before an out-of-memory kill.

game-service: a full registry and every admitted watch stream fit under its limit with
headroom. The figures are those of `cargo bench -p game-service --bench memory` (README,
"The game service", "Memory"), rounded up; measure again when the registry changes. The
manifests keep the games in Redis, where a game costs the service next to nothing; the
limit is checked against the sum for games in memory, which is larger, so it holds for
both stores.

The dev overlay's Redis: GAME_SERVICE_MAX_GAMES games fit under its `--maxmemory`
(past which, with `noeviction`, CreateGame answers RESOURCE_EXHAUSTED), and its
`maxmemory` under its container's limit.
"""

from __future__ import annotations

import re

MIB = 1024 * 1024
# RSS of a started service with its client connections warmed up (measured 21 MiB).
BASELINE = 24 * MIB
# RSS growth per idle game (measured 209-230 B at 100 000 games, 118-404 B at 20 000).
PER_GAME = 512
# RSS growth per open WatchGame stream, each on a game of its own, at 10 000 streams
# (measured 17-19 KiB).
PER_WATCH_STREAM = 20 * 1024
# For what the figures leave out: allocator fragmentation after churn, connections
# waiting for their first request, calls in flight, metrics.
HEADROOM = 1.5
# Redis's memory per game: `used_memory` growth per key of the shape the redis store
# writes (hash `hangman:{<22-character id>}`, fields v and g, an expiry), measured with
# 100 000 keys holding the longest record (26 letters used): 214 B (RSS 223 B), Redis
# 7.0. Rounded up.
REDIS_PER_GAME = 512
# RSS over what `maxmemory` counts: allocator, fragmentation, the server's own baseline.
REDIS_RSS_OVER_USED = 2

QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|k|M|G)?$")
UNITS = {None: 1, "Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "k": 10**3, "M": 10**6, "G": 10**9}
# Redis's memory units (redis.conf): "mb" is 1024 * 1024 bytes, "m" 1 000 000.
REDIS_QUANTITY = re.compile(r"^(\d+)(kb|mb|gb|k|m|g)?$", re.I)
REDIS_UNITS = {None: 1, "kb": 1024, "mb": MIB, "gb": 1024 * MIB, "k": 10**3, "m": 10**6}
REDIS_UNITS["g"] = 10**9


def bytes_of(quantity: str) -> int:
    match = QUANTITY.match(str(quantity))
    assert match, f"unexpected memory quantity {quantity!r}"
    return int(match.group(1)) * UNITS[match.group(2)]


def test_a_full_game_service_fits_its_memory_limit_with_headroom(manifests):
    container = manifests.container("game-service")
    env = manifests.container_env(container)
    # Set in the manifest, so that the limit does not rest on a default that may change.
    max_games = int(env["GAME_SERVICE_MAX_GAMES"])
    max_watchers = int(env["GAME_SERVICE_MAX_WATCHERS"])
    need = BASELINE + max_games * PER_GAME + max_watchers * PER_WATCH_STREAM
    limit = bytes_of(container["resources"]["limits"]["memory"])
    assert need * HEADROOM <= limit, (
        f"{manifests.overlay}: {max_games} games and {max_watchers} watch streams need "
        f"{need / MIB:.0f} MiB, {HEADROOM}x that is over the {limit / MIB:.0f} MiB limit"
    )


def test_a_full_game_service_in_redis_mode_holds_no_game(manifests):
    """The store is Redis here: the games term above is not this pod's (only watch streams
    are), so the limit has more room than the memory-mode sum says."""
    container = manifests.container("game-service")
    env = manifests.container_env(container)
    assert "GAME_SERVICE_STORE" in env
    need = BASELINE + int(env["GAME_SERVICE_MAX_WATCHERS"]) * PER_WATCH_STREAM
    assert need * HEADROOM <= bytes_of(container["resources"]["limits"]["memory"])


def redis_bytes(quantity: str) -> int:
    match = REDIS_QUANTITY.match(quantity)
    assert match, f"unexpected Redis memory quantity {quantity!r}"
    unit = match.group(2).lower() if match.group(2) else None
    return int(match.group(1)) * REDIS_UNITS[unit]


def test_the_dev_redis_holds_max_games_under_maxmemory_and_its_limit(manifests):
    if manifests.overlay != "dev":
        return
    service = manifests.container("game-service")
    max_games = int(manifests.container_env(service)["GAME_SERVICE_MAX_GAMES"])
    redis = manifests.container("redis")
    args = redis["args"]
    maxmemory = redis_bytes(args[args.index("--maxmemory") + 1])
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction", "never evict a game"
    need = max_games * REDIS_PER_GAME
    assert need * HEADROOM <= maxmemory, (
        f"{max_games} games need {need / MIB:.0f} MiB in Redis, {HEADROOM}x that is over "
        f"its maxmemory of {maxmemory / MIB:.0f} MiB"
    )
    limit = bytes_of(redis["resources"]["limits"]["memory"])
    assert maxmemory * REDIS_RSS_OVER_USED <= limit

"""Memory limits follow from measured figures, so that admission (RESOURCE_EXHAUSTED)
comes before an out-of-memory kill.

game-service: a full registry, every admitted watch stream and room member, and every
admitted client connection fit under its limit with headroom. The figures are those of
`cargo bench -p game-service --bench memory` (game-service/README.md, "Memory"), rounded up;
measure again when the registry changes. The manifests keep the games in Redis, where a game
costs the service next to nothing; the limit is checked against the sum for games in memory,
which is larger, so it holds for both stores.

The front ends: ws-gateway (each version's Deployment) and html-gallows, filled to every
admission limit their pods are given, fit under their memory limits with the same headroom.

Each of those limits must be set in the manifests (a default of the binary may change
unseen), and the check is shown to fail when any one of them is raised far enough.

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
# RSS growth per room member (measured 172 B: 100 000 members in 10 000 rooms, keys and
# names the gateway's size; game-service/README.md, "Memory").
PER_MEMBER = 256
# RSS growth per client connection open, idle after one call (a front end's between calls):
# `cargo bench -p game-service --bench memory -- --connections 2000`, measured 36.9 KiB. A
# connection waiting for its first request takes less (scripts/half-open-rss: +31 MiB for
# 1 024), so every connection the open cap admits is counted at this.
PER_CLIENT_CONNECTION = 40 * 1024
# For what the figures leave out: allocator fragmentation after churn, calls in flight,
# metrics.
HEADROOM = 1.5
# Redis's memory per game: `used_memory` growth per key of the shape the redis store
# writes (hash `hangman:{<22-character id>}`, fields v and g, an expiry), measured with
# 100 000 keys holding the longest record (26 letters used): 214 B (RSS 223 B), Redis
# 7.0. Rounded up.
REDIS_PER_GAME = 512
# RSS over what `maxmemory` counts: allocator, fragmentation, the server's own baseline.
# Measured: the dev arguments (`--maxmemory 128mb`, noeviction), filled with hashes of the
# store's shape until writes were refused, RSS 147 MiB (1.15x); after deleting half and
# filling again, 151 MiB (1.18x). Debian's redis-server 7.0.15 (jemalloc).
REDIS_RSS_OVER_USED = 2

KIB = 1024
# ws-gateway, release build on loopback (README, "Deployment", "Memory limits").
# RSS started (measured 12.5 MiB), then after 10 clients played 10 moves each (19.2 MiB).
GATEWAY_BASELINE = 24 * MIB
# Per joined, idle WebSocket connection (one hangman:game channel): `ws-load --clients
# 10 --moves 10 --idle-clients 19500 --gateway-pid PID`, measured 4.7-4.9 KiB (10.2-10.6
# KiB before issue 14).
GATEWAY_PER_CONNECTION = 6 * KIB
# A connection keeps a buffer the size of the largest message it has sent: measured
# +10.3 KiB per connection after one 8 000-byte message, +66 KiB after 60 000 bytes
# (1 000 connections each). Counted as this factor times --max-frame-size.
GATEWAY_FRAME_BUFFER = 1.5
# Per game:<id> room joined (its watch stream upstream): 50 connections x 99 rooms
# and 100 x 20, measured 22.3-25.5 KiB a room. Counted for every channel allowed.
GATEWAY_PER_ROOM = 28 * KIB
# Per connection waiting for its first complete request (half-open, slowloris):
# scripts/half-open-rss, +28.3-32 MiB for 1 024.
GATEWAY_PER_PENDING = 32 * KIB
# Per idle long-poll session joined to hangman:game, its poll waiting: 2 000 sessions of the
# npm client's LongPoll, ws-gateway/tests/phoenix-js/bench/longpoll-memory.mjs, measured
# 37.7-39.8 KiB in 9 runs at 34928af, 39.9-40.8 in 4 at f9e97b6 (as much after two more poll
# windows), 29.7-30.9 of it the HTTP connection the poll waits on (docs/benchmarks.md).
GATEWAY_PER_SESSION = 48 * KIB
# A poll that lands on a replica not holding its session is forwarded to the holder: the
# forwarder keeps the client's connection and one of its own to the holder while it waits.
# Measured with the same script behind a round-robin proxy: 71.3-73.5 KiB a session summed
# over two replicas (half the polls forwarded; 69.2-71.4 at 34928af), 83.2 over three (81.6),
# so 62-65 KiB a forwarded poll. A replica forwards the polls of 1/n of each other replica's sessions: fewer than it may
# hold itself, so one forwarded poll (and one forwarded POST body) is counted per session.
GATEWAY_PER_FORWARDED_POLL = 72 * KIB
# A message waiting in a session's buffer for the next poll. The gateway's largest to the SPA,
# a tally with the word and 26 letters used, is under 500 B (the presence of a large room,
# sent once a join, is more; the headroom pays for it).
GATEWAY_BUFFERED_MESSAGE = 1 * KIB
# html-gallows, release build on loopback. RSS started: measured 6.3-6.9 MiB.
HTML_BASELINE = 8 * MIB
# Per game watched by the tally cache: 1 000 games created and viewed through the forms,
# each in a session of its own, measured 10.9-11.4 KiB.
HTML_PER_CACHED_GAME = 12 * KIB
# Per request being handled, with its connection: 1 024 new-game POSTs held while the
# game service was stopped (SIGSTOP), measured 36.1 KiB.
HTML_PER_REQUEST = 40 * KIB
# Per half-open connection: scripts/half-open-rss, +34.2-36 MiB for 1 024.
HTML_PER_PENDING = 40 * KIB

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


GATEWAY_LIMITS = [
    "WS_GATEWAY_MAX_CONNECTIONS",
    "WS_GATEWAY_MAX_CHANNELS",
    "WS_GATEWAY_MAX_FRAME_SIZE",
    "WS_GATEWAY_MAX_PENDING_CONNECTIONS",
    "WS_GATEWAY_MAX_OPEN_CONNECTIONS",
    "WS_GATEWAY_LONGPOLL_MAX_SESSIONS",
    "WS_GATEWAY_LONGPOLL_BUFFER",
    "WS_GATEWAY_LONGPOLL_MAX_BODY",
]
# Long-poll settings that are no term of the sum but bound what it counts: the messages of a
# POST (its body bounds their bytes), how long a poll is held and how long a session no poll
# came for lives on. Set in the manifests all the same.
GATEWAY_SETTINGS = [
    "WS_GATEWAY_LONGPOLL_MAX_MESSAGES",
    "WS_GATEWAY_LONGPOLL_WINDOW",
    "WS_GATEWAY_LONGPOLL_EXPIRY",
]
GAME_SERVICE_LIMITS = [
    "GAME_SERVICE_MAX_GAMES",
    "GAME_SERVICE_MAX_WATCHERS",
    "GAME_SERVICE_MAX_MEMBERS",
    "GAME_SERVICE_MAX_OPEN_CONNECTIONS",
]
HTML_LIMITS = [
    "HTML_GALLOWS_TALLY_CACHE_GAMES",
    "HTML_GALLOWS_MAX_CONCURRENT_REQUESTS",
    "HTML_GALLOWS_MAX_PENDING_CONNECTIONS",
    "HTML_GALLOWS_MAX_OPEN_CONNECTIONS",
]


def admission_limits(
    env: dict[str, str], names: list[str], settings: list[str] = ()
) -> dict[str, int]:
    """The admission limits a pod sets; each must be set, and not to 0 (no limit), as must
    the `settings` that bound them."""
    missing = [name for name in [*names, *settings] if name not in env]
    assert not missing, f"{missing} not set: the memory limit cannot rest on a default"
    limits = {name: int(env[name]) for name in names}
    assert all(limits.values()), f"{limits}: 0 turns a limit off"
    return limits


def game_service_need(env: dict[str, str]) -> float:
    """A full registry, every admitted watch stream and room member, every admitted client
    connection. The manifests keep the games in Redis, where a game costs the service next to
    nothing: the sum for games in memory is larger, so the limit holds for both stores."""
    n = admission_limits(env, GAME_SERVICE_LIMITS)
    return (
        BASELINE
        + n["GAME_SERVICE_MAX_GAMES"] * PER_GAME
        + n["GAME_SERVICE_MAX_WATCHERS"] * PER_WATCH_STREAM
        + n["GAME_SERVICE_MAX_MEMBERS"] * PER_MEMBER
        + n["GAME_SERVICE_MAX_OPEN_CONNECTIONS"] * PER_CLIENT_CONNECTION
    )


def gateway_need(env: dict[str, str]) -> float:
    n = admission_limits(env, GATEWAY_LIMITS, GATEWAY_SETTINGS)
    rooms = n["WS_GATEWAY_MAX_CHANNELS"] * GATEWAY_PER_ROOM
    per_connection = (
        GATEWAY_PER_CONNECTION + GATEWAY_FRAME_BUFFER * n["WS_GATEWAY_MAX_FRAME_SIZE"] + rooms
    )
    # A session's buffer full, and one POST body in flight (the npm client sends one at a
    # time; the decoded messages are in the headroom), here and at a forwarder.
    per_session = (
        GATEWAY_PER_SESSION
        + GATEWAY_PER_FORWARDED_POLL
        + n["WS_GATEWAY_LONGPOLL_BUFFER"] * GATEWAY_BUFFERED_MESSAGE
        + 2 * n["WS_GATEWAY_LONGPOLL_MAX_BODY"]
        + rooms
    )
    # The other connections (half-open, or kept alive between two requests), each at most a
    # half-open one: what the open cap leaves beside full WebSockets and sessions, and never
    # fewer than the half-open ones it admits.
    others = max(
        n["WS_GATEWAY_MAX_PENDING_CONNECTIONS"],
        n["WS_GATEWAY_MAX_OPEN_CONNECTIONS"]
        - n["WS_GATEWAY_MAX_CONNECTIONS"]
        - n["WS_GATEWAY_LONGPOLL_MAX_SESSIONS"],
    )
    return (
        GATEWAY_BASELINE
        + n["WS_GATEWAY_MAX_CONNECTIONS"] * per_connection
        + others * GATEWAY_PER_PENDING
        + n["WS_GATEWAY_LONGPOLL_MAX_SESSIONS"] * per_session
    )


def html_need(env: dict[str, str]) -> float:
    n = admission_limits(env, HTML_LIMITS)
    return (
        HTML_BASELINE
        + n["HTML_GALLOWS_TALLY_CACHE_GAMES"] * HTML_PER_CACHED_GAME
        + n["HTML_GALLOWS_MAX_CONCURRENT_REQUESTS"] * HTML_PER_REQUEST
        # The other connections, half-open or kept alive, each at most a half-open one.
        + max(
            n["HTML_GALLOWS_MAX_PENDING_CONNECTIONS"],
            n["HTML_GALLOWS_MAX_OPEN_CONNECTIONS"] - n["HTML_GALLOWS_MAX_CONCURRENT_REQUESTS"],
        )
        * HTML_PER_PENDING
    )


def capped_pods(manifests):
    """(Deployment, what a full pod needs, its admission limits, the settings that bound
    them) for the game service and every front end."""
    gateways = [
        d["metadata"]["name"]
        for d in manifests.of_kind("Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/name") == "ws-gateway"
    ]
    assert len(gateways) >= 2, f"{manifests.overlay}: expected both gateway versions"
    return [(name, gateway_need, GATEWAY_LIMITS, GATEWAY_SETTINGS) for name in gateways] + [
        ("html-gallows", html_need, HTML_LIMITS, []),
        ("game-service", game_service_need, GAME_SERVICE_LIMITS, []),
    ]


def over_limit(manifests, name, need, env) -> str | None:
    """Why a pod with this env does not fit its memory limit with headroom, or None."""
    limit = bytes_of(manifests.container(name)["resources"]["limits"]["memory"])
    full = need(env)
    if full * HEADROOM <= limit:
        return None
    return (
        f"{manifests.overlay}/{name}: its admission limits need {full / MIB:.0f} MiB, "
        f"{HEADROOM}x that is over the {limit / MIB:.0f} MiB limit"
    )


def test_full_pods_fit_their_memory_limits_with_headroom(manifests):
    for name, need, _, _ in capped_pods(manifests):
        env = manifests.container_env(manifests.container(name))
        assert over_limit(manifests, name, need, env) is None, over_limit(
            manifests, name, need, env
        )


def test_a_maximum_raised_without_the_memory_limit_fails(manifests):
    """The check above reads each maximum from the manifests: any one of them raised
    tenfold (or it, or a setting that bounds it, left to the binary's default) without the
    memory limit fails it."""
    for name, need, names, settings in capped_pods(manifests):
        env = manifests.container_env(manifests.container(name))
        for key in names:
            raised = {**env, key: str(int(env[key]) * 10)}
            assert over_limit(manifests, name, need, raised), f"{name}: {key} x 10 fits"
        for key in [*names, *settings]:
            unset = {k: v for k, v in env.items() if k != key}
            try:
                need(unset)
            except AssertionError:
                continue
            raise AssertionError(f"{name}: {key} left to its default passes unnoticed")


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

"""game-service's memory limit follows from measured figures: a full registry and
every admitted watch stream fit under it with headroom, so CreateGame and WatchGame
answer RESOURCE_EXHAUSTED before the pod could be OOM-killed.

The figures are those of `cargo bench -p game-service --bench memory` (README, "The
game service", "Memory"), rounded up; measure again when the registry changes.
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

QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|k|M|G)?$")
UNITS = {None: 1, "Ki": 1024, "Mi": MIB, "Gi": 1024 * MIB, "k": 10**3, "M": 10**6, "G": 10**9}


def bytes_of(quantity: str) -> int:
    match = QUANTITY.match(str(quantity))
    assert match, f"unexpected memory quantity {quantity!r}"
    return int(match.group(1)) * UNITS[match.group(2)]


def test_a_full_game_service_fits_its_memory_limit_with_headroom(manifests):
    (container,) = manifests.get("Deployment", "game-service")["spec"]["template"]["spec"][
        "containers"
    ]
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

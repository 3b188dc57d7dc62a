#!/usr/bin/env bash
# Benchmark of html-gallows with wrk: requests per second and p99 latency of
#   - GET /hangman/current with a live game (session cookie, the tally from the
#     cache that the game service's watch stream keeps current, one page render),
#   - the same page from a second html-gallows with the tally cache turned off
#     (one GetGame gRPC call per view),
#   - GET /healthz on the first server (a static handler: the ceiling), and
#   - GET /static/gallows.css (static too, with a body the size of the page),
# in release mode on loopback, each for a bounded time.
#
#   html-gallows/bench/run.sh            # from the repository root
#   DURATION=20s CONNECTIONS=128 html-gallows/bench/run.sh
#
# Needs wrk (Debian package `wrk`) and curl.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}

cd "$(dirname "$0")/../.."
for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done

cargo build --release --quiet -p game-service -p html-gallows

workdir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$workdir"
}
trap cleanup EXIT

# Waits for `listening on ADDR` in a log file and prints ADDR.
address_in() {
  for _ in $(seq 100); do
    if addr=$(grep -oE 'listening on [^ "]+' "$1" | head -n1 | cut -d' ' -f3) && [ -n "$addr" ]; then
      echo "$addr"; return 0
    fi
    sleep 0.1
  done
  echo "bench: no 'listening on' in $1:" >&2; cat "$1" >&2; return 1
}

target/release/game-service --listen 127.0.0.1:0 2>"$workdir/game-service.log" &
pids+=($!)
game_service=$(address_in "$workdir/game-service.log")

key="benchmark cookie key, long enough to sign sessions"
target/release/html-gallows --listen 127.0.0.1:0 --game-service "http://$game_service" \
  --cookie-key "$key" 2>"$workdir/html-gallows.log" &
pids+=($!)
gallows="http://$(address_in "$workdir/html-gallows.log")"
# A replica with the same cookie key, so the same session plays there too.
target/release/html-gallows --listen 127.0.0.1:0 --game-service "http://$game_service" \
  --cookie-key "$key" --tally-cache-games 0 2>"$workdir/uncached.log" &
pids+=($!)
uncached="http://$(address_in "$workdir/uncached.log")"

# A live game, made the way a browser makes one: welcome page, New Game, a guess.
jar="$workdir/cookies"
token=$(curl -sf -c "$jar" "$gallows/hangman" | grep -oE 'name="csrf_token" value="[^"]+"' | head -n1 | cut -d'"' -f4)
curl -sf -b "$jar" -c "$jar" -o /dev/null -d "csrf_token=$token" "$gallows/hangman"
curl -sf -b "$jar" -c "$jar" -o /dev/null -d "csrf_token=$token&guess=e" "$gallows/hangman/current/guess"
cookie="gallows_session=$(awk '$6 == "gallows_session" { print $7 }' "$jar")"
for server in "$gallows" "$uncached"; do
  page=$(curl -s -w '\n%{http_code}' -H "Cookie: $cookie" "$server/hangman/current")
  [ "${page##*$'\n'}" = 200 ] || { echo "bench: $server/hangman/current answered ${page##*$'\n'}, not 200" >&2; exit 1; }
  grep -q '<span id="used">e</span>' <<<"$page" || { echo "bench: $server shows the wrong game" >&2; exit 1; }
done

# Runs wrk and prints "REQ_PER_SEC P99", refusing runs with failed requests.
measure() {
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "bench: wrk saw errors:" >&2; echo "$out" >&2; exit 1
  fi
  echo "$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out") $(awk '$1 == "99%" { print $2 }' <<<"$out")"
}

echo "wrk: $THREADS threads, $CONNECTIONS connections, $DURATION per endpoint, $(nproc) cores"
read -r page_rps page_p99 < <(measure -H "Cookie: $cookie" "$gallows/hangman/current")
read -r uncached_rps uncached_p99 < <(measure -H "Cookie: $cookie" "$uncached/hangman/current")
read -r static_rps static_p99 < <(measure "$gallows/healthz")
read -r css_rps css_p99 < <(measure "$gallows/static/gallows.css")

printf '%-40s %12s %10s\n' endpoint 'req/s' p99
printf '%-40s %12.0f %10s\n' 'GET /hangman/current (game)' "$page_rps" "$page_p99"
printf '%-40s %12.0f %10s\n' 'GET /hangman/current (cache off)' "$uncached_rps" "$uncached_p99"
printf '%-40s %12.0f %10s\n' 'GET /healthz (static)' "$static_rps" "$static_p99"
printf '%-40s %12.0f %10s\n' 'GET /static/gallows.css' "$css_rps" "$css_p99"
awk -v page="$page_rps" -v uncached="$uncached_rps" -v ceiling="$static_rps" 'BEGIN {
  printf "game page / static handler: %.0f %%  (target >= 50 %%)\n", 100 * page / ceiling
  printf "with the cache off:         %.0f %%\n", 100 * uncached / ceiling
}'

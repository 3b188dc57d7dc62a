// Starts the real binaries (built beforehand with `cargo build --workspace`) and a redis-server
// of the test's own, and connects the official npm `phoenix` client to them over the `ws` package.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Presence, Socket } from 'phoenix';
import WebSocket from 'ws';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../../../..');
const targetDir = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target');

/** Every game plays this word (a one-word dictionary), so tests are deterministic. */
export const WORD = 'hello';

export function binary(name) {
  const path = join(targetDir, 'debug', name);
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: run \`cargo build --workspace\` at the repository root first`);
  }
  return path;
}

/** Spawns a binary and resolves once it logs `listening on ADDR`. */
export function start(name, args) {
  const child = spawn(binary(name), args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not log "listening on":\n${log}`)), 15000);
    child.stderr.on('data', (chunk) => {
      log += chunk;
      const match = /listening on (\S+)/.exec(log);
      if (match && !child.addr) {
        clearTimeout(timer);
        child.addr = match[1];
        resolvePromise(child);
      }
    });
    child.on('exit', (code) => reject(new Error(`${name} exited with ${code}:\n${log}`)));
  });
}

/** Stops a child (SIGTERM: gracefully; SIGKILL: `kill -9`) and resolves once it has exited. */
export function stop(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    child.once('exit', () => res());
    child.kill(signal);
  });
}

/** The flags of a game service whose games all play WORD, from a dictionary file of its own. */
export function gameServiceFlags() {
  const dir = mkdtempSync(join(tmpdir(), 'ws-gateway-js-'));
  const dictionary = join(dir, 'words.txt');
  writeFileSync(dictionary, `${WORD}\n`);
  return ['--dictionary', dictionary];
}

/** A game service on a free port: its games in memory, or in Redis with `store` (a `redis://` URL). */
export function startGameService({ store, args = [] } = {}) {
  const storeFlags = store ? ['--store', store] : [];
  return start('game-service', ['--listen', '127.0.0.1:0', ...gameServiceFlags(), ...storeFlags, ...args]);
}

export function startGateway(gameService, { listen = '127.0.0.1:0', args = [] } = {}) {
  return start('ws-gateway', ['--listen', listen, '--game-service', `http://${gameService.addr}`, ...args]);
}

/** A free loopback port (the kernel's pick, released again). */
export function freePort() {
  return new Promise((res, rej) => {
    const server = createServer();
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => res(port));
    });
  });
}

/** Whether something answers PING with PONG on `port`. */
function pong(port) {
  return new Promise((res) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let reply = '';
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) {
        socket.destroy();
        res(reply.startsWith('+PONG'));
      }
    });
    socket.once('error', () => res(false));
  });
}

/**
 * Debian's redis-server of the test's own: a free port, no persistence, a directory of its
 * own (removed once it exits). `url` is what `--store` takes; stop it with `stop`.
 */
export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'ws-gateway-js-redis-'));
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  child.port = port;
  child.url = `redis://127.0.0.1:${port}`;
  await until(() => pong(port), `redis-server answers on ${port}`);
  return child;
}

/** A phoenix Socket on the gateway, with the `ws` package as its transport. */
export function connect(gateway, opts = {}) {
  const socket = new Socket(`ws://${gateway.addr}/socket`, {
    transport: WebSocket,
    reconnectAfterMs: () => 100,
    rejoinAfterMs: () => 100,
    ...opts,
  });
  socket.connect();
  return socket;
}

/** Resolves with the response of a push (or join) once it gets `ok`, rejects on anything else. */
export function ok(push) {
  return new Promise((res, rej) => {
    push.receive('ok', res).receive('error', (e) => rej(new Error(`error: ${JSON.stringify(e)}`))).receive('timeout', () => rej(new Error('timeout')));
  });
}

/** Resolves with the error response of a push. */
export function error(push) {
  return new Promise((res, rej) => {
    push.receive('error', res).receive('ok', (r) => rej(new Error(`unexpected ok: ${JSON.stringify(r)}`))).receive('timeout', () => rej(new Error('timeout')));
  });
}

/** Resolves with the next `event` on `channel` whose payload satisfies `pred`. */
export function next(channel, event, pred = () => true) {
  return new Promise((res) => {
    const ref = channel.on(event, (payload) => {
      if (pred(payload)) {
        channel.off(event, ref);
        res(payload);
      }
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until `cond()` holds: a guard against hangs, or, with a shorter `timeoutMs`, a bound
 * the behaviour promises (a member leaves within its lease).
 */
export async function until(cond, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`never happened within ${timeoutMs} ms: ${what}`);
    await sleep(50);
  }
}

/**
 * A player (`player`, the Presence key) in the room `topic` through `gateway`, not joined yet:
 * its socket, channel (joined with `params`, a value or a function) and the npm Presence of the
 * room, with the names it saw join (a first connection) and leave (a last one).
 */
export function roomMember(gateway, player, topic, params = {}) {
  const socket = connect(gateway, { params: { player } });
  const channel = socket.channel(topic, params);
  const presence = new Presence(channel);
  const member = { socket, channel, presence, joined: [], left: [] };
  presence.onJoin((key, current) => current || member.joined.push(key));
  presence.onLeave((key, current) => current.metas.length || member.left.push(key));
  /** The names in the room, sorted, as one string: 'alice,bob'. */
  member.names = () => presence.list((key) => key).sort().join();
  return member;
}

// Starts the real binaries (built beforehand with `cargo build --workspace`) and a redis-server
// of the test's own, and connects the official npm `phoenix` client to them over the `ws`
// package or over the client's own LongPoll (Node's global fetch); an HTTP proxy of the test's
// own can stand in front of gateways.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LongPoll, Presence, Socket } from 'phoenix';
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

/** Spawns a binary (`env` added to this process's) and resolves once it logs `listening on ADDR`. */
export function start(name, args, env = {}) {
  const child = spawn(binary(name), args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
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

/**
 * Stops a child (SIGTERM: gracefully; SIGKILL: `kill -9`) and resolves once it has exited; a
 * child that never started (`undefined`: its start failed) is nothing to stop.
 */
export function stop(child, signal = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
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

export function startGateway(gameService, { listen = '127.0.0.1:0', args = [], env = {} } = {}) {
  return start('ws-gateway', ['--listen', listen, '--game-service', `http://${gameService.addr}`, ...args], env);
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

/** A phoenix Socket on the gateway (or proxy) at `target.addr` over the client's own LongPoll. */
export function connectLongPoll(target, opts = {}) {
  return connect(target, { transport: LongPoll, ...opts });
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

/**
 * The steps that undo what the test `t` started, run once it ends however it ends, last first
 * (a socket closed before the gateway it uses stops, a gateway before its game service):
 * `const undo = cleanups(t); undo(() => stop(gateway));`.
 */
export function cleanups(t) {
  const steps = [];
  t.after(async () => {
    for (const step of steps.reverse()) await step();
  });
  return (step) => steps.push(step);
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
 * its socket (`socketOpts` added to connect's, e.g. `{ transport: LongPoll }`), channel (joined
 * with `params`, a value or a function) and the npm Presence of the room, with the names it saw
 * join (a first connection) and leave (a last one).
 */
export function roomMember(gateway, player, topic, params = {}, socketOpts = {}) {
  const socket = connect(gateway, { params: { player }, ...socketOpts });
  const channel = socket.channel(topic, params);
  const presence = new Presence(channel);
  const member = { socket, channel, presence, joined: [], left: [] };
  presence.onJoin((key, current) => current || member.joined.push(key));
  presence.onLeave((key, current) => current.metas.length || member.left.push(key));
  /** The names in the room, sorted, as one string: 'alice,bob'. */
  member.names = () => presence.list((key) => key).sort().join();
  return member;
}

/** The value of the metric `name` (a gauge or counter without labels) on the gateway's /metrics. */
export async function metric(gateway, name) {
  const text = await (await fetch(`http://${gateway.addr}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`no ${name} in /metrics:\n${text}`);
  return Number(match[1]);
}

/**
 * Long-poll requests made by hand with fetch at `{mount}/longpoll` on `addr`, as the npm client
 * makes them (`vsn=2.0.0`, the token in the query unless it is null; `headers` added). Each
 * resolves with the answer's HTTP status, content type, text and body (the JSON, or null when
 * the text is not JSON).
 */
export function rawLongPoll(addr, mount = '/socket') {
  const url = (query) => `http://${addr}${mount}/longpoll?${new URLSearchParams({ vsn: '2.0.0', ...query })}`;
  const answer = async (response) => {
    const text = await response.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // a plain-text answer: body stays null
    }
    return { http: response.status, type: response.headers.get('content-type') ?? '', text, body };
  };
  const withToken = (token) => (token === null ? {} : { token });
  return {
    /** A GET without a token: a new session, `{status: 410, token}`. */
    open: (query = {}, headers = {}) => fetch(url(query), { headers }).then(answer),
    poll: (token, headers = {}) => fetch(url(withToken(token)), { headers }).then(answer),
    /** A POST of `lines` (an array, one encoded message each, or the whole body as a string). */
    post: (token, lines, headers = {}) =>
      fetch(url(withToken(token)), {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', ...headers },
        body: Array.isArray(lines) ? lines.join('\n') : lines,
      }).then(answer),
  };
}

/**
 * An HTTP proxy on a free loopback port in front of `targets` (things with an `addr`: gateways).
 * Each request goes to the next target in turn (round-robin) and is logged in `requests`
 * (`{method, target, body}`, the body of a POST as sent); `served[i]` counts target i's.
 * `hold()` cuts the clients off: every request after it waits, unsent, until `release()`
 * sends them on; requests already sent complete as usual. A client that gives up a request
 * gives it up at the target too.
 */
export function startProxy(targets) {
  const served = targets.map(() => 0);
  const requests = [];
  let turn = 0;
  let held = null;
  const forward = (req, res) => {
    const target = turn;
    turn = (turn + 1) % targets.length;
    served[target]++;
    const entry = { method: req.method, target, body: '' };
    requests.push(entry);
    const [host, port] = targets[target].addr.split(':');
    const upstream = httpRequest({ host, port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => res.writableFinished || upstream.destroy());
    req.on('data', (chunk) => (entry.body += chunk));
    req.pipe(upstream);
  };
  const server = createHttpServer((req, res) => (held ? held.push(() => forward(req, res)) : forward(req, res)));
  return new Promise((res, rej) => {
    server.once('error', rej);
    server.listen(0, '127.0.0.1', () => {
      res({
        addr: `127.0.0.1:${server.address().port}`,
        served,
        requests,
        hold: () => {
          held ??= [];
        },
        /** Sends the held requests on; resolves with how many there were. */
        release: () => {
          const waiting = held ?? [];
          held = null;
          waiting.forEach((send) => send());
          return waiting.length;
        },
        /** How many requests wait while held. */
        holding: () => held?.length ?? 0,
        close: () => {
          server.closeAllConnections();
          return new Promise((done) => server.close(() => done()));
        },
      });
    });
  });
}

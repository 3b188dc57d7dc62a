// Starts the real binaries (built beforehand with `cargo build --workspace`) and connects the
// official npm `phoenix` client to them over the `ws` package.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Socket } from 'phoenix';
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

export function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((res) => {
    child.once('exit', () => res());
    child.kill('SIGTERM');
  });
}

export async function startGameService() {
  const dir = mkdtempSync(join(tmpdir(), 'ws-gateway-js-'));
  const dictionary = join(dir, 'words.txt');
  writeFileSync(dictionary, `${WORD}\n`);
  return start('game-service', ['--listen', '127.0.0.1:0', '--dictionary', dictionary]);
}

export function startGateway(gameService, { listen = '127.0.0.1:0', args = [] } = {}) {
  return start('ws-gateway', ['--listen', listen, '--game-service', `http://${gameService.addr}`, ...args]);
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

/** Waits until `cond()` holds (a guard against hangs, not a timing assertion). */
export async function until(cond, what) {
  for (let i = 0; i < 200; i++) {
    if (await cond()) return;
    await sleep(50);
  }
  throw new Error(`never happened: ${what}`);
}

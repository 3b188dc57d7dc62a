// What an idle long-poll session costs the gateway (issue 15), and an idle WebSocket beside it.
//
// Not a test: a measurement against a gateway started beforehand (a release build; the
// commands are in docs/benchmarks.md, "ws-gateway memory per idle long-poll session"). It opens
// `--clients` clients and leaves them idle, then prints the gateway's VmRSS before and after,
// the growth per client and the gateway's open connections per client:
//
// - `--transport longpoll`: the official npm client's `LongPoll` (over Node's fetch), joined
//   to `hangman:game` (a game of its own); a session then always has one poll waiting at the
//   gateway, as a browser's would;
// - `websocket`: the same client over the `ws` package, joined the same way;
// - `keepalive`: a plain HTTP/1.1 connection that made one GET /healthz and stays open: what
//   the connection a poll waits on costs by itself (the gateway closes it after its
//   `--header-read-timeout`, so measure it without `--hold`).
//
// Given several gateways (replicas sharing `--longpoll-secret`, each with
// `--longpoll-advertise`), the clients reach them through a proxy of the script's own that
// sends each request to the next gateway in turn, as a Kubernetes Service or Gateway
// balances requests: a poll that lands on a replica not holding its session is forwarded.
// The figures are then summed over the gateways.
//
//   node bench/longpoll-memory.mjs --gateway 127.0.0.1:4100[,127.0.0.1:4101] \
//       --gateway-pid PID[,PID] [--transport longpoll|websocket|keepalive] [--clients 2000] \
//       [--concurrency 100] [--mount /socket] [--hold SECONDS]   # RSS again after SECONDS more
//
// Measure each transport on a gateway of its own: memory freed by one run is reused by the
// next, which would then look cheaper than it is.
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { LongPoll, Socket } from 'phoenix';
import WebSocket from 'ws';
import { ok, sleep, startProxy } from '../lib/harness.mjs';

const { values: args } = parseArgs({
  options: {
    gateway: { type: 'string' },
    'gateway-pid': { type: 'string' },
    transport: { type: 'string', default: 'longpoll' },
    clients: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '100' },
    mount: { type: 'string', default: '/socket' },
    hold: { type: 'string', default: '0' },
  },
});
if (!args.gateway || !args['gateway-pid']) {
  console.error('usage: longpoll-memory.mjs --gateway HOST:PORT --gateway-pid PID [--transport T] [--clients N]');
  process.exit(2);
}
const clients = Number(args.clients);
const gateways = args.gateway.split(',');
const pids = args['gateway-pid'].split(',');
if (pids.length !== gateways.length) throw new Error('one --gateway-pid per --gateway');
const target = gateways.length > 1 ? (await startProxy(gateways.map((addr) => ({ addr })))).addr : gateways[0];

/** The gateways' resident sets, in KiB. */
function rssKiB() {
  const status = (pid) => readFileSync(`/proc/${pid}/status`, 'utf8');
  return pids.map((pid) => Number(/^VmRSS:\s+(\d+) kB/m.exec(status(pid))[1]));
}

/** The gateways' open file descriptors: one per TCP connection, and a few of their own. */
function openFiles() {
  return pids.map((pid) => readdirSync(`/proc/${pid}/fd`).length);
}

const sum = (values) => values.reduce((a, b) => a + b, 0);

/** A phoenix socket over `transport`, joined to `hangman:game`; nothing is sent after. */
async function joined(transport) {
  const socket = new Socket(`ws://${target}${args.mount}`, {
    transport,
    reconnectAfterMs: () => 1000,
    rejoinAfterMs: () => 1000,
  });
  socket.connect();
  await ok(socket.channel('hangman:game', {}).join());
  return { open: () => socket.isConnected(), close: () => socket.disconnect() };
}

/** An HTTP/1.1 connection that got its answer to GET /healthz and stays open. */
async function keptAlive() {
  const [host, port] = target.split(':');
  const tcp = connect(Number(port), host);
  await new Promise((res, rej) => tcp.once('connect', res).once('error', rej));
  tcp.write(`GET /healthz HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  await new Promise((res) => tcp.once('data', res));
  return { open: () => !tcp.destroyed, close: () => tcp.destroy() };
}

const kinds = {
  longpoll: () => joined(LongPoll),
  websocket: () => joined(WebSocket),
  keepalive: keptAlive,
};
const open = kinds[args.transport];
if (!open) throw new Error(`--transport is one of ${Object.keys(kinds)}, not ${args.transport}`);

/** `n` clients, `concurrency` of them being opened at a time. */
async function openMany(n, concurrency) {
  const opened = [];
  let next = 0;
  const opener = async () => {
    while (next < n) {
      const i = next++;
      opened[i] = await open();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, opener));
  return opened;
}

// Warm-up: the first clients grow the gateway's pools and its game-service client; they are
// not what an idle client costs.
(await openMany(20, 20)).forEach((client) => client.close());
await sleep(2000);

const [before, filesBefore] = [rssKiB(), openFiles()];
const started = Date.now();
const idle = await openMany(clients, Number(args.concurrency));
console.log(`${args.transport}: ${idle.length} clients opened in ${((Date.now() - started) / 1000).toFixed(1)} s`);
// Every long-poll client back to a waiting poll (it polls again as soon as an answer arrives).
await sleep(3000);
const [after, filesAfter] = [rssKiB(), openFiles()];
console.log(`${args.transport}: ${idle.filter((client) => client.open()).length} of ${idle.length} still open`);
const perClient = (kib) => ((sum(kib) - sum(before)) / clients).toFixed(1);
console.log(
  `gateway RSS: ${before.join(' + ')} KiB before, ${after.join(' + ')} KiB with ${clients} idle ` +
    `${args.transport} clients = ${perClient(after)} KiB per client`,
);
const connections = filesAfter.map((files, i) => ((files - filesBefore[i]) / clients).toFixed(2));
console.log(`gateway connections: ${connections.join(' + ')} per client`);
if (Number(args.hold) > 0) {
  await sleep(Number(args.hold) * 1000);
  const held = rssKiB();
  console.log(`after ${args.hold} s more: ${held.join(' + ')} KiB = ${perClient(held)} KiB per client`);
}
idle.forEach((client) => client.close());
await sleep(500);
process.exit(0);

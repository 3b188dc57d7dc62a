// Bad input from real clients gets an answer: a push whose payload is not JSON serde can read
// (the official `phoenix` client) is answered on its own ref, and frames that break the
// WebSocket protocol (sent with the `ws` client) close the socket with RFC 6455's code, which
// the client must actually receive: not 1006, a connection gone without a close frame.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { connect, error, ok, startGameService, startGateway, stop } from '../lib/harness.mjs';

describe('bad input gets an answer', () => {
  let games;
  let gateway;
  const sockets = [];

  before(async () => {
    games = await startGameService();
    // --close-timeout: how long the server discards what a misbehaving client still sends;
    // the `ws` client ends its side once it has sent it, well within this.
    gateway = await startGateway(games, { args: ['--max-frame-size', '1024', '--close-timeout', '20s'] });
  });

  after(async () => {
    sockets.forEach((s) => s.disconnect());
    await stop(gateway);
    await stop(games);
  });

  test('a guess with a lone surrogate gets an error reply to its own push', async () => {
    const socket = connect(gateway);
    sockets.push(socket);
    const channel = socket.channel('hangman:game', {});
    await ok(channel.join());
    // JSON.stringify writes a lone surrogate as the escape "\ud83d", which serde_json refuses.
    const reply = await error(channel.push('make_move', { guess: '\ud83d' }));
    assert.equal(reply.reason, 'invalid_payload');
    assert.match(reply.detail, /payload is not JSON/);
    // The game is untouched and the channel still answers.
    assert.deepEqual((await ok(channel.push('tally', {}))).used, []);
  });

  /** Opens a bare `ws` socket, runs `misbehave` on it and resolves with the close code it sees. */
  async function closeCodeAfter(misbehave) {
    const ws = new WebSocket(`ws://${gateway.addr}/socket/websocket?vsn=2.0.0`);
    ws.on('error', () => {}); // a reset would show as close code 1006 below
    await new Promise((res, rej) => {
      ws.once('open', res);
      ws.once('close', (code) => rej(new Error(`closed with ${code} before opening`)));
    });
    const closed = new Promise((res) => ws.once('close', (code) => res(code)));
    misbehave(ws);
    return closed;
  }

  test('a message over --max-frame-size closes the socket with 1009', async () => {
    // 8 MiB against a limit of 1 KiB: the client is still sending when the server closes, and
    // a server that dropped the connection then, with the rest unread, made the kernel reset
    // it: the client mostly saw 1006. Five sockets, so that a lucky one proves nothing.
    const big = `[null,"1","phoenix","heartbeat","${'x'.repeat(8 << 20)}"]`;
    for (let i = 0; i < 5; i++) {
      assert.equal(await closeCodeAfter((ws) => ws.send(big)), 1009, `socket ${i + 1} of 5`);
    }
  });

  test('a text message that is not UTF-8 closes the socket with 1007', async () => {
    const code = await closeCodeAfter((ws) => ws.send(Buffer.from([0x22, 0xff, 0xfe, 0x22]), { binary: false }));
    assert.equal(code, 1007);
  });

  test('a frame with a reserved opcode closes the socket with 1002', async () => {
    // `ws` refuses to build such a frame, so its bytes go straight to the connection
    // (FIN + opcode 3, masked, empty), followed by a well-formed message still in flight.
    const code = await closeCodeAfter((ws) => {
      ws._socket.write(Buffer.from([0x83, 0x80, 1, 2, 3, 4]));
      ws.send('[null,"2","phoenix","heartbeat",{}]');
    });
    assert.equal(code, 1002);
  });

  test('a 126-byte ping closes the socket with 1002', async () => {
    // `ws` refuses pings over 125 bytes: FIN + ping, masked, 16-bit length 126, zero mask.
    const header = Buffer.from([0x89, 0xfe, 0x00, 0x7e, 0, 0, 0, 0]);
    const code = await closeCodeAfter((ws) => ws._socket.write(Buffer.concat([header, Buffer.alloc(126, 0x70)])));
    assert.equal(code, 1002);
  });
});

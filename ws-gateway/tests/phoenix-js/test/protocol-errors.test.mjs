// Bad input from real clients gets an answer: a push whose payload is not JSON serde can read
// (the official `phoenix` client) is answered on its own ref.
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
    gateway = await startGateway(games, { args: ['--max-frame-size', '1024'] });
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
});

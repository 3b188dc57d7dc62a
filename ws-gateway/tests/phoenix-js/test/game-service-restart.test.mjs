// Issue 11: with games in Redis, the official `phoenix` client keeps playing the same game
// through the gateway while the game service behind it is killed (SIGKILL) and restarted on
// the same port. A push during the outage is answered `unavailable`, and the client sends it
// again.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, gameServiceFlags, ok, sleep, start, startGateway, startRedis, stop, until, WORD } from '../lib/harness.mjs';

/** A push sent again while the gateway answers `unavailable`; the reasons seen on the way. */
async function pushUntilOk(channel, event, payload, refusals) {
  for (;;) {
    const reply = await new Promise((res, rej) => {
      channel
        .push(event, payload)
        .receive('ok', (response) => res({ response }))
        .receive('error', (error) => res({ error }))
        .receive('timeout', () => rej(new Error(`${event} timed out`)));
    });
    if (reply.response) return reply.response;
    refusals.push(reply.error.reason);
    assert.equal(reply.error.reason, 'unavailable', `only the outage refuses: ${JSON.stringify(reply.error)}`);
    await sleep(100);
  }
}

describe('game service restart', () => {
  test('the client keeps playing the same game while the game service is killed and restarted', async () => {
    const redis = await startRedis();
    const flags = ['--store', redis.url, ...gameServiceFlags()];
    let games = await start('game-service', ['--listen', '127.0.0.1:0', ...flags]);
    const gateway = await startGateway(games);
    const socket = connect(gateway);
    try {
      let joins = 0;
      let gameId = null;
      const channel = socket.channel('hangman:game', () => (gameId ? { game_id: gameId } : {}));
      channel.join().receive('ok', (reply) => {
        gameId ??= reply.game_id;
        joins++;
      });
      await until(() => joins === 1, 'joined');
      const id = gameId;
      await ok(channel.push('make_move', { guess: 'h' }));
      const before = await ok(channel.push('make_move', { guess: 'z' }));
      assert.deepEqual(before.used, ['h', 'z']);
      assert.equal(before.turns_left, 6);

      // SIGKILL: no graceful anything. The game lives on in Redis.
      const addr = games.addr;
      await stop(games, 'SIGKILL');
      const refusals = [];
      const during = pushUntilOk(channel, 'make_move', { guess: 'e' }, refusals);
      await until(() => refusals.length > 0, 'a push during the outage is refused');
      games = await start('game-service', ['--listen', addr, ...flags]);

      const afterE = await during;
      assert.deepEqual(afterE.used, ['e', 'h', 'z'], 'the tally goes on from where it was');
      assert.equal(afterE.turns_left, 6);
      await pushUntilOk(channel, 'make_move', { guess: 'l' }, refusals);
      const won = await pushUntilOk(channel, 'make_move', { guess: 'o' }, refusals);
      assert.equal(won.game_state, 'won');
      assert.equal(won.word, WORD);
      assert.deepEqual(won.used, ['e', 'h', 'l', 'o', 'z']);
      assert.ok(refusals.every((reason) => reason === 'unavailable'));

      // The same game, by its id: another client resuming it sees where it ended.
      const other = connect(gateway);
      try {
        const resumed = await ok(other.channel('hangman:game', { game_id: id }).join());
        assert.equal(resumed.game_id, id);
        assert.equal(resumed.tally.game_state, 'won');
        assert.deepEqual(resumed.tally.used, won.used);
      } finally {
        other.disconnect();
      }
      assert.equal(gameId, id);
    } finally {
      socket.disconnect();
      await stop(gateway);
      await stop(games, 'SIGKILL');
      await stop(redis, 'SIGKILL');
    }
  });
});

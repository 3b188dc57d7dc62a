// The official npm `phoenix` client (1.8.x) against a real ws-gateway and a real game service.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LongPoll, Presence } from 'phoenix';
import { WORD, connect, error, next, ok, sleep, startGameService, startGateway, stop, until } from '../lib/harness.mjs';

describe('ws-gateway with the official phoenix client', () => {
  let games;
  let gateway;
  const sockets = [];
  const open = (opts) => {
    const socket = connect(gateway, opts);
    sockets.push(socket);
    return socket;
  };

  before(async () => {
    games = await startGameService();
    gateway = await startGateway(games, { args: ['--idle-timeout', '1s'] });
  });

  after(async () => {
    sockets.forEach((s) => s.disconnect());
    await stop(gateway);
    await stop(games);
  });

  test('joins hangman:game, pushes a move and receives the reply and the tally push', async () => {
    const channel = open().channel('hangman:game', {});
    const joined = await ok(channel.join());
    assert.equal(typeof joined.game_id, 'string');
    assert.deepEqual(joined.tally, { game_state: 'initializing', turns_left: 7, letters: ['_', '_', '_', '_', '_'], used: [], version: 0 });

    const pushed = next(channel, 'tally');
    const tally = await ok(channel.push('make_move', { guess: 'l' }));
    assert.deepEqual(tally, { game_state: 'good_guess', turns_left: 7, letters: ['_', '_', 'l', 'l', '_'], used: ['l'], version: 1 });
    assert.deepEqual(await pushed, tally);

    // The original course client: a bare letter, and it only listens for `tally`.
    const bare = next(channel, 'tally');
    channel.push('make_move', 'z');
    assert.equal((await bare).game_state, 'bad_guess');
  });

  test('bad guesses and unknown events get error replies with a reason', async () => {
    const channel = open().channel('hangman:game', {});
    await ok(channel.join());
    assert.deepEqual(await error(channel.push('make_move', { guess: 'ab' })), { reason: 'invalid_guess' });
    assert.deepEqual(await error(channel.push('make_move', { letter: 'a' })), { reason: 'invalid_payload' });
    assert.deepEqual(await error(channel.push('fly', {})), { reason: 'unknown_event' });
    assert.deepEqual((await ok(channel.push('tally', {}))).used, []);
  });

  test('heartbeats at a short interval keep the socket up past the idle timeout', async () => {
    let closes = 0;
    const socket = open({ heartbeatIntervalMs: 200 });
    socket.onClose(() => closes++);
    const channel = socket.channel('hangman:game', {});
    await ok(channel.join());
    await sleep(2500); // more than twice the gateway's 1 s idle timeout
    assert.equal(closes, 0);
    assert.equal(socket.isConnected(), true);
    assert.equal((await ok(channel.push('tally', {}))).game_state, 'initializing');
  });

  test('plays a whole game to the end and sees the word', async () => {
    const channel = open().channel('hangman:game', {});
    await ok(channel.join());
    let tally;
    for (const letter of new Set(WORD)) tally = await ok(channel.push('make_move', { guess: letter }));
    assert.equal(tally.game_state, 'won');
    assert.equal(tally.word, WORD);
    const fresh = await ok(channel.push('new_game', {}));
    assert.equal(fresh.tally.game_state, 'initializing');
    assert.equal(fresh.tally.word, undefined);
  });

  test('resumes a game after a disconnect by rejoining with its game_id', async () => {
    const first = open();
    const channel = first.channel('hangman:game', {});
    const { game_id } = await ok(channel.join());
    await ok(channel.push('make_move', { guess: 'e' }));
    first.disconnect();

    const again = open().channel('hangman:game', { game_id });
    const resumed = await ok(again.join());
    assert.equal(resumed.game_id, game_id);
    assert.deepEqual(resumed.tally.used, ['e']);
    assert.deepEqual((await ok(again.push('make_move', { guess: 'h' }))).used, ['e', 'h']);
  });

  test('an authToken whose base64 has a "+" connects and joins, over a WebSocket and over long-poll', async () => {
    // The client sends `btoa(token)` without padding: standard base64, "+" and "/" included
    // (its encoding here is YT5iPmN+ZA; a "/" the ws package itself refuses in a subprotocol).
    const authToken = 'a>b>c~d';
    for (const transport of [undefined, LongPoll]) {
      const name = transport?.name ?? 'WebSocket';
      const socket = open({ authToken, ...(transport && { transport }) });
      // A refused socket makes the client wait for it to rejoin, so a refusal fails at once.
      const refused = new Promise((_, rej) => socket.onError(() => rej(new Error(`${name}: the socket was refused`))));
      const joined = await Promise.race([ok(socket.channel('hangman:game', {}).join()), refused]);
      assert.equal(typeof joined.game_id, 'string', name);
      socket.disconnect();
    }
  });

  test('unknown game ids are refused', async () => {
    const channel = open().channel('game:no-such-game', {});
    assert.deepEqual(await error(channel.join()), { reason: 'not_found' });
    channel.leave();
  });

  test('shared rooms broadcast every move and list members with Presence', async () => {
    const owner = open().channel('hangman:game', {});
    const { game_id } = await ok(owner.join());
    const topic = `game:${game_id}`;

    const alice = open({ params: { player: 'alice' } }).channel(topic, {});
    const alicePresence = new Presence(alice);
    await ok(alice.join());
    const bob = open({ params: { player: 'bob' } }).channel(topic, {});
    const bobPresence = new Presence(bob);
    await ok(bob.join());

    const names = (presence) => presence.list((key) => key).sort();
    await until(() => names(alicePresence).join() === 'alice,bob', 'alice sees alice and bob');
    await until(() => names(bobPresence).join() === 'alice,bob', 'bob sees alice and bob');
    const [meta] = alicePresence.list((_key, { metas }) => metas[0]);
    assert.equal(typeof meta.phx_ref, 'string');

    const aliceSees = next(alice, 'tally', (t) => t.used.includes('o'));
    const reply = await ok(bob.push('make_move', { guess: 'o' }));
    assert.deepEqual(await aliceSees, reply);

    // A move on the private channel of the same game reaches the room too.
    const bobSees = next(bob, 'tally', (t) => t.used.includes('h'));
    await ok(owner.push('make_move', { guess: 'h' }));
    assert.deepEqual((await bobSees).used, ['h', 'o']);

    await ok(bob.leave());
    await until(() => names(alicePresence).join() === 'alice', 'bob left the room');
  });
});

describe('gateway restart', () => {
  test('the client reconnects, rejoins with its game id and continues the same game', async () => {
    const games = await startGameService();
    let gateway = await startGateway(games);
    const socket = connect(gateway);
    let gameId = null;
    // Join params may be a function: every rejoin sends the current game id.
    const channel = socket.channel('hangman:game', () => (gameId ? { game_id: gameId } : {}));
    let joins = 0;
    channel.join().receive('ok', (reply) => {
      gameId = reply.game_id;
      joins++;
    });
    await until(() => joins === 1, 'first join');
    await ok(channel.push('make_move', { guess: 'h' }));

    let closeCode = null;
    socket.onClose((event) => {
      closeCode ??= event.code;
    });
    const addr = gateway.addr;
    await stop(gateway);
    await until(() => closeCode !== null, 'the socket sees the close');
    assert.notEqual(closeCode, 1000, 'a 1000 close would stop the client from reconnecting');

    gateway = await startGateway(games, { listen: addr });
    try {
      await until(() => joins === 2, 'the channel rejoined after the restart');
      const tally = await ok(channel.push('make_move', { guess: 'e' }));
      assert.deepEqual(tally.used, ['e', 'h'], 'the same game goes on');
    } finally {
      socket.disconnect();
      await stop(gateway);
      await stop(games);
    }
  });
});

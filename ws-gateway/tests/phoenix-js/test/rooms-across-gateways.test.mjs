// Issue 13: a shared room `game:<id>` spans every gateway replica. Players who joined it through
// different gateways see each other in the npm client's Presence and each other's moves, on one
// game service (memory store) and on two game-service replicas sharing one Redis. A socket that
// drops and comes back rejoins with the last version it saw and is given every change it missed,
// in order; the players of a gateway killed with SIGKILL leave everyone's list once their lease
// runs out.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, next, ok, roomMember, startGameService, startGateway, startRedis, stop, until } from '../lib/harness.mjs';

/** Short leases, so a killed gateway's members leave within seconds (the default is 15 s). */
const LEASE_MS = 2000;
const PRESENCE = ['--presence-lease', `${LEASE_MS}ms`, '--presence-sweep-interval', '200ms'];

/** How two gateways reach the games: each starts the game services, the gateways come after. */
const topologies = {
  'two gateways on one game service (memory store)': async () => {
    const games = await startGameService({ args: PRESENCE });
    return { games: [games, games], stores: [] };
  },
  'two gateways on two game-service replicas sharing one Redis': async () => {
    const redis = await startRedis();
    const games = [];
    for (let i = 0; i < 2; i++) games.push(await startGameService({ store: redis.url, args: PRESENCE }));
    return { games, stores: [redis] };
  },
};

for (const [name, startGames] of Object.entries(topologies)) {
  describe(name, () => {
    let system;
    const gateways = [];
    const sockets = [];
    /** A player in `topic` through gateway `i` (0 or 1), closed after the suite. */
    const member = (i, player, topic, params) => {
      const m = roomMember(gateways[i], player, topic, params);
      sockets.push(m.socket);
      return m;
    };
    /** A new game's room, the game made through gateway 0. */
    const newRoom = async () => {
      const owner = connect(gateways[0]);
      sockets.push(owner);
      const { game_id } = await ok(owner.channel('hangman:game', {}).join());
      return `game:${game_id}`;
    };

    before(async () => {
      system = await startGames();
      for (const games of system.games) gateways.push(await startGateway(games));
    });

    after(async () => {
      sockets.forEach((s) => s.disconnect());
      for (const gateway of gateways) await stop(gateway);
      for (const games of new Set(system?.games ?? [])) await stop(games);
      for (const store of system?.stores ?? []) await stop(store);
    });

    test('players on different gateways see each other in Presence and see each other move', async () => {
      const topic = await newRoom();
      const alice = member(0, 'alice', topic);
      await ok(alice.channel.join());
      await until(() => alice.names() === 'alice', 'alice sees herself');
      const bob = member(1, 'bob', topic);
      await ok(bob.channel.join());
      await until(() => alice.names() === 'alice,bob', 'alice sees bob, who is on the other gateway');
      await until(() => bob.names() === 'alice,bob', 'bob sees alice, who is on the other gateway');
      assert.deepEqual(alice.joined, ['alice', 'bob']);

      // Each meta is one connection, its phx_ref the member key the gateway made for it.
      const [meta] = bob.presence.list((key, { metas }) => (key === 'alice' ? metas : [])).flat();
      assert.equal(typeof meta.phx_ref, 'string');
      assert.match(meta.online_at, /^\d+$/);

      const aliceSees = next(alice.channel, 'tally', (t) => t.used.includes('e'));
      const bobMoved = await ok(bob.channel.push('make_move', { guess: 'e' }));
      assert.deepEqual(await aliceSees, bobMoved);
      assert.equal(bobMoved.version, 1);
      const bobSees = next(bob.channel, 'tally', (t) => t.used.includes('l'));
      const aliceMoved = await ok(alice.channel.push('make_move', { guess: 'l' }));
      assert.deepEqual(await bobSees, aliceMoved);
      assert.deepEqual(aliceMoved.used, ['e', 'l']);
      assert.equal(aliceMoved.version, 2);

      // Bob in a second tab, through the other gateway: one name, two connections.
      const bobAgain = member(0, 'bob', topic);
      await ok(bobAgain.channel.join());
      const metasOf = (m, key) => m.presence.list((k, { metas }) => (k === key ? metas.length : 0)).reduce((a, b) => a + b, 0);
      await until(() => metasOf(alice, 'bob') === 2, "alice sees bob's two connections");
      assert.equal(alice.names(), 'alice,bob');
      await ok(bob.channel.leave());
      await until(() => metasOf(alice, 'bob') === 1, "bob's first tab left");
      assert.equal(alice.names(), 'alice,bob', 'bob is still in through his second tab');
      assert.deepEqual(alice.left, []);
      await ok(bobAgain.channel.leave());
      await until(() => alice.names() === 'alice', 'bob left with his last tab');
      assert.deepEqual(alice.left, ['bob']);
    });

    test('a socket that dropped rejoins with the last version it saw and gets every change it missed, in order', async () => {
      const topic = await newRoom();
      // Every tally alice is shown, in order: pushes, and on each join reply the missed ones then the tally.
      const seen = [];
      const replies = [];
      const lastSeen = () => seen.at(-1)?.version;
      const alice = member(0, 'alice', topic, () => (lastSeen() === undefined ? {} : { version: lastSeen() }));
      alice.channel.on('tally', (tally) => seen.push(tally));
      alice.channel.join().receive('ok', (reply) => {
        replies.push(reply);
        seen.push(...(reply.missed ?? []), reply.tally);
      });
      await until(() => replies.length === 1, 'alice joined');
      assert.deepEqual(Object.keys(replies[0]).sort(), ['game_id', 'tally'], 'a join without a version is answered as before');
      const bob = member(1, 'bob', topic);
      await ok(bob.channel.join());
      await ok(bob.channel.push('make_move', { guess: 'h' }));
      await until(() => lastSeen() === 1, 'alice saw the first move');
      await until(() => bob.names() === 'alice,bob', 'bob sees alice');

      alice.socket.disconnect();
      await until(() => bob.names() === 'bob', 'alice left when her socket closed');
      const missed = [];
      for (const guess of ['e', 'z', 'l']) missed.push(await ok(bob.channel.push('make_move', { guess })));
      assert.deepEqual(missed.map((t) => t.version), [2, 3, 4]);
      assert.equal(lastSeen(), 1, 'alice saw none of them');

      alice.socket.connect();
      await until(() => replies.length === 2, 'alice rejoined after the reconnect');
      assert.deepEqual(replies[1], { game_id: topic.slice('game:'.length), tally: missed[2], recovered: true, missed: missed.slice(0, 2) });
      await until(() => bob.names() === 'alice,bob', 'alice is back in the room');

      await ok(bob.channel.push('make_move', { guess: 'o' }));
      await until(() => lastSeen() === 5, 'pushes go on after the rejoin');
      assert.deepEqual(seen.map((t) => t.version), [0, 1, 2, 3, 4, 5], 'every version, once, in order');
      assert.equal(seen.at(-1).game_state, 'won');
    });

    test('a join with a version the game never had is answered recovered: false with the tally now', async () => {
      const topic = await newRoom();
      const alice = member(0, 'alice', topic, { version: 7 });
      const reply = await ok(alice.channel.join());
      assert.deepEqual(reply, {
        game_id: topic.slice('game:'.length),
        tally: { game_state: 'initializing', turns_left: 7, letters: ['_', '_', '_', '_', '_'], used: [], version: 0 },
        recovered: false,
      });
    });

    test("the players of a gateway killed with SIGKILL leave everyone's list within their lease", async () => {
      const topic = await newRoom();
      const doomed = await startGateway(system.games[0]);
      gateways.push(doomed); // stopped after the suite should the test fail before the kill
      const alice = roomMember(doomed, 'alice', topic);
      sockets.push(alice.socket);
      await ok(alice.channel.join());
      const bob = member(1, 'bob', topic);
      await ok(bob.channel.join());
      await until(() => bob.names() === 'alice,bob', 'bob sees alice');

      await stop(doomed, 'SIGKILL');
      // Nothing told the game service: alice leaves when her lease runs out, not at the 15 s default.
      await until(() => bob.names() === 'bob', 'alice left bob\'s list', LEASE_MS + 3000);
      assert.deepEqual(bob.left, ['alice']);
    });
  });
}

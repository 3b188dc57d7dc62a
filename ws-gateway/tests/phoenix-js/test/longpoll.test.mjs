// Issue 15: the official npm `phoenix` client over its own LongPoll transport (Node's fetch),
// unmodified, against real gateways at `{mount}/longpoll`: whole games, rooms and presence
// shared with a WebSocket player, polls keeping a client past the idle timeout, the client's
// own fallback where WebSockets are refused, a session that expired while the client was cut
// off (the client is told 410, opens a new session and rejoins with the version it had), a
// gateway restart, two gateways behind a round-robin proxy (a request forwarded to the
// gateway that holds its session, or 410 where none is advertised), and bad input made by
// hand with fetch, none of which touches another session.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { LongPoll } from 'phoenix';
import WebSocket from 'ws';
import {
  WORD,
  cleanups,
  connect,
  connectLongPoll,
  error,
  freePort,
  metric,
  next,
  ok,
  rawLongPoll,
  roomMember,
  sleep,
  startGameService,
  startGateway,
  startProxy,
  stop,
  until,
} from '../lib/harness.mjs';

const SECRET = 'long-poll tokens of the tests, 32+ bytes';
const OTHER_SECRET = 'another key, as another deployment has it';
const SESSIONS = 'ws_gateway_longpoll_sessions';
const NEW_TALLY = { game_state: 'initializing', turns_left: 7, letters: ['_', '_', '_', '_', '_'], used: [], version: 0 };
const overLongPoll = { transport: LongPoll };

/**
 * A game service and a gateway (`gatewayOpts` as startGateway takes them) of the test `t`'s
 * own, and `undo` (see cleanups), which stops them once the test ends.
 */
async function gameAndGateway(t, gatewayOpts = {}) {
  const undo = cleanups(t);
  const games = await startGameService();
  undo(() => stop(games));
  const gateway = await startGateway(games, gatewayOpts);
  undo(() => stop(gateway));
  return { undo, games, gateway };
}

describe('the official client over long-poll', () => {
  let games;
  let gateway;
  let proxy;
  const sockets = [];
  const track = (socket) => {
    sockets.push(socket);
    return socket;
  };

  before(async () => {
    games = await startGameService();
    gateway = await startGateway(games, { env: { WS_GATEWAY_LONGPOLL_SECRET: SECRET } });
    // One target: the proxy only logs what the client sends.
    proxy = await startProxy([gateway]);
  });

  after(async () => {
    sockets.forEach((s) => s.disconnect());
    await proxy?.close();
    await stop(gateway);
    await stop(games);
  });

  test('plays whole games: replies and tally pushes come in polls, refused guesses get their error', async () => {
    const channel = track(connectLongPoll(proxy)).channel('hangman:game', {});
    const joined = await ok(channel.join());
    assert.equal(typeof joined.game_id, 'string');
    assert.deepEqual(joined.tally, NEW_TALLY);

    const pushed = next(channel, 'tally');
    const tally = await ok(channel.push('make_move', { guess: 'l' }));
    assert.deepEqual(tally, { game_state: 'good_guess', turns_left: 7, letters: ['_', '_', 'l', 'l', '_'], used: ['l'], version: 1 });
    assert.deepEqual(await pushed, tally);

    assert.deepEqual(await error(channel.push('make_move', { guess: 'ab' })), { reason: 'invalid_guess' });
    assert.deepEqual(await error(channel.push('make_move', { letter: 'a' })), { reason: 'invalid_payload' });
    assert.deepEqual(await error(channel.push('fly', {})), { reason: 'unknown_event' });

    // Pushes made in one tick leave in one POST, a line each, and are answered each on its ref.
    const posts = proxy.requests.filter((r) => r.method === 'POST').length;
    const [h, e, o] = await Promise.all(['h', 'e', 'o'].map((guess) => ok(channel.push('make_move', { guess }))));
    const batch = proxy.requests.filter((r) => r.method === 'POST').slice(posts);
    assert.equal(batch.length, 1, 'one POST');
    assert.deepEqual(batch[0].body.split('\n').map((line) => JSON.parse(line)[4].guess), ['h', 'e', 'o']);
    assert.deepEqual([h, e, o].map((t) => t.version), [2, 3, 4]);
    assert.equal(o.game_state, 'won');
    assert.equal(o.word, WORD);

    const fresh = await ok(channel.push('new_game', {}));
    assert.deepEqual(fresh.tally, NEW_TALLY);
    let last;
    for (const guess of 'abcdfgi') last = await ok(channel.push('make_move', { guess }));
    assert.equal(last.game_state, 'lost');
    assert.equal(last.turns_left, 0);
    assert.equal(last.word, WORD);
  });

  test('two long-poll players and a WebSocket player in one room list each other in Presence and see each other move', async () => {
    const owner = track(connectLongPoll(gateway)).channel('hangman:game', {});
    const { game_id } = await ok(owner.join());
    const topic = `game:${game_id}`;
    const alice = roomMember(proxy, 'alice', topic, {}, overLongPoll);
    const bob = roomMember(gateway, 'bob', topic, {}, overLongPoll);
    const carol = roomMember(gateway, 'carol', topic); // WebSocket
    const members = [alice, bob, carol];
    members.forEach((m) => track(m.socket));
    for (const m of members) await ok(m.channel.join());
    for (const m of members) await until(() => m.names() === 'alice,bob,carol', `${m.names()} lists all three`);

    const othersSee = (mover, guess) =>
      Promise.all(members.filter((m) => m !== mover).map((m) => next(m.channel, 'tally', (t) => t.used.includes(guess))));
    for (const [mover, guess] of [[alice, 'h'], [carol, 'e'], [bob, 'l']]) {
      const seen = othersSee(mover, guess);
      const reply = await ok(mover.channel.push('make_move', { guess }));
      assert.deepEqual(await seen, [reply, reply], `the others see ${guess}`);
    }
    // A move on the owner's private channel reaches the room too.
    const seen = othersSee(null, 'o');
    await ok(owner.push('make_move', { guess: 'o' }));
    assert.deepEqual((await seen).map((t) => t.game_state), ['won', 'won', 'won']);

    await ok(bob.channel.leave());
    await until(() => alice.names() === 'alice,carol' && carol.names() === 'alice,carol', 'bob left the room');
    assert.deepEqual(alice.left, ['bob']);
    assert.deepEqual(carol.left, ['bob']);
  });
});

describe('the token in a header', () => {
  test('a token in x-phoenix-longpoll-token (npm phoenix 1.9) works as one in the query', async (t) => {
    const { gateway } = await gameAndGateway(t);
    const raw = rawLongPoll(gateway.addr);
    const { token } = (await raw.open()).body;
    const inHeader = { 'x-phoenix-longpoll-token': token };
    assert.deepEqual((await raw.post(null, [heartbeat('1')], inHeader)).body, { status: 200 });
    const polled = (await raw.poll(null, inHeader)).body;
    assert.equal(polled.status, 200);
    assert.deepEqual(polled.messages.map((m) => JSON.parse(m)[1]), ['1']);
  });
});

describe('polls as activity', () => {
  test('a client that only polls stays connected past the idle timeout (the npm client sends no heartbeat over long-poll)', async (t) => {
    // Each poll begun is activity; a poll waiting is not, so the window must be the shorter.
    const { undo, gateway } = await gameAndGateway(t, { args: ['--idle-timeout', '1s', '--longpoll-window', '400ms'] });
    const socket = connectLongPoll(gateway);
    undo(() => socket.disconnect());
    let closes = 0;
    socket.onClose(() => closes++);
    const channel = socket.channel('hangman:game', {});
    await ok(channel.join());
    await sleep(2500); // more than twice the 1 s idle timeout
    assert.equal(closes, 0);
    assert.equal((await ok(channel.push('make_move', { guess: 'h' }))).used.join(), 'h');
  });
});

describe('a gateway serving long-poll only', () => {
  test("the client's own fallback (longPollFallbackMs) plays over long-poll, and the next socket goes straight to it", async (t) => {
    const { undo, gateway } = await gameAndGateway(t, { env: { WS_GATEWAY_TRANSPORTS: 'longpoll' } });
    const refused = await fetch(`http://${gateway.addr}/socket/websocket?vsn=2.0.0`);
    assert.equal(refused.status, 404);
    assert.match(refused.headers.get('content-type'), /^text\/plain/);
    await refused.text();

    // The browser's sessionStorage, where the client remembers the fallback.
    const stored = new Map();
    const sessionStorage = { getItem: (k) => stored.get(k) ?? null, setItem: (k, v) => stored.set(k, v) };
    const transports = [];
    let webSocketAttempts = 0;
    class CountedWebSocket extends WebSocket {
      constructor(...args) {
        super(...args);
        webSocketAttempts++;
      }
    }
    const open = () => {
      const socket = connect(gateway, { transport: CountedWebSocket, longPollFallbackMs: 500, sessionStorage });
      undo(() => socket.disconnect());
      socket.onOpen(() => transports.push(socket.transport === LongPoll ? 'longpoll' : 'websocket'));
      return socket;
    };
    const first = open().channel('hangman:game', {});
    await ok(first.join());
    let tally;
    for (const guess of new Set(WORD)) tally = await ok(first.push('make_move', { guess }));
    assert.equal(tally.game_state, 'won');
    assert.deepEqual(stored, new Map([['phx:fallback:LongPoll', 'true']]));

    const second = open().channel('hangman:game', {});
    await ok(second.join());
    assert.deepEqual(transports, ['longpoll', 'longpoll'], 'each socket opened over long-poll');
    assert.equal(webSocketAttempts, 1, 'only the first socket tried a WebSocket');
  });
});

describe('a session that expired while its client was cut off', () => {
  test('the client is answered 410, opens a new session and rejoins with its version, getting what it missed', async (t) => {
    // A short poll window, so that the poll under way when the proxy cuts alice off ends soon.
    const { undo, gateway } = await gameAndGateway(t, {
      env: { WS_GATEWAY_LONGPOLL_SECRET: SECRET, WS_GATEWAY_LONGPOLL_EXPIRY: '1s', WS_GATEWAY_LONGPOLL_WINDOW: '1s' },
    });
    const proxy = await startProxy([gateway]);
    undo(() => proxy.close());

    const owner = connect(gateway);
    undo(() => owner.disconnect());
    const { game_id } = await ok(owner.channel('hangman:game', {}).join());
    const topic = `game:${game_id}`;
    // Every tally alice is shown, in order: pushes, and on each join reply the missed ones then the tally.
    const seen = [];
    const replies = [];
    const lastSeen = () => seen.at(-1)?.version;
    const alice = roomMember(proxy, 'alice', topic, () => (lastSeen() === undefined ? {} : { version: lastSeen() }), overLongPoll);
    undo(() => alice.socket.disconnect());
    const closes = [];
    alice.socket.onClose((event) => closes.push(event.code));
    alice.channel.on('tally', (tally) => seen.push(tally));
    alice.channel.join().receive('ok', (reply) => {
      replies.push(reply);
      seen.push(...(reply.missed ?? []), reply.tally);
    });
    const bob = roomMember(gateway, 'bob', topic); // WebSocket, straight to the gateway
    undo(() => bob.socket.disconnect());
    await ok(bob.channel.join());
    await until(() => replies.length === 1 && bob.names() === 'alice,bob', 'alice and bob in the room');
    await ok(bob.channel.push('make_move', { guess: 'h' }));
    await until(() => lastSeen() === 1, 'alice saw the first move');

    proxy.hold();
    await until(() => proxy.holding() > 0, "alice's next poll waits at the proxy, with her token");
    await until(() => bob.names() === 'bob', 'her session expired: she left the room');
    assert.equal(await metric(gateway, SESSIONS), 0, 'no long-poll session is left');
    const missed = [];
    for (const guess of ['e', 'z', 'l']) missed.push(await ok(bob.channel.push('make_move', { guess })));
    assert.deepEqual(closes, [], 'the client noticed nothing yet');

    proxy.release();
    await until(() => replies.length === 2, 'alice rejoined on a new session');
    assert.equal(closes[0], 3410, 'her transport was answered 410 (session_gone) for the old token');
    assert.deepEqual(replies[1], { game_id, tally: missed[2], recovered: true, missed: missed.slice(0, 2) });
    await until(() => bob.names() === 'alice,bob', 'alice is back in the room');
    // Her old token's poll opened a session too, as Phoenix does; never polled, it ends.
    await until(async () => (await metric(gateway, SESSIONS)) === 1, 'one session left: hers', 5000);

    await ok(bob.channel.push('make_move', { guess: 'o' }));
    await until(() => lastSeen() === 5, 'pushes go on after the rejoin');
    assert.deepEqual(seen.map((tally) => tally.version), [0, 1, 2, 3, 4, 5], 'every version, once, in order');
    assert.equal(seen.at(-1).game_state, 'won');
  });
});

describe('gateway restart', () => {
  test('the client reconnects on its own, rejoins with its game id and the game goes on', async (t) => {
    // No secret: a random key per process, so no token survives the restart.
    const { undo, games, gateway: first } = await gameAndGateway(t);
    let gateway = first;
    undo(() => stop(gateway)); // the one started again
    const socket = connectLongPoll(gateway);
    undo(() => socket.disconnect());
    let gameId = null;
    let joins = 0;
    const channel = socket.channel('hangman:game', () => (gameId ? { game_id: gameId } : {}));
    channel.join().receive('ok', (reply) => {
      gameId = reply.game_id;
      joins++;
    });
    await until(() => joins === 1, 'first join');
    await ok(channel.push('make_move', { guess: 'h' }));
    const { token } = (await rawLongPoll(gateway.addr).open()).body;

    let closes = 0;
    socket.onClose(() => closes++);
    const addr = gateway.addr;
    await stop(gateway);
    await until(() => closes > 0, 'the client sees its transport fail');
    gateway = await startGateway(games, { listen: addr });

    await until(() => joins === 2, 'the channel rejoined after the restart');
    const tally = await ok(channel.push('make_move', { guess: 'e' }));
    assert.deepEqual(tally.used, ['e', 'h'], 'the same game goes on');
    const stale = await rawLongPoll(gateway.addr).poll(token);
    assert.equal(stale.http, 200);
    assert.equal(stale.body.status, 410, 'a token of the gateway before the restart names no session');
    assert.equal(typeof stale.body.token, 'string', 'a poll of it opens a new session, as in Phoenix');
    assert.notEqual(stale.body.token, token);
  });
});

/**
 * Two gateways on `games` with the same secret, on ports chosen here, stopped when the test
 * ends; `advertise`: each advertises its own address.
 */
async function twoGateways(undo, games, { advertise }) {
  const gateways = [];
  for (let i = 0; i < 2; i++) {
    const listen = `127.0.0.1:${await freePort()}`;
    const env = { WS_GATEWAY_LONGPOLL_SECRET: SECRET, ...(advertise ? { WS_GATEWAY_LONGPOLL_ADVERTISE: listen } : {}) };
    const gateway = await startGateway(games, { listen, env });
    undo(() => stop(gateway));
    gateways.push(gateway);
  }
  return gateways;
}

/** A heartbeat on ref `ref`, as the V2 serializer encodes it. */
const heartbeat = (ref) => JSON.stringify([null, ref, 'phoenix', 'heartbeat', {}]);

describe('two gateways with one secret behind a round-robin proxy', () => {
  let games;
  before(async () => {
    games = await startGameService();
  });
  after(() => stop(games));

  test('each advertising its address: a request on the other gateway is forwarded, and a game with presence plays', async (t) => {
    const undo = cleanups(t);
    const gateways = await twoGateways(undo, games, { advertise: true });
    const [a, b] = gateways.map((g) => rawLongPoll(g.addr));
    const { token } = (await a.open()).body;
    assert.deepEqual((await b.post(token, [heartbeat('1')])).body, { status: 200 }, 'a POST through the other gateway');
    const polled = (await b.poll(token)).body;
    assert.equal(polled.status, 200, 'a poll through the other gateway');
    assert.deepEqual(polled.messages.map((m) => JSON.parse(m)), [[null, '1', 'phoenix', 'phx_reply', { status: 'ok', response: {} }]]);

    const proxy = await startProxy(gateways);
    undo(() => proxy.close());
    const owner = connectLongPoll(proxy);
    undo(() => owner.disconnect());
    const game = owner.channel('hangman:game', {});
    const { game_id } = await ok(game.join());
    const topic = `game:${game_id}`;
    const alice = roomMember(proxy, 'alice', topic, {}, overLongPoll);
    const bob = roomMember(proxy, 'bob', topic, {}, overLongPoll);
    for (const m of [alice, bob]) {
      undo(() => m.socket.disconnect());
      await ok(m.channel.join());
    }
    for (const m of [alice, bob]) await until(() => m.names() === 'alice,bob', `${m.names()} lists both`);

    let last;
    for (const [mover, watcher, guess] of [[alice, bob, 'h'], [bob, alice, 'z'], [alice, bob, 'e'], [bob, alice, 'l'], [alice, bob, 'o']]) {
      const seen = next(watcher.channel, 'tally', (tally) => tally.used.includes(guess));
      last = await ok(mover.channel.push('make_move', { guess }));
      assert.deepEqual(await seen, last);
    }
    assert.equal(last.game_state, 'won');
    assert.equal((await ok(game.push('tally', {}))).game_state, 'won', "the owner's channel sees the same game");
    await ok(bob.channel.leave());
    await until(() => alice.names() === 'alice', 'bob left');
    assert.ok(proxy.served.every((n) => n >= 10), `both gateways served requests: ${proxy.served}`);

    // The holder gone (killed): the other gateway cannot forward, and answers 410.
    await stop(gateways[0], 'SIGKILL');
    const orphaned = await b.poll(token);
    assert.equal(orphaned.http, 200);
    assert.equal(orphaned.body.status, 410);
  });

  test('without an advertised address, a request for a session the other gateway holds is answered 410', async (t) => {
    const [a, b] = (await twoGateways(cleanups(t), games, { advertise: false })).map((g) => rawLongPoll(g.addr));
    const { token } = (await a.open()).body;
    for (const answer of [await b.poll(token), await b.post(token, [heartbeat('1')])]) {
      assert.equal(answer.http, 200);
      assert.equal(answer.body.status, 410);
    }
    // The session itself lives on where it is.
    assert.deepEqual((await a.post(token, [heartbeat('2')])).body, { status: 200 });
    assert.deepEqual((await a.poll(token)).body.messages.map((m) => JSON.parse(m)[1]), ['2']);
  });
});

describe('bad long-poll requests', () => {
  const MAX_BODY = 16 * 1024;
  const MAX_MESSAGES = 100;
  const MAX_SESSIONS = 4;
  let games;
  let gateway;
  let otherKey;
  let raw;
  let live;
  let liveSocket;
  const moves = ['q', 'h', 'w', 'e', 'r', 'l', 't', 'o'][Symbol.iterator]();

  /** The live session, a player of the npm client, still plays: its next move is answered. */
  const livePlays = async () => {
    const guess = moves.next().value;
    assert.ok((await ok(live.push('make_move', { guess }))).used.includes(guess));
  };

  /** Messages polled for `token` until `count` have come, decoded. */
  const collect = async (token, count) => {
    const messages = [];
    while (messages.length < count) {
      const { body } = await raw.poll(token);
      assert.ok([200, 204].includes(body.status), JSON.stringify(body));
      messages.push(...(body.messages ?? []).map((m) => JSON.parse(m)));
    }
    return messages;
  };

  before(async () => {
    games = await startGameService();
    gateway = await startGateway(games, {
      args: ['--max-pushes-per-second', '1000', '--mount', '/socket', '--mount', '/v1/socket'],
      env: {
        WS_GATEWAY_LONGPOLL_SECRET: SECRET,
        WS_GATEWAY_LONGPOLL_EXPIRY: '1s',
        WS_GATEWAY_LONGPOLL_MAX_BODY: String(MAX_BODY),
        WS_GATEWAY_LONGPOLL_MAX_MESSAGES: String(MAX_MESSAGES),
        WS_GATEWAY_LONGPOLL_MAX_SESSIONS: String(MAX_SESSIONS),
      },
    });
    otherKey = await startGateway(games, { env: { WS_GATEWAY_LONGPOLL_SECRET: OTHER_SECRET } });
    raw = rawLongPoll(gateway.addr);
    liveSocket = connectLongPoll(gateway);
    live = liveSocket.channel('hangman:game', {});
    await ok(live.join());
  });

  after(async () => {
    liveSocket?.disconnect();
    await stop(otherKey);
    await stop(gateway);
    await stop(games);
  });

  /** Asserts a POST's answer is HTTP 200 with a body of status 410, a reason, and no token. */
  const gone = (answer, what) => {
    assert.equal(answer.http, 200, what);
    assert.equal(answer.body.status, 410, what);
    assert.equal(typeof answer.body.reason, 'string', what);
    assert.equal(answer.body.token, undefined, `${what}: no new session`);
  };

  /**
   * Asserts a poll's answer is that of a GET that resumed nothing: as in Phoenix, a new
   * session's 410 and its token (the npm client, holding a token, reconnects instead).
   */
  const reopened = (answer, stale, what) => {
    assert.equal(answer.http, 200, what);
    assert.equal(answer.body.status, 410, what);
    assert.equal(typeof answer.body.token, 'string', what);
    assert.notEqual(answer.body.token, stale, what);
  };

  // Sessions opened by a test and never polled end after a second (the expiry): each test
  // starts with the live session alone.
  beforeEach(async () => {
    await until(async () => (await metric(gateway, SESSIONS)) === 1, 'only the live session is left', 5000);
  });

  test('a forged token, one signed with another key or one for another mount names no session', async () => {
    const { token } = (await raw.open()).body;
    const flipped = token.slice(0, -2) + (token.at(-2) === 'A' ? 'B' : 'A') + token.at(-1);
    reopened(await raw.poll('forged'), 'forged', 'a made-up token');
    gone(await raw.post('forged', [heartbeat('1')]), 'a POST with a made-up token');
    reopened(await raw.poll(flipped), flipped, 'a token with one character changed');
    gone(await raw.post(flipped, [heartbeat('1')]), 'a POST with a token with one character changed');
    const v1 = rawLongPoll(gateway.addr, '/v1/socket');
    gone(await v1.post(token, [heartbeat('1')]), 'a POST with a token of /socket at /v1/socket');
    await until(async () => (await metric(gateway, SESSIONS)) === 1, 'the sessions those polls opened end', 5000);
    reopened(await v1.poll(token), token, 'a token of /socket at /v1/socket');
    const foreign = (await rawLongPoll(otherKey.addr).open()).body.token;
    reopened(await raw.poll(foreign), foreign, 'a token signed with another key');
    gone(await raw.post(foreign, [heartbeat('1')]), 'a POST with a token signed with another key');
    await livePlays();
  });

  test('a foreign Origin or an unknown vsn is refused with status 403, as the WebSocket refuses it', async () => {
    const evil = { origin: 'https://evil.example' };
    const refused = [await raw.open({}, evil), await raw.open({ vsn: '3.0.0' })];
    const { token } = (await raw.open()).body;
    refused.push(await raw.poll(token, evil), await raw.post(token, [heartbeat('1')], evil));
    for (const answer of refused) {
      assert.equal(answer.http, 200);
      assert.equal(answer.body.status, 403);
      assert.equal(answer.body.token, undefined);
    }
    await livePlays();
  });

  test('a POST to a session that expired is answered 410', async () => {
    const { token } = (await raw.open()).body;
    assert.equal(await metric(gateway, SESSIONS), 2);
    await until(async () => (await metric(gateway, SESSIONS)) === 1, 'the unpolled session expired', 5000);
    gone(await raw.post(token, [heartbeat('1')]), 'a POST to an expired session');
    reopened(await raw.poll(token), token, 'a poll of an expired session');
    await livePlays();
  });

  test('a bad line is answered as a bad WebSocket frame would be, and the session lives on', async () => {
    const { token } = (await raw.open()).body;
    const lines = [
      JSON.stringify(['1', '1', 'hangman:game', 'phx_join', {}]),
      // A payload serde_json refuses (a lone surrogate), its refs readable: the error goes to ref 2.
      String.raw`["1","2","hangman:game","make_move",{"guess":"\ud83d"}]`,
      '[not json',
      heartbeat('4'),
      // Not JSON: base64 of a V2 binary push (kind 0, the sizes of join ref, ref, topic and
      // event, then they, then the payload's bytes), which the Hangman channels refuse.
      Buffer.from([0, 1, 1, 12, 9, ...Buffer.from('16hangman:gamemake_move'), 1, 2, 3]).toString('base64'),
    ];
    assert.deepEqual((await raw.post(token, lines)).body, { status: 200 });
    const byRef = Object.fromEntries((await collect(token, 5)).map((m) => [m[1], m]));
    assert.equal(byRef['1'][4].status, 'ok', 'the join');
    assert.equal(byRef['2'][3], 'phx_reply');
    assert.equal(byRef['2'][4].status, 'error');
    assert.equal(byRef['2'][4].response.reason, 'invalid_payload');
    assert.equal(byRef['4'][4].status, 'ok', 'the heartbeat after the bad lines');
    assert.equal(byRef.null[4].response.reason, 'invalid_message', 'the line that is not JSON');
    assert.deepEqual(byRef['6'].slice(2), ['hangman:game', 'phx_reply', { status: 'error', response: { reason: 'invalid_payload' } }], 'the binary push');

    assert.deepEqual((await raw.post(token, [JSON.stringify(['1', '5', 'hangman:game', 'make_move', { guess: 'e' }])])).body, { status: 200 });
    const moved = (await collect(token, 2)).find((m) => m[1] === '5');
    assert.deepEqual(moved.slice(2, 4), ['hangman:game', 'phx_reply']);
    assert.deepEqual(moved[4].response.used, ['e']);
    await livePlays();
  });

  test(`a body over --longpoll-max-body (${MAX_BODY} B) is refused with 413`, async () => {
    const { token } = (await raw.open()).body;
    const big = JSON.stringify([null, '1', 'phoenix', 'heartbeat', { pad: 'x'.repeat(MAX_BODY) }]);
    const answer = await raw.post(token, [big]);
    assert.equal(answer.http, 413);
    assert.equal(answer.body.status, 413);
    await livePlays();
  });

  test(`more than --longpoll-max-messages (${MAX_MESSAGES}) lines are refused with 400; that many are taken`, async () => {
    const { token } = (await raw.open()).body;
    const lines = (n) => Array.from({ length: n }, (_, i) => heartbeat(String(i)));
    const answer = await raw.post(token, lines(MAX_MESSAGES + 1));
    assert.equal(answer.http, 400);
    assert.equal(answer.body.status, 400);
    assert.deepEqual((await raw.post(token, lines(MAX_MESSAGES))).body, { status: 200 });
    assert.equal((await collect(token, MAX_MESSAGES)).length, MAX_MESSAGES);
    await livePlays();
  });

  test(`a session over --longpoll-max-sessions (${MAX_SESSIONS}) is refused with 503 in plain text`, async () => {
    for (let i = 1; i < MAX_SESSIONS; i++) assert.equal((await raw.open()).body.status, 410, `session ${i + 1}`);
    const refused = await raw.open();
    assert.equal(refused.http, 503);
    assert.match(refused.type, /^text\/plain/);
    assert.equal(refused.body, null, 'not JSON: the npm client backs off as for a network error');
    assert.equal(await metric(gateway, SESSIONS), MAX_SESSIONS);
    await livePlays();
  });
});

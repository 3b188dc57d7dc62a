// The session's promises about guesses (web/README.md, "Resilience"): a guess
// typed while the channel is not joined waits and is sent after the rejoin, one
// lost in transit is queued again, and one that can no longer be played is
// reported; and about tallies: a room is rejoined with the version shown and
// its missed changes are shown in order, and a tally older than the one shown
// never is; and about the transport: the npm client's own long-poll fallback, and
// the transport it opened named in the state. `phoenix`'s Socket is replaced by a fake whose channels' replies and
// pushes the tests give by hand; its Presence is the real one.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { watch } from 'vue'
import type { Tally } from '../src/game/tally'

const fake = vi.hoisted(() => {
  type Handler = (response?: unknown) => void

  /** A push (or a join) whose replies the test delivers; a rejoin replies to the same join again. */
  class FakePush {
    handlers: Record<string, Handler> = {}
    receive(status: string, handler: Handler) {
      this.handlers[status] = handler
      return this
    }
    reply(status: 'ok' | 'error' | 'timeout', response?: unknown) {
      this.handlers[status]?.(response)
    }
  }

  class FakeChannel {
    events: Record<string, Handler> = {}
    errored: Handler = () => {}
    joinPush = new FakePush()
    pushes: { event: string; payload: unknown; push: FakePush }[] = []
    constructor(
      readonly topic: string,
      readonly params: unknown,
    ) {}
    on(event: string, handler: Handler) {
      this.events[event] = handler
    }
    onError(handler: Handler) {
      this.errored = handler
    }
    join() {
      return this.joinPush
    }
    leave() {}
    push(event: string, payload: unknown) {
      const push = new FakePush()
      this.pushes.push({ event, payload, push })
      return push
    }
    joinRef() {
      return '1'
    }
    /** The params the channel joins with (phoenix calls a closure on every join). */
    joinParams() {
      return typeof this.params === 'function' ? this.params() : this.params
    }
  }

  const channels: FakeChannel[] = []
  const sockets: Socket[] = []
  class Socket {
    /** The transport instance of the open connection, as the npm client's `conn` holds it. */
    conn: unknown = null
    opened: Handler[] = []
    constructor(
      readonly url: string,
      readonly options: Record<string, unknown>,
    ) {
      sockets.push(this)
    }
    /** The npm client opened a connection over the transport instance `conn`. */
    open(conn: object) {
      this.conn = conn
      this.opened.forEach((handler) => handler())
    }
    onOpen(handler: Handler) {
      this.opened.push(handler)
    }
    onClose() {}
    onError() {}
    connect() {}
    disconnect() {}
    channel(topic: string, params: unknown) {
      const channel = new FakeChannel(topic, params)
      channels.push(channel)
      return channel
    }
  }
  return { channels, sockets, Socket }
})
vi.mock('phoenix', async (importOriginal) => ({ ...(await importOriginal<object>()), Socket: fake.Socket }))

const { LongPoll } = await import('phoenix')
const { GAME_ID_KEY, openSession } = await import('../src/game/session')

function memoryStorage(entries: Record<string, string> = {}): Storage {
  const items = new Map(Object.entries(entries))
  return {
    get length() {
      return items.size
    },
    clear: () => items.clear(),
    getItem: (key) => items.get(key) ?? null,
    key: (i) => [...items.keys()][i] ?? null,
    removeItem: (key) => void items.delete(key),
    setItem: (key, value) => void items.set(key, value),
  }
}

const tally = (used: string[], over: Partial<Tally> = {}): Tally => ({
  game_state: used.length ? 'good_guess' : 'initializing',
  turns_left: 7,
  letters: ['_', '_', '_'],
  used,
  ...over,
})

/** The tally at `version`: one more letter used per version. */
const at = (version: number): Tally => tally('abcdefg'.slice(0, version).split(''), { version })
/** Version 3 repeats a letter of version 2: only the version tells which is newer. */
const repeated: Tally = { ...at(2), game_state: 'already_used', version: 3 }

let session: ReturnType<typeof openSession>
function open(storage = memoryStorage({ [GAME_ID_KEY]: 'g1' })) {
  session = openSession({ socketUrl: 'ws://h/socket', player: 'ann', storage })
  const own = fake.channels.find((c) => c.topic === 'hangman:game')!
  return { own, storage }
}
/** A session in the shared room `game:r1` (a share link), and that room's channel. */
function openRoom() {
  session = openSession({ socketUrl: 'ws://h/socket', player: 'ann', storage: memoryStorage(), roomId: 'r1' })
  return fake.channels.find((c) => c.topic === 'game:r1')!
}
/** Every version the session shows from now on, in order. */
function shownVersions() {
  const seen: (number | undefined)[] = []
  watch(() => session.state.tally, (shown) => seen.push(shown?.version), { flush: 'sync' })
  return seen
}
const moves = (channel: { pushes: { event: string; payload: unknown }[] }) =>
  channel.pushes.filter((p) => p.event === 'make_move').map((p) => p.payload)

beforeEach(() => {
  fake.channels.length = 0
  fake.sockets.length = 0
})
afterEach(() => session.close())

describe('game session', () => {
  it('resumes the stored game and sends a guess typed before the join once joined', () => {
    const { own } = open()
    expect(own.joinParams()).toEqual({ game_id: 'g1' })
    session.guess('A')
    expect(session.state.pending).toEqual(['a'])
    expect(moves(own)).toEqual([])

    own.joinPush.reply('ok', { game_id: 'g1', tally: tally([]) })
    expect(moves(own)).toEqual([{ guess: 'a' }])
    expect(session.state.pending).toEqual([])
    own.pushes[0].push.reply('ok', tally(['a']))
    expect(session.state.tally?.used).toEqual(['a'])
    expect(session.state.notice).toBeNull()
  })

  it('queues a guess lost in transit with the connection and sends it after the rejoin', () => {
    const { own } = open()
    own.joinPush.reply('ok', { game_id: 'g1', tally: tally([]) })
    session.guess('b')
    own.errored()
    own.pushes[0].push.reply('timeout')
    expect(session.state.pending).toEqual(['b'])

    own.joinPush.reply('ok', { game_id: 'g1', tally: tally([]) })
    expect(moves(own)).toEqual([{ guess: 'b' }, { guess: 'b' }])
    expect(session.state.notice).toBeNull()
  })

  it('reports an unanswered guess while joined instead of queueing it', () => {
    const { own } = open()
    own.joinPush.reply('ok', { game_id: 'g1', tally: tally([]) })
    session.guess('b')
    own.pushes[0].push.reply('timeout')
    expect(session.state.pending).toEqual([])
    expect(session.state.notice).toBe('The server did not answer your guess “b”; please try again.')
  })

  it('reports a refused guess with the reason in words', () => {
    const { own } = open()
    own.joinPush.reply('ok', { game_id: 'g1', tally: tally([]) })
    session.guess('c')
    own.pushes[0].push.reply('error', { reason: 'rate_limited' })
    expect(session.state.notice).toBe('Your guess “c” was not played: too many moves at once, slow down.')
  })

  it('does not play queued guesses on a game that ended meanwhile, and says so', () => {
    const { own } = open()
    own.joinPush.reply('ok', { game_id: 'g1', tally: tally(['a']) })
    own.errored()
    session.guess('d')
    session.guess('e')
    own.joinPush.reply('ok', { game_id: 'g1', tally: tally(['a', 'x'], { game_state: 'won', word: 'abc' }) })
    expect(moves(own)).toEqual([])
    expect(session.state.notice).toBe('Your guesses d, e were not played: the game ended first.')
  })

  it.each([
    { stored: 'expired', reason: 'not_found', notice: 'Your previous game has expired, so a new one was started.' },
    {
      stored: 'has an id no game can have',
      reason: 'invalid_payload',
      notice: 'Your previous game could not be resumed, so a new one was started.',
    },
  ])('starts a new game when the stored one $stored ($reason), instead of retrying it', ({ reason, notice }) => {
    const { own, storage } = open()
    own.joinPush.reply('error', { reason })
    expect(storage.getItem(GAME_ID_KEY)).toBeNull()
    expect(own.joinParams()).toEqual({})
    expect(session.state.notice).toBe(notice)
  })

  it('does not play guesses meant for an expired game in the new one', () => {
    const { own, storage } = open()
    own.joinPush.reply('error', { reason: 'not_found' })
    session.guess('f')

    own.joinPush.reply('ok', { game_id: 'g2', tally: tally([]) })
    expect(moves(own)).toEqual([])
    expect(storage.getItem(GAME_ID_KEY)).toBe('g2')
    expect(session.state.notice).toBe(
      'Your guesses f were not played: they were meant for a game that no longer exists.',
    )
  })

  it('takes from the watched room only a tally newer than the one shown', () => {
    const { own } = open()
    own.joinPush.reply('ok', { game_id: 'g1', tally: tally(['a']) })
    const room = fake.channels.find((c) => c.topic === 'game:g1')!
    room.events.tally(tally(['a'], { game_state: 'already_used' }))
    expect(session.state.tally?.game_state).toBe('good_guess')
    room.events.tally(tally(['a', 'q'], { game_state: 'bad_guess' }))
    expect(session.state.tally?.used).toEqual(['a', 'q'])
    own.events.tally(tally(['a', 'q'], { game_state: 'already_used' }))
    expect(session.state.tally?.game_state).toBe('already_used')
  })
})

describe('tally versions', () => {
  it('never shows a tally older than the one shown: one delivered late is dropped', () => {
    const room = openRoom()
    room.joinPush.reply('ok', { game_id: 'r1', tally: at(1) })
    room.events.tally(repeated)
    room.events.tally(at(2))
    expect(session.state.tally).toEqual(repeated)

    session.guess('z')
    room.pushes[0].push.reply('ok', at(4))
    room.events.tally(repeated)
    expect(session.state.tally).toEqual(at(4))
  })

  it('drops an older tally from the other channel of the own game, whichever comes first', () => {
    const { own } = open()
    own.joinPush.reply('ok', { game_id: 'g1', tally: at(1) })
    const room = fake.channels.find((c) => c.topic === 'game:g1')!
    room.events.tally(repeated)
    own.events.tally(at(2))
    expect(session.state.tally).toEqual(repeated)
    own.events.tally(at(4))
    room.events.tally(at(4))
    expect(session.state.tally).toEqual(at(4))
  })

  it('joins the room with the version shown, as phoenix evaluates the params at every rejoin', () => {
    const room = openRoom()
    expect(room.joinParams()).toEqual({})
    room.joinPush.reply('ok', { game_id: 'r1', tally: at(1) })
    expect(room.joinParams()).toEqual({ version: 1 })
    room.events.tally(at(3))
    expect(room.joinParams()).toEqual({ version: 3 })
    room.events.tally(at(2))
    expect(room.joinParams()).toEqual({ version: 3 })
  })

  it("the own game's room too, and a new game's room starts from that game's version", () => {
    const { own } = open()
    own.joinPush.reply('ok', { game_id: 'g1', tally: at(2) })
    expect(fake.channels.find((c) => c.topic === 'game:g1')!.joinParams()).toEqual({ version: 2 })
    session.newGame()
    own.pushes[0].push.reply('ok', { game_id: 'g2', tally: at(0) })
    const next = fake.channels.find((c) => c.topic === 'game:g2')!
    expect(next.joinParams()).toEqual({ version: 0 })
    expect(session.state.tally).toEqual(at(0))
  })

  it('shows the changes missed while away in order, then the tally now', () => {
    const room = openRoom()
    room.joinPush.reply('ok', { game_id: 'r1', tally: at(1) })
    const seen = shownVersions()
    room.errored()
    room.joinPush.reply('ok', { game_id: 'r1', tally: at(4), recovered: true, missed: [at(2), at(3)] })
    expect(seen).toEqual([2, 3, 4])
    room.events.tally(at(5))
    expect(seen).toEqual([2, 3, 4, 5])
  })

  it('shows the tally now when the missed changes cannot be recovered, even one of a lower version', () => {
    const room = openRoom()
    room.joinPush.reply('ok', { game_id: 'r1', tally: at(5) })
    room.errored()
    room.joinPush.reply('ok', { game_id: 'r1', tally: at(2), recovered: false })
    expect(session.state.tally).toEqual(at(2))
  })
})

describe('players in the room', () => {
  const meta = (ref: string) => ({ phx_ref: ref, online_at: '1700000000' })

  it('lists each player name once however many tabs it has, until its last tab leaves', () => {
    const room = openRoom()
    room.joinPush.reply('ok', { game_id: 'r1', tally: at(0) })
    room.events.presence_state({ cy: { metas: [meta('1'), meta('2')] }, ann: { metas: [meta('3')] } })
    expect(session.state.players).toEqual(['ann', 'cy'])
    room.events.presence_diff({ joins: { bob: { metas: [meta('4')] } }, leaves: { cy: { metas: [meta('1')] } } })
    expect(session.state.players).toEqual(['ann', 'bob', 'cy'])
    room.events.presence_diff({ joins: {}, leaves: { cy: { metas: [meta('2')] } } })
    expect(session.state.players).toEqual(['ann', 'bob'])
  })
})

describe('transport', () => {
  it("leaves the fallback to the npm client: long-poll after 2.5 s, remembered in the session's storage", () => {
    const { storage } = open()
    expect(fake.sockets[0].options).toMatchObject({ longPollFallbackMs: 2_500, sessionStorage: storage })
  })

  it('names the transport of the connection the npm client opened, after a fallback too', () => {
    const { own } = open()
    const socket = fake.sockets[0]
    expect(session.state.transport).toBeNull()
    socket.open(new EventTarget()) // any transport but LongPoll: the browser's WebSocket
    own.joinPush.reply('ok', { game_id: 'g1', tally: tally([]) })
    expect(session.state).toMatchObject({ connection: 'connected', transport: 'websocket' })

    // LongPoll's constructor starts polling; an instance of its class is all the session looks at.
    socket.open(Object.create(LongPoll.prototype))
    expect(session.state).toMatchObject({ connection: 'connected', transport: 'longpoll' })
  })
})

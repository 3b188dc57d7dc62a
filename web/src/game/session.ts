/**
 * The client module: one game session over the official `phoenix` client.
 *
 * It owns the socket and the channels and exposes a reactive `state` that the
 * components bind to, plus `guess` and `newGame`. Two kinds of session:
 *
 * - own game: `hangman:game`, joined with `{game_id}` when sessionStorage has
 *   one (a reload or a reconnect resumes the game) and `{}` otherwise; it also
 *   watches the shared room `game:<id>` so moves made through the share link
 *   show up live, and so Presence counts the owner in the room;
 * - shared room: `game:<id>` from a share link; moves go through the room.
 *
 * Guesses made while the channel is not joined are queued and sent once the
 * join succeeds again; a guess the server refuses, or one that cannot be
 * played any more, is reported in `state.notice`. Nothing is dropped silently.
 *
 * The socket tries the WebSocket first and falls back to long-poll by itself (the npm client's
 * `longPollFallbackMs`); `state.transport` says which one the open connection uses.
 *
 * Tallies carry the game's version: a room is rejoined with the version shown
 * (its join params are a closure phoenix calls at every join), so the reply
 * brings the changes missed while away, and a tally older than the one shown is
 * never shown.
 */
import { LongPoll, Presence, Socket, type Channel, type Push } from 'phoenix'
import { reactive, readonly } from 'vue'
import { isNewer, isOver, normalizeGuess, type Tally } from './tally'

export type Connection = 'connecting' | 'connected' | 'reconnecting' | 'offline'
export type Transport = 'websocket' | 'longpoll'

export interface SessionState {
  mode: 'own' | 'room'
  gameId: string | null
  tally: Tally | null
  connection: Connection
  /** The transport of the connection that opened last; null until one has. */
  transport: Transport | null
  /** Guesses waiting for the connection to come back, in the order typed. */
  pending: string[]
  /** A message the player must see: a refused or dropped guess, an expired game. */
  notice: string | null
  /** Presence keys (player names) in the shared room, each once however many tabs it has, sorted. */
  players: string[]
  /** The shared room's game does not exist (unknown or expired id). */
  roomMissing: boolean
}

export interface SessionOptions {
  /** Absolute `ws:`/`wss:` URL of the socket mount; `phoenix` appends `/websocket`. */
  socketUrl: string
  /** Presence key, sent as the socket connect param `player`. */
  player: string
  /**
   * Where the own game's id is kept (the page passes `sessionStorage`), and where the npm
   * client remembers that it fell back to long-poll (`phx:fallback:LongPoll`).
   */
  storage: Storage
  /** Join this shared room instead of the player's own game. */
  roomId?: string
  /**
   * How long the WebSocket may take to open before the npm client falls back to long-poll;
   * an error before it opens falls back at once. Default `LONG_POLL_FALLBACK_MS`.
   */
  longPollFallbackMs?: number
}

export interface GameSession {
  readonly state: Readonly<SessionState>
  guess(input: string): void
  newGame(): void
  close(): void
}

export const GAME_ID_KEY = 'hangman.game_id'
/** As in the apps Phoenix generates. */
export const LONG_POLL_FALLBACK_MS = 2_500
/** How long a sent guess may wait for its reply before it counts as lost in transit. */
const MOVE_TIMEOUT_MS = 10_000

const REASONS: Record<string, string> = {
  invalid_guess: 'it is not a letter a–z',
  not_found: 'this game no longer exists',
  unavailable: 'the game service is unavailable',
  rate_limited: 'too many moves at once, slow down',
}

function describe(reason: unknown): string {
  return REASONS[String(reason)] ?? `the server said “${String(reason)}”`
}

/** The socket mount `socket` resolved against the page, as a WebSocket URL. */
export function socketUrlFor(pageUrl: string): string {
  const url = new URL('socket', pageUrl)
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
  url.search = ''
  url.hash = ''
  return url.toString()
}

/** The transport of the socket's current connection, as the npm client holds it. */
function transportOf(socket: Socket): Transport {
  // `conn`, the transport instance, is missing from @types/phoenix.
  const { conn } = socket as unknown as { conn: unknown }
  return conn instanceof LongPoll ? 'longpoll' : 'websocket'
}

/** A join (or `new_game`) reply. */
interface JoinReply {
  game_id: string
  /** The tally now. */
  tally: Tally
  /**
   * Only when a `game:<id>` join gave `{version}`: whether `missed` holds every change since
   * that version. False when the gap cannot be filled: `tally` is then all there is.
   */
  recovered?: boolean
  /** When recovered: the tallies after the version the join gave and before `tally`, oldest first. */
  missed?: Tally[]
}

/** Replies to `make_move`/`tally` carry the tally itself; joins and `new_game` wrap it. */
function tallyOf(response: unknown): Tally {
  const r = response as { tally?: Tally }
  return r.tally ?? (response as Tally)
}

export function openSession(options: SessionOptions): GameSession {
  const { storage, roomId } = options
  const state = reactive<SessionState>({
    mode: roomId ? 'room' : 'own',
    gameId: roomId ?? storage.getItem(GAME_ID_KEY),
    tally: null,
    connection: 'connecting',
    transport: null,
    pending: [],
    notice: null,
    players: [],
    roomMissing: false,
  })

  // What the connection badge is computed from.
  const link = { socketOpen: false, joined: false, failedOnce: false }
  function refreshConnection() {
    if (typeof navigator !== 'undefined' && navigator.onLine === false) {
      state.connection = 'offline'
    } else if (link.socketOpen && link.joined) {
      state.connection = 'connected'
    } else if (link.failedOnce) {
      state.connection = 'reconnecting'
    } else {
      state.connection = 'connecting'
    }
  }
  window.addEventListener('online', refreshConnection)
  window.addEventListener('offline', refreshConnection)

  const socket = new Socket(options.socketUrl, {
    params: { player: options.player },
    longPollFallbackMs: options.longPollFallbackMs ?? LONG_POLL_FALLBACK_MS,
    sessionStorage: storage,
  })
  socket.onOpen(() => {
    link.socketOpen = true
    state.transport = transportOf(socket)
    refreshConnection()
  })
  const lost = () => {
    link.socketOpen = false
    link.joined = false
    link.failedOnce = true
    refreshConnection()
  }
  socket.onClose(lost)
  socket.onError(lost)

  /**
   * Accepts a tally of the game shown unless it is older than the one shown (`isNewer`).
   * The own game hears each move twice (its own channel and the watched room), so without
   * versions the room copy must bring something new (`mustGrow`).
   */
  function applyTally(tally: Tally, mustGrow = false) {
    if (isNewer(tally, state.tally, mustGrow)) state.tally = tally
  }

  /**
   * A rejoin's reply for the game shown: the changes missed while away, in order, then the
   * tally now. A reply that could not recover (`recovered: false`: the server never had the
   * version the join gave, or no longer keeps the changes since) is shown as it is, even if
   * its version is lower: it is the game as the server has it.
   */
  function applyRejoin(reply: JoinReply, mustGrow = false) {
    if (reply.recovered === false) {
      state.tally = reply.tally
      return
    }
    for (const missed of reply.missed ?? []) applyTally(missed, mustGrow)
    applyTally(reply.tally, mustGrow)
  }

  /**
   * The join params of the room `game:<gameId>`, as a closure phoenix calls at every
   * (re)join: the version of the tally shown, once one of this game is, so a rejoin after a
   * reconnect is answered with the changes missed meanwhile.
   */
  function roomParams(gameId: string) {
    return () => {
      const version = state.gameId === gameId ? state.tally?.version : undefined
      return version === undefined ? {} : { version }
    }
  }

  // The shared room an own game watches for other players' moves and Presence.
  let watched: Channel | null = null

  function adoptGame(reply: JoinReply) {
    const { game_id: gameId } = reply
    const changed = gameId !== state.gameId
    state.gameId = gameId
    if (changed) state.tally = reply.tally
    else applyRejoin(reply)
    if (state.mode === 'own') {
      storage.setItem(GAME_ID_KEY, gameId)
      if (changed || !watched) watchRoom(gameId)
    }
    return changed
  }

  // The channel moves go through.
  const primary: Channel = roomId
    ? socket.channel(`game:${roomId}`, roomParams(roomId))
    : socket.channel('hangman:game', () => (state.gameId ? { game_id: state.gameId } : {}))
  primary.on('tally', (tally: Tally) => applyTally(tally))
  primary.onError(() => {
    link.joined = false
    refreshConnection()
  })
  if (state.mode === 'room') trackPresence(primary)

  primary
    .join()
    .receive('ok', (reply: JoinReply) => {
      const switchedGame = adoptGame(reply)
      link.joined = true
      refreshConnection()
      flushPending(switchedGame)
    })
    .receive('error', ({ reason }: { reason: string }) => {
      // A stored id no game can have (edited or corrupted storage) is `invalid_payload`: retrying
      // it would fail forever, so it is dropped like an expired game's.
      if (reason !== 'not_found' && reason !== 'invalid_payload') return // the badge shows it; phoenix retries with backoff
      if (state.mode === 'room') return gameVanished()
      // The stored game is gone: the join params closure now asks for a new one.
      storage.removeItem(GAME_ID_KEY)
      state.gameId = null
      state.notice =
        reason === 'not_found'
          ? 'Your previous game has expired, so a new one was started.'
          : 'Your previous game could not be resumed, so a new one was started.'
    })

  function watchRoom(gameId: string) {
    watched?.leave()
    const room = socket.channel(`game:${gameId}`, roomParams(gameId))
    watched = room
    state.players = []
    room.on('tally', (tally: Tally) => {
      if (watched === room) applyTally(tally, true)
    })
    trackPresence(room)
    room.join().receive('ok', (reply: JoinReply) => {
      if (watched === room) applyRejoin(reply, true)
    })
  }

  function trackPresence(channel: Channel) {
    const presence = new Presence(channel)
    presence.onSync(() => {
      // One key per player name, however many tabs (metas) it has.
      if (channel === primary || channel === watched) state.players = presence.list((key) => key).sort()
    })
  }

  const inFlight = new Set<string>()

  function send(letter: string) {
    inFlight.add(letter)
    const push: Push = primary.push('make_move', { guess: letter }, MOVE_TIMEOUT_MS)
    push
      .receive('ok', (response: unknown) => {
        inFlight.delete(letter)
        applyTally(tallyOf(response))
      })
      .receive('error', ({ reason }: { reason: string }) => {
        inFlight.delete(letter)
        state.notice = `Your guess “${letter}” was not played: ${describe(reason)}.`
        if (reason === 'not_found') gameVanished()
      })
      .receive('timeout', () => {
        inFlight.delete(letter)
        if (link.joined) {
          state.notice = `The server did not answer your guess “${letter}”; please try again.`
        } else {
          // Lost in transit with the connection: a guess is safe to repeat, so queue it again.
          state.pending.push(letter)
        }
      })
  }

  /** The game expired (or the game service lost it) while we were playing it. */
  function gameVanished() {
    if (state.mode === 'room') {
      state.roomMissing = true
      primary.leave()
    } else {
      state.notice += ' A new game was started.'
      startNewGame()
    }
  }

  function flushPending(switchedGame: boolean) {
    const queued = state.pending.splice(0)
    if (queued.length === 0) return
    const tally = state.tally!
    const list = queued.join(', ')
    if (switchedGame) {
      const dropped = `Your guesses ${list} were not played: they were meant for a game that no longer exists.`
      state.notice = state.notice ? `${state.notice} ${dropped}` : dropped
    } else if (isOver(tally)) {
      state.notice = `Your guesses ${list} were not played: the game ended first.`
    } else {
      queued.filter((letter) => !tally.used.includes(letter)).forEach(send)
    }
  }

  function guess(input: string) {
    const letter = normalizeGuess(input)
    if (!letter) {
      state.notice = `“${input}” is not a letter a–z.`
      return
    }
    if (state.tally && isOver(state.tally)) return
    if (state.pending.includes(letter) || inFlight.has(letter)) return
    state.notice = null
    if (link.joined) send(letter)
    else state.pending.push(letter)
  }

  function newGame() {
    if (state.mode !== 'own') return
    if (!link.joined) {
      state.notice = 'Cannot start a new game while reconnecting; try again once connected.'
      return
    }
    state.notice = null
    startNewGame()
  }

  function startNewGame() {
    state.pending.splice(0)
    primary
      .push('new_game', {}, MOVE_TIMEOUT_MS)
      .receive('ok', (reply: JoinReply) => adoptGame(reply))
      .receive('error', ({ reason }: { reason: string }) => {
        state.notice = `No new game was started: ${describe(reason)}.`
      })
      .receive('timeout', () => {
        state.notice = 'The server did not answer; no new game was started.'
      })
  }

  function close() {
    window.removeEventListener('online', refreshConnection)
    window.removeEventListener('offline', refreshConnection)
    socket.disconnect()
  }

  socket.connect()
  return { state: readonly(state) as Readonly<SessionState>, guess, newGame, close }
}

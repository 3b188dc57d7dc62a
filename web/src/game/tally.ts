/**
 * The tally as the gateway sends it (docs/design.md §4) and the pure rules the
 * view derives from it: status wording, which gallows parts show, letter
 * colours. No I/O here, so the component tests can drive every state.
 */

export type GameState =
  | 'initializing'
  | 'good_guess'
  | 'bad_guess'
  | 'already_used'
  | 'won'
  | 'lost'

export interface Tally {
  game_state: GameState
  turns_left: number
  letters: string[]
  used: string[]
  /** Present only once the game is won or lost. */
  word?: string
  /**
   * How many changes the game has had (0 for a new game): of two tallies of one game the
   * higher version is the newer. Absent from an older gateway's tallies.
   */
  version?: number
}

/**
 * Whether `tally` may replace `shown` (both of one game): only a newer one may, so a tally
 * delivered late never hides a later move. With versions, the higher is newer (an equal
 * one is the same tally). Without (an older gateway), `used` only grows within a game, so
 * a longer one is newer, and one as long is taken unless `mustGrow` (a copy heard twice).
 */
export function isNewer(tally: Tally, shown: Tally | null, mustGrow = false): boolean {
  if (!shown) return true
  if (tally.version !== undefined && shown.version !== undefined) return tally.version > shown.version
  const [length, shownLength] = [tally.used.length, shown.used.length]
  return length > shownLength || (!mustGrow && length === shownLength)
}

export const ALPHABET = 'abcdefghijklmnopqrstuvwxyz'.split('')

/** A guess is exactly one letter a–z after trimming and lower-casing (docs/design.md §3). */
export function normalizeGuess(input: string): string | null {
  const guess = input.trim().toLowerCase()
  return /^[a-z]$/.test(guess) ? guess : null
}

export function isOver(tally: Tally): boolean {
  return tally.game_state === 'won' || tally.game_state === 'lost'
}

/** The status banner wording shared by both front ends (docs/design.md §3). */
export function statusMessage(tally: Tally): string {
  switch (tally.game_state) {
    case 'initializing':
      return "Let's play!"
    case 'good_guess':
      return 'Good guess!'
    case 'bad_guess':
      return 'Sorry, that letter is not in the word'
    case 'already_used':
      return 'You already tried that letter'
    case 'won':
      return 'You won!'
    case 'lost':
      return `You lost — the word was ${tally.word ?? '…'}`
  }
}

/**
 * The figure's parts in drawing order, each with the `turns_left` at or below
 * which it shows: rope at 6, head at 5, … the last arm at 0 (docs/design.md §3).
 * html-gallows has its own list (`GALLOWS_PARTS` in html-gallows/src/pages.rs), kept
 * separate on purpose: the front ends share only the contract. Change both.
 */
export const GALLOWS_PARTS = [
  { name: 'rope', showsAt: 6 },
  { name: 'head', showsAt: 5 },
  { name: 'body', showsAt: 4 },
  { name: 'left-leg', showsAt: 3 },
  { name: 'right-leg', showsAt: 2 },
  { name: 'left-arm', showsAt: 1 },
  { name: 'right-arm', showsAt: 0 },
] as const

export type GallowsPart = (typeof GALLOWS_PARTS)[number]['name']

export function partShown(part: GallowsPart, turnsLeft: number): boolean {
  return turnsLeft <= GALLOWS_PARTS.find((p) => p.name === part)!.showsAt
}

/** `right` when a used letter is in the word, `wrong` when not, null when unused. */
export function letterVerdict(tally: Tally, letter: string): 'right' | 'wrong' | null {
  if (!tally.used.includes(letter)) return null
  const inWord = tally.word ? tally.word.includes(letter) : tally.letters.includes(letter)
  return inWord ? 'right' : 'wrong'
}

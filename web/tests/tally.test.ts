import { describe, expect, it } from 'vitest'
import { letterVerdict, normalizeGuess, partShown, statusMessage, type Tally } from '../src/game/tally'
import { socketUrlFor } from '../src/game/session'

const tally = (over: Partial<Tally> = {}): Tally => ({
  game_state: 'initializing',
  turns_left: 7,
  letters: ['_', '_', '_'],
  used: [],
  ...over,
})

describe('tally rules', () => {
  it('words every state as docs/design.md §3 does', () => {
    expect(statusMessage(tally())).toBe("Let's play!")
    expect(statusMessage(tally({ game_state: 'good_guess' }))).toBe('Good guess!')
    expect(statusMessage(tally({ game_state: 'bad_guess' }))).toBe('Sorry, that letter is not in the word')
    expect(statusMessage(tally({ game_state: 'already_used' }))).toBe('You already tried that letter')
    expect(statusMessage(tally({ game_state: 'won' }))).toBe('You won!')
    expect(statusMessage(tally({ game_state: 'lost', word: 'cat' }))).toBe('You lost — the word was cat')
  })

  it('accepts exactly one letter a–z after trimming and lower-casing', () => {
    expect(normalizeGuess(' E ')).toBe('e')
    expect(normalizeGuess('ab')).toBeNull()
    expect(normalizeGuess('1')).toBeNull()
    expect(normalizeGuess('é')).toBeNull()
    expect(normalizeGuess('')).toBeNull()
  })

  it('shows the rope at 6 turns left and the last arm only at 0', () => {
    expect(partShown('rope', 7)).toBe(false)
    expect(partShown('rope', 6)).toBe(true)
    expect(partShown('head', 6)).toBe(false)
    expect(partShown('right-arm', 1)).toBe(false)
    expect(partShown('right-arm', 0)).toBe(true)
  })

  it('colours a used letter right when it is in the word, also once the word is revealed', () => {
    const t = tally({ letters: ['c', '_', '_'], used: ['c', 'x'] })
    expect(letterVerdict(t, 'c')).toBe('right')
    expect(letterVerdict(t, 'x')).toBe('wrong')
    expect(letterVerdict(t, 'a')).toBeNull()
    const lost = tally({ game_state: 'lost', letters: ['c', '_', '_'], used: ['c', 'x'], word: 'cat' })
    expect(letterVerdict(lost, 'c')).toBe('right')
  })

  it('resolves the socket mount relative to the page', () => {
    expect(socketUrlFor('http://127.0.0.1:4000/')).toBe('ws://127.0.0.1:4000/socket')
    expect(socketUrlFor('http://h/ws/v1/?game=abc#x')).toBe('ws://h/ws/v1/socket')
    expect(socketUrlFor('https://h/ws/v2/index.html')).toBe('wss://h/ws/v2/socket')
  })
})

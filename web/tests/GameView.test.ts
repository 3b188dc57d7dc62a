import { mount } from '@vue/test-utils'
import { afterEach, describe, expect, it } from 'vitest'
import GameView from '../src/components/GameView.vue'
import type { Tally } from '../src/game/tally'

const mounted: ReturnType<typeof mount>[] = []
function render(tally: Tally, pending: string[] = []) {
  const wrapper = mount(GameView, { props: { tally, pending }, attachTo: document.body })
  mounted.push(wrapper)
  return wrapper
}
afterEach(() => mounted.splice(0).forEach((w) => w.unmount()))

const fresh: Tally = { game_state: 'initializing', turns_left: 7, letters: ['_', '_', '_', '_'], used: [] }
const midGame: Tally = {
  game_state: 'bad_guess',
  turns_left: 5,
  letters: ['_', 'e', 'e', '_'],
  used: ['e', 'q', 'z'],
}

const shownParts = (w: ReturnType<typeof render>) =>
  w.findAll('.part.shown').map((p) => p.attributes('data-part'))
const letters = (w: ReturnType<typeof render>) => w.findAll('#word .letter').map((l) => l.text())

describe('GameView', () => {
  it('renders a fresh game: banner, blanks, 7 turns, no part drawn, all letters playable', () => {
    const w = render(fresh)
    expect(w.get('#status').text()).toBe("Let's play!")
    expect(w.get('#status').attributes('aria-live')).toBe('polite')
    expect(letters(w)).toEqual(['', '', '', ''])
    expect(w.get('[data-testid=turns-left]').text()).toBe('7 turns left')
    expect(shownParts(w)).toEqual([])
    expect(w.findAll('.part.hidden')).toHaveLength(7)
    const keys = w.findAll('.key')
    expect(keys).toHaveLength(26)
    expect(keys.every((k) => k.attributes('disabled') === undefined)).toBe(true)
    expect(w.find('[data-testid=new-game]').exists()).toBe(false)
  })

  it('renders a game in progress: guessed letters, used keys disabled and coloured', () => {
    const w = render(midGame)
    expect(w.get('#status').text()).toBe('Sorry, that letter is not in the word')
    expect(letters(w)).toEqual(['', 'e', 'e', ''])
    expect(w.get('[data-testid=turns-left]').text()).toBe('5 turns left')
    expect(shownParts(w)).toEqual(['rope', 'head'])

    const e = w.get('[data-testid=key-e]')
    expect(e.attributes('disabled')).toBeDefined()
    expect(e.classes()).toContain('right')
    expect(e.attributes('aria-label')).toBe('E, in the word')
    const q = w.get('[data-testid=key-q]')
    expect(q.classes()).toContain('wrong')
    expect(q.attributes('aria-label')).toBe('Q, not in the word')
    const a = w.get('[data-testid=key-a]')
    expect(a.attributes('disabled')).toBeUndefined()
    expect(a.attributes('aria-label')).toBe('Guess A')
  })

  it.each([
    ['good_guess', 'Good guess!'],
    ['already_used', 'You already tried that letter'],
  ] as const)('words the %s state', (game_state, message) => {
    expect(render({ ...midGame, game_state }).get('#status').text()).toBe(message)
  })

  it('renders a won game: the whole word, every key disabled, New Game offered', async () => {
    const w = render({ game_state: 'won', turns_left: 6, letters: ['b', 'e', 'e', 'f'], used: ['b', 'e', 'f', 'x'], word: 'beef' })
    expect(w.get('#status').text()).toBe('You won!')
    expect(letters(w)).toEqual(['b', 'e', 'e', 'f'])
    expect(w.findAll('.key').every((k) => k.attributes('disabled') !== undefined)).toBe(true)
    await w.get('[data-testid=new-game]').trigger('click')
    expect(w.emitted('new-game')).toHaveLength(1)
  })

  it('moves the focus to New Game when the game ends, so Enter starts the next one', async () => {
    const w = render(midGame)
    await w.setProps({ tally: { ...midGame, game_state: 'won', word: 'beef' } })
    await new Promise((resolve) => setTimeout(resolve))
    expect(document.activeElement).toBe(w.get('[data-testid=new-game]').element)
  })

  it('renders a lost game: the word revealed, the missed letters marked, the whole figure drawn', () => {
    const w = render({
      game_state: 'lost',
      turns_left: 0,
      letters: ['_', 'e', 'e', '_'],
      used: ['a', 'e', 'i', 'o', 'q', 'u', 'x', 'z'],
      word: 'beef',
    })
    expect(w.get('#status').text()).toBe('You lost — the word was beef')
    expect(letters(w)).toEqual(['b', 'e', 'e', 'f'])
    expect(w.findAll('#word .letter.missed').map((l) => l.text())).toEqual(['b', 'f'])
    expect(shownParts(w)).toEqual(['rope', 'head', 'body', 'left-leg', 'right-leg', 'left-arm', 'right-arm'])
    expect(w.get('[data-testid=turns-left]').text()).toBe('0 turns left')
    expect(w.find('[data-testid=new-game]').exists()).toBe(true)
  })

  it.each([
    [7, []],
    [6, ['rope']],
    [4, ['rope', 'head', 'body']],
    [3, ['rope', 'head', 'body', 'left-leg']],
    [1, ['rope', 'head', 'body', 'left-leg', 'right-leg', 'left-arm']],
  ])('draws the gallows parts for %i turns left', (turns_left, parts) => {
    expect(shownParts(render({ ...fresh, game_state: 'bad_guess', turns_left }))).toEqual(parts)
  })

  it('marks a queued guess as waiting and not clickable', () => {
    const k = render(fresh, ['k']).get('[data-testid=key-k]')
    expect(k.classes()).toContain('pending')
    expect(k.attributes('disabled')).toBeDefined()
    expect(k.attributes('aria-label')).toBe('K, waiting to be sent')
  })

  it('plays a letter button when clicked', async () => {
    const w = render(fresh)
    await w.get('[data-testid=key-r]').trigger('click')
    expect(w.emitted('guess')).toEqual([['r']])
  })

  it('plays letters typed on the physical keyboard, lower-cased, ignoring shortcuts and other keys', () => {
    const w = render(fresh)
    const type = (init: KeyboardEventInit) => window.dispatchEvent(new KeyboardEvent('keydown', init))
    type({ key: 'a' })
    type({ key: 'B' })
    type({ key: 'c', ctrlKey: true })
    type({ key: 'v', metaKey: true })
    type({ key: '1' })
    type({ key: 'Enter' })
    type({ key: 'd', repeat: true })
    expect(w.emitted('guess')).toEqual([['a'], ['b']])
  })

  it('does not take letters typed into a text field', () => {
    const w = render(fresh)
    const input = document.createElement('input')
    document.body.appendChild(input)
    input.dispatchEvent(new KeyboardEvent('keydown', { key: 'a', bubbles: true }))
    input.remove()
    expect(w.emitted('guess')).toBeUndefined()
  })

  it('ignores the keyboard once the game is over and after unmounting', () => {
    const w = render({ ...midGame, game_state: 'won', word: 'beef' })
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'a' }))
    expect(w.emitted('guess')).toBeUndefined()

    const live = render(fresh)
    live.unmount()
    mounted.pop()
    window.dispatchEvent(new KeyboardEvent('keydown', { key: 'a' }))
    expect(live.emitted('guess')).toBeUndefined()
  })
})

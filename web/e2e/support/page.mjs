// Reading and playing the SPA the way a player does, through its roles and test ids.
import assert from 'node:assert/strict'
import { eventually } from './stack.mjs'

/** Waits until the element's trimmed text equals `expected`, reporting the last text seen. */
export async function expectText(locator, expected, timeoutMs = 15_000) {
  let seen
  try {
    await eventually(`text ${JSON.stringify(expected)}`, async () => {
      seen = (await locator.textContent())?.replace(/\s+/g, ' ').trim()
      return seen === expected
    }, timeoutMs)
  } catch {
    assert.fail(`expected ${JSON.stringify(expected)}, the page shows ${JSON.stringify(seen)}`)
  }
}

export const statusOf = (page) => page.getByTestId('status')
export const badgeOf = (page) => page.getByTestId('connection')

/** Waits for the connection badge to say `state` (connected, reconnecting, ...). */
export async function expectConnection(page, state, timeoutMs = 30_000) {
  await page.locator(`[data-testid=connection][data-state=${state}]`).waitFor({ timeout: timeoutMs })
}

/** Opens the SPA at `url` in a fresh context and waits until a game is on screen and connected. */
export async function openSpa(browser, url, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 }, ...contextOptions })
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (error) => problems.push(error))
  await page.goto(url)
  await expectConnection(page, 'connected')
  await statusOf(page).waitFor()
  return { context, page, problems }
}

/** The word as shown: one entry per letter, '' for a blank. */
export const wordOf = (page) => page.locator('#word .letter').allTextContents()

export const turnsLeftOf = async (page) =>
  Number((await page.getByTestId('turns-left').textContent()).match(/\d+/)[0])

export const shownPartsOf = (page) =>
  page.locator('#gallows .part.shown').evaluateAll((parts) => parts.map((p) => p.dataset.part))

/** The class ('right' or 'wrong') a used letter's button gets, once it is disabled. */
export async function playedKey(page, letter) {
  const key = page.getByTestId(`key-${letter}`)
  await page.locator(`[data-testid=key-${letter}]:disabled`).waitFor()
  const classes = (await key.getAttribute('class')).split(/\s+/)
  return classes.find((c) => c === 'right' || c === 'wrong') ?? null
}

/** Clicks a letter button and waits until the server's tally marks it used. */
export async function clickLetter(page, letter) {
  await page.getByTestId(`key-${letter}`).click()
  return playedKey(page, letter)
}

/** Types a letter on the physical keyboard and waits until the tally marks it used. */
export async function typeLetter(page, letter) {
  await page.keyboard.press(letter)
  return playedKey(page, letter)
}

export const gameIdOf = (page) => page.evaluate(() => sessionStorage.getItem('hangman.game_id'))

/**
 * Two players in one shared room of a new game of `word` see each other's moves: the first
 * plays `hit` (a letter of the word), the second `miss` (one not in it); each page shows the
 * other's move.
 */
export async function expectPlayingTogether(first, second, word, { hit, miss }) {
  await clickLetter(first.page, hit)
  assert.equal(await playedKey(second.page, hit), 'right', "the first player's move reaches the second")
  assert.deepEqual(await wordOf(second.page), [...word].map((l) => (l === hit ? l : '')))

  await clickLetter(second.page, miss)
  assert.equal(await playedKey(first.page, miss), 'wrong', "the second player's move reaches the first")
  assert.equal(await turnsLeftOf(first.page), 6)
}

/** The second player closes its tab: the first is alone in the player list. */
export async function expectLeft(first, second) {
  await second.context.close()
  await expectText(first.page.getByTestId('presence'), '1 player in this game')
}

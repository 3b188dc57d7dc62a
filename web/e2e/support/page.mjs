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

/**
 * Opens the SPA at `url` in a fresh context and waits until a game is on screen and connected;
 * `traffic` is its socket traffic from before the page loaded (`watchSocketTraffic`).
 */
export async function openSpa(browser, url, contextOptions = {}) {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 }, ...contextOptions })
  const page = await context.newPage()
  const problems = []
  page.on('pageerror', (error) => problems.push(error))
  const traffic = watchSocketTraffic(page)
  await page.goto(url)
  await expectConnection(page, 'connected')
  await statusOf(page).waitFor()
  return { context, page, problems, traffic }
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

/**
 * What goes over the page's socket from now on, whichever transport carries it: the WebSockets
 * it opens (`websockets`, their URLs), its long-poll requests (`polls`: method and URL), and the
 * channel messages (serializer V2: `{ref, topic, event, payload}`) it sends (WebSocket frames,
 * long-poll POST lines) and gets (frames, the `messages` of poll answers).
 */
export function watchSocketTraffic(page) {
  const traffic = { websockets: [], polls: [], sent: [], received: [] }
  const keep = (into) => (text) => {
    if (typeof text !== 'string' || !text.startsWith('[')) return // a binary message
    const [, ref, topic, event, payload] = JSON.parse(text)
    into.push({ ref, topic, event, payload })
  }
  const isPoll = (url) => new URL(url).pathname.endsWith('/longpoll')
  page.on('websocket', (ws) => {
    traffic.websockets.push(ws.url())
    ws.on('framesent', (frame) => keep(traffic.sent)(frame.payload))
    ws.on('framereceived', (frame) => keep(traffic.received)(frame.payload))
  })
  page.on('request', (request) => {
    if (!isPoll(request.url())) return
    traffic.polls.push({ method: request.method(), url: request.url() })
    if (request.method() === 'POST') request.postData().split('\n').forEach(keep(traffic.sent))
  })
  page.on('response', async (response) => {
    if (!isPoll(response.url()) || response.request().method() !== 'GET') return
    // A poll still waiting when the page goes away has no body to read.
    const body = await response.json().catch(() => null)
    body?.messages?.forEach(keep(traffic.received))
  })
  return traffic
}

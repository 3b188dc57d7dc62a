// The whole system started the way a user starts it (`scripts/run`), played in
// Debian's Chromium: the SPA through the gateway, the HTML app with JavaScript
// off, then Ctrl-C must leave no service listening (issues 5 and 6).
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { screenshot, suiteBrowser } from './support/browser.mjs'
import {
  clickLetter,
  expectConnection,
  expectLeft,
  expectPlayingTogether,
  expectText,
  gameIdOf,
  playedKey,
  shownPartsOf,
  statusOf,
  turnsLeftOf,
  typeLetter,
  wordOf,
} from './support/page.mjs'
import { accepts, addresses, oneWordDictionary, startScriptsRun } from './support/stack.mjs'

// Every game uses this word: letters h, a, n, g, m.
const WORD = 'hangman'
const MISSES = ['b', 'c', 'd', 'e', 'f', 'i', 'j']

describe('the whole stack, started with scripts/run', () => {
  let dictionary
  let stack
  let chromium

  before(async () => {
    for (const [name, address] of Object.entries(addresses)) {
      assert.equal(await accepts(address), false, `${name}'s address ${address} is already taken: stop what runs there`)
    }
    dictionary = oneWordDictionary(WORD)
    stack = await startScriptsRun({ HANGMAN_PROFILE: 'dev', GAME_SERVICE_DICTIONARY: dictionary.file })
    chromium = await suiteBrowser()
  })

  after(async () => {
    await chromium?.close()
    await stack?.kill()
    dictionary?.remove()
  })

  const open = (url = stack.gatewayUrl, options) => chromium.open(url, options)

  it('wins a game with the letter buttons and the keyboard, then starts a new one with Enter', async () => {
    const { page, problems } = await open()
    await expectText(statusOf(page), "Let's play!")
    assert.deepEqual(await wordOf(page), Array(WORD.length).fill(''))
    assert.equal(await turnsLeftOf(page), 7)
    assert.deepEqual(await shownPartsOf(page), [])

    assert.equal(await clickLetter(page, 'a'), 'right')
    await expectText(statusOf(page), 'Good guess!')
    assert.deepEqual(await wordOf(page), ['', 'a', '', '', '', 'a', ''])

    assert.equal(await typeLetter(page, 'z'), 'wrong')
    await expectText(statusOf(page), 'Sorry, that letter is not in the word')
    assert.equal(await turnsLeftOf(page), 6)
    assert.deepEqual(await shownPartsOf(page), ['rope'])

    for (const letter of ['h', 'n', 'g']) assert.equal(await typeLetter(page, letter), 'right')
    assert.equal(await clickLetter(page, 'm'), 'right')
    await expectText(statusOf(page), 'You won!')
    assert.deepEqual(await wordOf(page), WORD.split(''))
    assert.equal(await page.locator('.key:enabled').count(), 0, 'no letter is playable after the game')
    await screenshot(page, 'spa-won')

    const finished = await gameIdOf(page)
    await page.keyboard.press('Enter') // the focus moved to New Game when the game ended
    await expectText(statusOf(page), "Let's play!")
    assert.deepEqual(await wordOf(page), Array(WORD.length).fill(''))
    assert.equal(await page.locator('.key:enabled').count(), 26)
    assert.notEqual(await gameIdOf(page), finished, 'New Game starts another game')
    assert.deepEqual(problems, [])
  })

  it('loses a game: the figure fills in turn by turn and the word is revealed', async () => {
    const { page, problems } = await open()
    await clickLetter(page, 'n')
    for (const [i, letter] of MISSES.entries()) {
      assert.equal(await clickLetter(page, letter), 'wrong')
      assert.equal(await turnsLeftOf(page), 6 - i)
      assert.equal((await shownPartsOf(page)).length, i + 1)
    }
    await expectText(statusOf(page), `You lost — the word was ${WORD}`)
    assert.deepEqual(await wordOf(page), WORD.split(''), 'the missed letters are filled in')
    assert.deepEqual(await page.locator('#word .letter.missed').allTextContents(), ['h', 'a', 'g', 'm', 'a'])
    assert.equal(await page.locator('.key:enabled').count(), 0)
    await page.getByTestId('new-game').waitFor()
    await screenshot(page, 'spa-lost')
    assert.deepEqual(problems, [])
  })

  it('continues the same game after a reload', async () => {
    const { page, problems } = await open()
    await clickLetter(page, 'h')
    await clickLetter(page, 'x')
    const id = await gameIdOf(page)
    assert.ok(id, 'the game id is kept in sessionStorage')

    await page.reload()
    await expectConnection(page, 'connected')
    assert.equal(await gameIdOf(page), id)
    assert.deepEqual(await wordOf(page), ['h', '', '', '', '', '', ''])
    assert.equal(await turnsLeftOf(page), 6)
    assert.equal(await playedKey(page, 'h'), 'right')
    assert.equal(await playedKey(page, 'x'), 'wrong')

    for (const letter of ['a', 'n', 'g', 'm']) await typeLetter(page, letter)
    await expectText(statusOf(page), 'You won!')
    await screenshot(page, 'spa-reloaded-and-won')
    assert.deepEqual(problems, [])
  })

  it('shares a game: two players in one room see each other and each other\'s moves', async () => {
    const alice = await open()
    const link = await alice.page.getByTestId('share-link').getAttribute('href')
    assert.match(link, /\?game=[\w-]+$/)

    const bob = await open(link)
    for (const { page } of [alice, bob]) await expectText(page.getByTestId('presence-count'), '2')

    await expectPlayingTogether(alice, bob, WORD, { hit: 'g', miss: 'q' })
    await screenshot(alice.page, 'spa-shared-room-owner')
    await screenshot(bob.page, 'spa-shared-room-guest')
    await expectLeft(alice, bob)
    assert.deepEqual([...alice.problems, ...bob.problems], [])
  })

  it('tells a visitor when a shared game does not exist', async () => {
    const context = await chromium.newContext()
    const page = await context.newPage()
    await page.goto(`${stack.gatewayUrl}?game=no-such-game`)
    await page.getByTestId('room-missing').waitFor()
    await screenshot(page, 'spa-room-missing')
  })

  it('fits a phone-sized screen and plays with the keyboard alone', async () => {
    const { page } = await open(stack.gatewayUrl, { viewport: { width: 375, height: 740 }, isMobile: true })
    // clientWidth, not innerWidth: on a mobile viewport innerWidth grows to the content's width.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`)
    await typeLetter(page, 'm')
    await expectText(statusOf(page), 'Good guess!')
    await screenshot(page, 'spa-phone')
  })

  it('shows the badge offline while the browser has no network, and connected once it is back', async () => {
    const { page, context } = await open()
    await context.setOffline(true)
    await expectConnection(page, 'offline')
    await expectText(page.getByTestId('connection'), 'Offline')
    await screenshot(page, 'spa-offline')
    await context.setOffline(false)
    await expectConnection(page, 'connected')
    assert.equal(await clickLetter(page, 'h'), 'right')
  })

  it('plays the HTML app with JavaScript disabled', async () => {
    const context = await chromium.newContext({ javaScriptEnabled: false })
    const page = await context.newPage()
    await page.goto(`${stack.htmlUrl}hangman`)
    await page.locator('form[action$="/hangman"] button[type=submit]').first().click()
    await page.locator('#status').waitFor()
    assert.equal(await page.locator('button[name=guess]').count(), 26)

    const letterButton = (letter) => page.locator(`button[name=guess][value=${letter}]`)
    await letterButton('k').click()
    assert.equal(await letterButton('k').isDisabled(), true)
    assert.match(await letterButton('k').getAttribute('class'), /\bwrong\b/)
    await expectText(page.locator('#status'), 'Sorry, that letter is not in the word')
    assert.match(await page.locator('#turns-left').textContent(), /\b6\b/)
    assert.equal(await page.locator('svg#gallows .part.shown').count(), 1)

    for (const letter of ['h', 'a', 'n', 'g']) {
      await letterButton(letter).click()
      assert.match(await letterButton(letter).getAttribute('class'), /\bright\b/)
    }
    await letterButton('m').click()
    await expectText(page.locator('#status'), 'You won!')
    assert.deepEqual(
      (await page.locator('#word span.letter').allTextContents()).map((t) => t.trim().toLowerCase()),
      WORD.split(''),
    )
    await screenshot(page, 'html-gallows-no-js-won')
  })

  it('stops every service on Ctrl-C', async () => {
    const { code, signal } = await stack.interrupt()
    assert.equal(signal, null, `scripts/run was killed by ${signal}`)
    assert.equal(code, 0, `scripts/run exited with ${code}:\n${stack.output().slice(-2000)}`)
    for (const [name, address] of Object.entries(addresses)) {
      assert.equal(await accepts(address), false, `${name} still accepts connections on ${address}`)
    }
  })
})

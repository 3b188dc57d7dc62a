// Issue 15: where WebSockets are refused the SPA plays over long-poll, by the npm
// client's own fallback (`longPollFallbackMs`), and the badge says so. A gateway
// started with WS_GATEWAY_TRANSPORTS=longpoll answers the WebSocket path 404, as a
// proxy that blocks upgrades would: the page falls back, plays a whole game, and a
// reload goes straight to long-poll (the npm client remembered the choice in
// sessionStorage). A replica with both transports (the default) keeps the page on
// the WebSocket until the WebSocket cannot reconnect: the page then comes back
// over long-poll, and a reload tries the WebSocket again.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { screenshot, suiteBrowser } from './support/browser.mjs'
import {
  badgeOf,
  clickLetter,
  expectConnection,
  expectText,
  gameIdOf,
  playedKey,
  statusOf,
  turnsLeftOf,
  typeLetter,
  watchSocketTraffic,
  wordOf,
} from './support/page.mjs'
import { startServicesDirectly, stopServices } from './support/stack.mjs'

// Every game uses this word: letters p, o, l.
const WORD = 'poll'
const FALLBACK_KEY = 'phx:fallback:LongPoll'

describe('the SPA where the WebSocket is refused', () => {
  let services
  let longPollOnly
  let chromium

  before(async () => {
    services = await startServicesDirectly(WORD) // both transports, and restartable
    longPollOnly = await services.addGateway({ WS_GATEWAY_TRANSPORTS: 'longpoll' })
    chromium = await suiteBrowser()
  })

  after(async () => {
    await chromium?.close()
    if (services) await stopServices(services)
  })

  const open = (url) => chromium.open(url)

  const guessesSent = (traffic) =>
    traffic.sent.filter((m) => m.event === 'make_move').map((m) => m.payload.guess)

  it('falls back to long-poll, plays a whole game over it, and goes straight to it after a reload', async () => {
    const { page, problems, traffic } = await open(`http://${longPollOnly.address}/`)
    await expectText(badgeOf(page), 'Connected · long-poll')
    assert.equal(await badgeOf(page).getAttribute('data-transport'), 'longpoll')
    assert.ok(
      traffic.websockets.some((url) => new URL(url).pathname === '/socket/websocket'),
      `the WebSocket was tried first: ${JSON.stringify(traffic.websockets)}`,
    )
    const connect = traffic.polls.find((p) => p.method === 'GET' && !new URL(p.url).searchParams.has('token'))
    assert.ok(connect, `a long-poll session was opened: ${JSON.stringify(traffic.polls)}`)
    assert.equal(new URL(connect.url).pathname, '/socket/longpoll')
    assert.equal(new URL(connect.url).searchParams.get('vsn'), '2.0.0')

    // A whole game won, each move a long-poll POST and each tally a poll's answer.
    assert.equal(await clickLetter(page, 'p'), 'right')
    assert.equal(await typeLetter(page, 'x'), 'wrong')
    assert.equal(await clickLetter(page, 'o'), 'right')
    assert.equal(await clickLetter(page, 'l'), 'right')
    await expectText(statusOf(page), 'You won!')
    assert.deepEqual(await wordOf(page), WORD.split(''))
    assert.deepEqual(guessesSent(traffic), ['p', 'x', 'o', 'l'])
    assert.ok(
      traffic.received.some((m) => m.event === 'phx_reply' && m.payload.response?.game_state === 'won'),
      'the winning tally came back in a poll',
    )
    assert.equal(traffic.websockets.length, 1, 'the WebSocket was not tried again once on long-poll')

    await page.getByTestId('new-game').click()
    await expectText(statusOf(page), "Let's play!")
    for (const letter of ['a', 'b', 'c']) assert.equal(await clickLetter(page, letter), 'wrong')
    const id = await gameIdOf(page)
    assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), FALLBACK_KEY), 'true')

    // The reload: a fresh page, so everything it shows comes from the server again.
    const reloaded = watchSocketTraffic(page)
    await page.reload()
    await expectConnection(page, 'connected')
    await expectText(badgeOf(page), 'Connected · long-poll')
    assert.equal(await gameIdOf(page), id)
    assert.equal(await turnsLeftOf(page), 4)
    for (const letter of ['a', 'b', 'c']) assert.equal(await playedKey(page, letter), 'wrong')
    assert.ok(
      reloaded.received.some(
        (m) => m.topic === 'hangman:game' && m.event === 'phx_reply' && m.payload.response?.game_id === id,
      ),
      'the resumed game came from a join answered over long-poll',
    )

    for (const letter of ['d', 'e', 'f', 'g']) assert.equal(await typeLetter(page, letter), 'wrong')
    await expectText(statusOf(page), `You lost — the word was ${WORD}`)
    assert.deepEqual(await wordOf(page), WORD.split(''))
    assert.deepEqual(guessesSent(reloaded), ['d', 'e', 'f', 'g'])
    assert.deepEqual(reloaded.websockets, [], 'no WebSocket was tried after the reload')
    await screenshot(page, 'spa-longpoll-lost-after-reload')
    assert.deepEqual(problems, [])
  })

  it('stays on the WebSocket where it is allowed, until it cannot reconnect; a reload tries it again', async () => {
    const { page, problems, traffic } = await open(`http://${services.gateway.address}/`)
    await expectText(badgeOf(page), 'Connected · WebSocket')
    assert.equal(await clickLetter(page, 'o'), 'right')
    assert.deepEqual(guessesSent(traffic), ['o'])
    assert.equal(traffic.websockets.length, 1)
    assert.deepEqual(traffic.polls, [], 'no long-poll request was made')
    await screenshot(page, 'spa-websocket-badge')

    await services.gateway.stop()
    await expectConnection(page, 'reconnecting')
    await services.restartGateway()
    await expectConnection(page, 'connected')
    await expectText(badgeOf(page), 'Connected · long-poll')
    assert.equal(await clickLetter(page, 'p'), 'right')
    assert.ok(traffic.polls.some((p) => p.method === 'POST'), 'the move after the restart went by long-poll')
    assert.equal(
      await page.evaluate((key) => sessionStorage.getItem(key), FALLBACK_KEY),
      null,
      'a fallback after the WebSocket worked is not remembered',
    )

    const reloaded = watchSocketTraffic(page)
    await page.reload()
    await expectConnection(page, 'connected')
    await expectText(badgeOf(page), 'Connected · WebSocket')
    assert.deepEqual(await wordOf(page), ['p', 'o', '', ''])
    assert.equal(await clickLetter(page, 'l'), 'right')
    await expectText(statusOf(page), 'You won!')
    assert.deepEqual(guessesSent(reloaded), ['l'])
    assert.deepEqual(reloaded.polls, [], 'no long-poll request after the reload')
    assert.deepEqual(problems, [])
  })
})

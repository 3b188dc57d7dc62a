// Resilience, with the binaries started directly so one service can be stopped
// and restarted on the same port mid-game:
// - the gateway goes away: the badge says so, a guess typed meanwhile waits and
//   is played once back, and the game carries on where it was;
// - the game service goes away: a guess is refused with a visible message
//   (never lost silently) and can be tried again; when the service comes back
//   without the game (its games live in memory), the player is told and a new
//   game starts.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { screenshot, suiteBrowser } from './support/browser.mjs'
import {
  clickLetter,
  expectConnection,
  expectText,
  gameIdOf,
  playedKey,
  statusOf,
  turnsLeftOf,
  wordOf,
} from './support/page.mjs'
import { startServicesDirectly, stopServices } from './support/stack.mjs'

const WORD = 'gallows'

describe('services stopped and restarted mid-game', () => {
  let services
  let chromium

  before(async () => {
    services = await startServicesDirectly(WORD)
    chromium = await suiteBrowser()
  })

  after(async () => {
    await chromium?.close()
    if (services) await stopServices(services)
  })

  const open = () => chromium.open(`http://${services.gateway.address}/`)

  it('shows reconnecting while the gateway is down, queues a guess, and resumes the game', async () => {
    const opened = await open()
    const { page } = opened
    await clickLetter(page, 'l')
    await clickLetter(page, 'e')
    const id = await gameIdOf(page)

    await services.gateway.stop()
    await expectConnection(page, 'reconnecting')
    await page.keyboard.press('w')
    await expectText(page.getByTestId('pending'), 'Waiting for the connection to send: w')
    await screenshot(page, 'spa-gateway-down')

    await services.restartGateway()
    await expectConnection(page, 'connected')
    assert.equal(await playedKey(page, 'w'), 'right', 'the queued guess was played once back')
    assert.equal(await page.getByTestId('pending').count(), 0)
    assert.equal(await gameIdOf(page), id, 'the same game goes on')
    assert.deepEqual(await wordOf(page), ['', '', 'l', 'l', '', 'w', ''])
    assert.equal(await turnsLeftOf(page), 6)
    assert.equal(await playedKey(page, 'e'), 'wrong')

    for (const letter of ['g', 'a', 'o']) await clickLetter(page, letter)
    await clickLetter(page, 's')
    await expectText(statusOf(page), 'You won!')
    await screenshot(page, 'spa-gateway-restarted-and-won')
    assert.deepEqual(opened.problems, [])
  })

  it('refuses a guess visibly while the game service is down, and starts a new game once it is back', async () => {
    const opened = await open()
    const { page } = opened
    await clickLetter(page, 'a')
    const lostGame = await gameIdOf(page)

    await services.gameService.stop()
    await page.getByTestId('key-l').click()
    await expectText(page.getByTestId('notice'), 'Your guess “l” was not played: the game service is unavailable.')
    assert.equal(await page.getByTestId('key-l').isEnabled(), true, 'the refused letter can be tried again')
    assert.deepEqual(await wordOf(page), ['', 'a', '', '', '', '', ''])
    await screenshot(page, 'spa-game-service-down')

    await services.restartGameService()
    await page.getByTestId('key-l').click()
    await expectText(
      page.getByTestId('notice'),
      'Your guess “l” was not played: this game no longer exists. A new game was started.',
    )
    await expectText(statusOf(page), "Let's play!")
    assert.notEqual(await gameIdOf(page), lostGame)
    assert.equal(await clickLetter(page, 'l'), 'right', 'the new game is playable')
    assert.deepEqual(opened.problems, [])
  })
})

// Resilience: the gateway goes away mid-game and comes back on the same port.
// The badge must say so, a guess typed meanwhile must wait and then be played,
// and the game must carry on where it was. The binaries are started directly
// so the gateway alone can be restarted.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { launchChromium, screenshot } from './support/browser.mjs'
import {
  clickLetter,
  expectConnection,
  expectText,
  gameIdOf,
  openSpa,
  playedKey,
  statusOf,
  turnsLeftOf,
  wordOf,
} from './support/page.mjs'
import { startServicesDirectly, stopServices } from './support/stack.mjs'

const WORD = 'gallows'

describe('gateway stop and restart mid-game', () => {
  let services
  let browser
  let context

  before(async () => {
    services = await startServicesDirectly(WORD)
    browser = await launchChromium()
  })

  after(async () => {
    await context?.close()
    await browser?.close()
    if (services) await stopServices(services)
  })

  it('shows reconnecting while the gateway is down, queues a guess, and resumes the game', async () => {
    const opened = await openSpa(browser, `http://${services.gateway.address}/`)
    context = opened.context
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
})

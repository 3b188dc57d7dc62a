// Resilience: the gateway goes away mid-game and comes back on the same port.
// The badge must say so, a guess typed meanwhile must wait and then be played,
// and the game must carry on where it was. The binaries are started directly
// so the gateway alone can be restarted.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { join } from 'node:path'
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
import { buildForDirectStart, oneWordDictionary, repoRoot, startBinary } from './support/stack.mjs'

const WORD = 'gallows'

describe('gateway stop and restart mid-game', () => {
  let dictionary
  let gameService
  let gateway
  let gatewayEnv
  let browser
  let context

  before(async () => {
    buildForDirectStart()
    dictionary = oneWordDictionary(WORD)
    gameService = await startBinary('game-service', {
      GAME_SERVICE_LISTEN: '127.0.0.1:0',
      GAME_SERVICE_DICTIONARY: dictionary.file,
    })
    gatewayEnv = {
      WS_GATEWAY_LISTEN: '127.0.0.1:0',
      WS_GATEWAY_STATIC_DIR: join(repoRoot, 'web', 'dist'),
      WS_GATEWAY_GAME_SERVICE: `http://${gameService.address}`,
    }
    gateway = await startBinary('ws-gateway', gatewayEnv)
    browser = await launchChromium()
  })

  after(async () => {
    await context?.close()
    await browser?.close()
    await gateway?.stop()
    await gameService?.stop()
    dictionary?.remove()
  })

  it('shows reconnecting while the gateway is down, queues a guess, and resumes the game', async () => {
    const opened = await openSpa(browser, `http://${gateway.address}/`)
    context = opened.context
    const { page } = opened
    await clickLetter(page, 'l')
    await clickLetter(page, 'e')
    const id = await gameIdOf(page)

    await gateway.stop()
    await expectConnection(page, 'reconnecting')
    await page.keyboard.press('w')
    await expectText(page.getByTestId('pending'), 'Waiting for the connection to send: w')
    await screenshot(page, 'spa-gateway-down')

    gateway = await startBinary('ws-gateway', { ...gatewayEnv, WS_GATEWAY_LISTEN: gateway.address })
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

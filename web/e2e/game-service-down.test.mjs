// The game service goes away mid-game: a guess is refused with a visible
// message (never lost silently) and can be tried again; when the service comes
// back without the game (its games live in memory), the player is told and a
// new game starts.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { launchChromium, screenshot } from './support/browser.mjs'
import { clickLetter, expectText, gameIdOf, openSpa, statusOf, wordOf } from './support/page.mjs'
import { startServicesDirectly, stopServices } from './support/stack.mjs'

describe('game service down mid-game', () => {
  let services
  let browser
  let context

  before(async () => {
    services = await startServicesDirectly('gallows')
    browser = await launchChromium()
  })

  after(async () => {
    await context?.close()
    await browser?.close()
    if (services) await stopServices(services)
  })

  it('refuses a guess visibly while it is down and starts a new game once it is back', async () => {
    const opened = await openSpa(browser, `http://${services.gateway.address}/`)
    context = opened.context
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

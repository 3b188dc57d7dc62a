// One build, any mount: the same web/dist served under /ws/v1/ (as in
// Kubernetes) finds its assets and its socket relative to the page.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { launchChromium, screenshot } from './support/browser.mjs'
import { clickLetter, expectConnection, openSpa, playedKey, wordOf } from './support/page.mjs'
import { startServicesDirectly, stopServices } from './support/stack.mjs'

describe('the SPA served under a versioned path', () => {
  let services
  let browser
  const contexts = []

  before(async () => {
    // No socket at the root: only /ws/v1/socket exists, so a page that resolved
    // the socket against the host root could not connect.
    services = await startServicesDirectly('path', {
      WS_GATEWAY_STATIC_PATH: '/ws/v1',
      WS_GATEWAY_MOUNT: '/ws/v1/socket',
    })
    browser = await launchChromium()
  })

  after(async () => {
    await Promise.allSettled(contexts.map((c) => c.close()))
    await browser?.close()
    if (services) await stopServices(services)
  })

  it('plays, resumes after a reload and shares a link under /ws/v1/', async () => {
    const own = await openSpa(browser, `http://${services.gateway.address}/ws/v1/`)
    contexts.push(own.context)
    assert.equal(await clickLetter(own.page, 'a'), 'right')

    await own.page.reload()
    await expectConnection(own.page, 'connected')
    assert.deepEqual(await wordOf(own.page), ['', 'a', '', ''])

    const link = await own.page.getByTestId('share-link').getAttribute('href')
    assert.match(link, /^http:\/\/[\d.:]+\/ws\/v1\/\?game=[\w-]+$/)
    const guest = await openSpa(browser, link)
    contexts.push(guest.context)
    assert.equal(await playedKey(guest.page, 'a'), 'right')
    await clickLetter(guest.page, 't')
    assert.equal(await playedKey(own.page, 't'), 'right')
    await screenshot(own.page, 'spa-under-ws-v1')
    assert.deepEqual([...own.problems, ...guest.problems], [])
  })
})

// One build, any mount: the same web/dist served under /ws/v1/ (as in
// Kubernetes) finds its assets and its socket relative to the page.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { screenshot, suiteBrowser } from './support/browser.mjs'
import { clickLetter, expectConnection, playedKey, wordOf } from './support/page.mjs'
import { startServicesDirectly, stopServices } from './support/stack.mjs'

describe('the SPA served under a versioned path', () => {
  let services
  let chromium

  before(async () => {
    // No socket at the root: only /ws/v1/socket exists, so a page that resolved
    // the socket against the host root could not connect.
    services = await startServicesDirectly('path', {
      WS_GATEWAY_STATIC_PATH: '/ws/v1',
      WS_GATEWAY_MOUNT: '/ws/v1/socket',
    })
    chromium = await suiteBrowser()
  })

  after(async () => {
    await chromium?.close()
    if (services) await stopServices(services)
  })

  it('plays, resumes after a reload and shares a link under /ws/v1/', async () => {
    const own = await chromium.open(`http://${services.gateway.address}/ws/v1/`)
    assert.equal(await clickLetter(own.page, 'a'), 'right')

    await own.page.reload()
    await expectConnection(own.page, 'connected')
    assert.deepEqual(await wordOf(own.page), ['', 'a', '', ''])

    const link = await own.page.getByTestId('share-link').getAttribute('href')
    assert.match(link, /^http:\/\/[\d.:]+\/ws\/v1\/\?game=[\w-]+$/)
    const guest = await chromium.open(link)
    assert.equal(await playedKey(guest.page, 'a'), 'right')
    await clickLetter(guest.page, 't')
    assert.equal(await playedKey(own.page, 't'), 'right')
    await screenshot(own.page, 'spa-under-ws-v1')
    assert.deepEqual([...own.problems, ...guest.problems], [])
  })
})

// Issue 13: a shared room spans every gateway replica. Two gateway processes on
// one game service, each serving the SPA; Alice plays her game through one, Bob
// opens its share link through the other. Each sees the other in the player list
// and each other's moves, and Bob leaving shows on Alice's page. When Bob's
// gateway goes away while Alice plays, Bob's page rejoins the room with the
// version it showed and is given the moves it missed.
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
  watchSocketTraffic,
} from './support/page.mjs'
import { startServicesDirectly, stopServices } from './support/stack.mjs'

const WORD = 'gallows'

describe('a shared room across two gateway replicas', () => {
  let services
  let second
  let chromium

  before(async () => {
    services = await startServicesDirectly(WORD)
    second = await services.addGateway()
    chromium = await suiteBrowser()
  })

  after(async () => {
    await chromium?.close()
    if (services) await stopServices(services)
  })

  async function open(url) {
    const opened = await chromium.open(url)
    opened.name = await opened.page.evaluate(() => sessionStorage.getItem('hangman.player'))
    return opened
  }

  it('players on different gateways see each other and each other\'s moves', async () => {
    assert.notEqual(second.address, services.gateway.address)
    const alice = await open(`http://${services.gateway.address}/`)
    const id = await gameIdOf(alice.page)
    const bob = await open(`http://${second.address}/?game=${encodeURIComponent(id)}`)
    assert.notEqual(alice.name, bob.name)

    await expectText(alice.page.getByTestId('presence'), `2 players in this game — you (${alice.name}) with ${bob.name}`)
    await expectText(bob.page.getByTestId('presence'), `2 players in this game — you (${bob.name}) with ${alice.name}`)

    await expectPlayingTogether(alice, bob, WORD, { hit: 'g', miss: 'q' })
    await screenshot(alice.page, 'spa-across-gateways-owner')
    await screenshot(bob.page, 'spa-across-gateways-guest')
    await expectLeft(alice, bob)
    assert.deepEqual([...alice.problems, ...bob.problems], [])
  })

  it('a player whose gateway restarts rejoins with the version shown and gets the moves missed meanwhile', async () => {
    const alice = await open(`http://${second.address}/`)
    const id = await gameIdOf(alice.page)
    const bob = await open(`http://${services.gateway.address}/?game=${encodeURIComponent(id)}`)
    await clickLetter(alice.page, 'g')
    assert.equal(await playedKey(bob.page, 'g'), 'right')

    const frames = roomFrames(bob.page, `game:${id}`) // on the sockets opened from now on
    await services.gateway.stop()
    await expectConnection(bob.page, 'reconnecting')
    await clickLetter(alice.page, 'q')
    await clickLetter(alice.page, 'a')
    await services.restartGateway()
    await expectConnection(bob.page, 'connected')
    assert.equal(await playedKey(bob.page, 'q'), 'wrong')
    assert.equal(await playedKey(bob.page, 'a'), 'right')

    const [rejoin, reply] = frames.joined()
    assert.deepEqual(rejoin.payload, { version: 1 }, 'the rejoin gives the version Bob showed')
    assert.equal(reply.recovered, true)
    assert.deepEqual(reply.missed.map((t) => [t.version, t.used]), [[2, ['g', 'q']]])
    assert.deepEqual([reply.tally.version, reply.tally.used], [3, ['a', 'g', 'q']])
    await expectText(bob.page.getByTestId('presence-count'), '2')
    assert.deepEqual([...alice.problems, ...bob.problems], [])
  })
})

/**
 * The messages of `topic` a page sends and gets on the sockets it opens from now on, over either
 * transport: a WebSocket that cannot reconnect makes the npm client fall back to long-poll.
 */
function roomFrames(page, topic) {
  const traffic = watchSocketTraffic(page)
  const ofTopic = (messages) => messages.filter((m) => m.topic === topic)
  const replyTo = (push) =>
    ofTopic(traffic.received).find((m) => m.event === 'phx_reply' && m.ref === push.ref)?.payload
  return {
    /** The last join answered ok, and the response. */
    joined() {
      const sent = ofTopic(traffic.sent)
      const join = sent.findLast((m) => m.event === 'phx_join' && replyTo(m)?.status === 'ok')
      assert.ok(join, `no join of ${topic} was answered ok: ${JSON.stringify(traffic)}`)
      return [join, replyTo(join).response]
    },
  }
}

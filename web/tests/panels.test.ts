import { mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import ConnectionBadge from '../src/components/ConnectionBadge.vue'
import SharePanel from '../src/components/SharePanel.vue'

describe('ConnectionBadge', () => {
  it.each([
    ['connecting', 'Connecting…'],
    ['connected', 'Connected'],
    ['reconnecting', 'Reconnecting…'],
    ['offline', 'Offline'],
  ] as const)('says %s', (connection, label) => {
    const badge = mount(ConnectionBadge, { props: { connection } }).get('[data-testid=connection]')
    expect(badge.text()).toBe(label)
    expect(badge.attributes('data-state')).toBe(connection)
    expect(badge.classes()).toContain(connection)
  })

  it.each([
    ['websocket', 'Connected · WebSocket'],
    ['longpoll', 'Connected · long-poll'],
  ] as const)('names the %s transport once connected', (transport, label) => {
    const badge = mount(ConnectionBadge, { props: { connection: 'connected', transport } }).get('[data-testid=connection]')
    expect(badge.text()).toBe(label)
    expect(badge.attributes('data-state')).toBe('connected')
    expect(badge.attributes('data-transport')).toBe(transport)
  })

  it('names no transport while not connected: none carries the game then', () => {
    const badge = mount(ConnectionBadge, { props: { connection: 'reconnecting', transport: 'longpoll' } }).get(
      '[data-testid=connection]',
    )
    expect(badge.text()).toBe('Reconnecting…')
    expect(badge.attributes('data-transport')).toBeUndefined()
  })
})

describe('SharePanel', () => {
  const link = 'http://127.0.0.1:4000/?game=abc'

  it('offers the link and counts the players in the room, naming the others', () => {
    const w = mount(SharePanel, { props: { link, players: ['ann', 'bob', 'cy'], inRoom: false, me: 'ann' } })
    expect(w.get('[data-testid=share-link]').attributes('href')).toBe(link)
    expect(w.get('[data-testid=presence-count]').text()).toBe('3')
    expect(w.get('[data-testid=presence]').text()).toMatch(/3 players in this game — you \(ann\) with bob, cy/)
  })

  it('speaks of one player alone without a list', () => {
    const w = mount(SharePanel, { props: { link, players: ['ann'], inRoom: true, me: 'ann' } })
    expect(w.get('[data-testid=presence]').text()).toBe('1 player in this game')
    expect(w.text()).toContain('You joined a shared game.')
  })
})

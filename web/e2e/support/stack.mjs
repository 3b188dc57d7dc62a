// Starting and stopping the system under test: `scripts/run` the way a user
// runs it, or the service binaries one by one when a test must restart one.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..')

/** The address scripts/run gives each service (its env twins move them). */
export const addresses = {
  gameService: process.env.GAME_SERVICE_LISTEN ?? '127.0.0.1:50051',
  gateway: process.env.WS_GATEWAY_LISTEN ?? '127.0.0.1:4000',
  htmlGallows: process.env.HTML_GALLOWS_LISTEN ?? '127.0.0.1:4001',
}

/** A temporary dictionary holding one word, so every new game uses that word. */
export function oneWordDictionary(word) {
  const dir = mkdtempSync(join(tmpdir(), 'hangman-e2e-'))
  const file = join(dir, 'words.txt')
  writeFileSync(file, `${word}\n`)
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Polls until `check` returns something truthy; throws with `what` on timeout. */
export async function eventually(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await check()
    if (result) return result
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

export async function httpStatus(url) {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
    await response.arrayBuffer()
    return response.status
  } catch {
    return null
  }
}

/** Whether something accepts TCP connections on HOST:PORT. */
export function accepts(address) {
  const [host, port] = splitAddress(address)
  return new Promise((resolve) => {
    const socket = connect({ host, port })
    socket.setTimeout(2000)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
  })
}

function splitAddress(address) {
  const i = address.lastIndexOf(':')
  return [address.slice(0, i).replace(/^\[|\]$/g, ''), Number(address.slice(i + 1))]
}

/** A child process in its own process group, its output kept for failure messages. */
function spawnGroup(command, args, env) {
  const child = spawn(command, args, {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  const keep = (chunk) => {
    output += chunk
    if (output.length > 200_000) output = output.slice(-100_000)
  }
  child.stdout.setEncoding('utf8').on('data', keep)
  child.stderr.setEncoding('utf8').on('data', keep)
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  return {
    child,
    exited,
    output: () => output,
    running: () => child.exitCode === null && child.signalCode === null,
    /** Signals the whole group; harmless once it is gone. */
    signal(sig) {
      try {
        process.kill(-child.pid, sig)
      } catch {
        // already gone
      }
    },
  }
}

async function stopGroup(proc, signal, graceMs = 20_000) {
  if (!proc.running()) return proc.exited
  proc.signal(signal)
  const done = await Promise.race([proc.exited, sleep(graceMs).then(() => null)])
  if (done) return done
  proc.signal('SIGKILL')
  return proc.exited
}

/**
 * Runs `scripts/run` as a user does, in its own process group, and waits until
 * the gateway and the HTML app answer 200 on /readyz (the first run builds
 * everything, hence the long timeout).
 */
export async function startScriptsRun(env, readyTimeoutMs = 20 * 60_000) {
  const run = spawnGroup(join(repoRoot, 'scripts', 'run'), [], env)
  const ready = async () => {
    if (!run.running()) {
      throw new Error(`scripts/run exited before the stack was ready:\n${run.output().slice(-4000)}`)
    }
    const statuses = await Promise.all(
      [addresses.gateway, addresses.htmlGallows].map((a) => httpStatus(`http://${a}/readyz`)),
    )
    return statuses.every((s) => s === 200)
  }
  try {
    await eventually('scripts/run to get the stack ready', ready, readyTimeoutMs)
  } catch (error) {
    await stopGroup(run, 'SIGTERM')
    throw error
  }
  return {
    ...run,
    gatewayUrl: `http://${addresses.gateway}/`,
    htmlUrl: `http://${addresses.htmlGallows}/`,
    /** Ctrl-C, as a user stops it; resolves with how it exited. */
    interrupt: () => stopGroup(run, 'SIGINT'),
    /** For `after` hooks: stop it whatever state the test left it in. */
    kill: () => stopGroup(run, 'SIGTERM'),
  }
}

/**
 * Builds the binaries and web/dist the direct-start tests use (quick when up to
 * date); HANGMAN_SKIP_BUILD=1 uses what is built, as it does for scripts/run.
 */
export function buildForDirectStart() {
  if (process.env.HANGMAN_SKIP_BUILD === '1') return
  for (const [command, args, cwd] of [
    ['npm', ['run', 'build'], join(repoRoot, 'web')],
    ['cargo', ['build', '--bin', 'game-service', '--bin', 'ws-gateway'], repoRoot],
  ]) {
    const result = spawnSync(command, args, { cwd, stdio: ['ignore', 'inherit', 'inherit'] })
    if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status})`)
  }
}

/**
 * Starts one service binary from target/debug with its settings in the
 * environment, and waits for its `listening on ADDR` log line.
 */
export async function startBinary(name, env) {
  const proc = spawnGroup(join(repoRoot, 'target', 'debug', name), [], env)
  const address = await eventually(`${name} to log "listening on ADDR"`, () => {
    // eslint-disable-next-line no-control-regex
    const plain = proc.output().replace(/\x1b\[[0-9;]*m/g, '')
    const found = /listening on ([\w.:[\]]+)/.exec(plain)
    if (found) return found[1]
    if (!proc.running()) throw new Error(`${name} exited early:\n${proc.output().slice(-4000)}`)
    return null
  })
  return { ...proc, address, stop: () => stopGroup(proc, 'SIGTERM') }
}

/**
 * game-service (one-word dictionary) and ws-gateway serving web/dist, started
 * directly on free ports. `gatewayEnv` adds or overrides WS_GATEWAY_* settings;
 * `restartGateway` and `restartGameService` bring one back on the address it had;
 * `addGateway(moreEnv)` starts one more gateway replica on the same game service, `moreEnv`
 * adding to or overriding its settings.
 */
export async function startServicesDirectly(word, gatewayEnv = {}) {
  buildForDirectStart()
  const dictionary = oneWordDictionary(word)
  const services = { dictionary, moreGateways: [] }
  try {
    const gameServiceEnv = { GAME_SERVICE_LISTEN: '127.0.0.1:0', GAME_SERVICE_DICTIONARY: dictionary.file }
    services.gameService = await startBinary('game-service', gameServiceEnv)
    services.restartGameService = async () => {
      const address = services.gameService.address
      services.gameService = await startBinary('game-service', { ...gameServiceEnv, GAME_SERVICE_LISTEN: address })
      return services.gameService
    }
    const env = {
      WS_GATEWAY_LISTEN: '127.0.0.1:0',
      WS_GATEWAY_STATIC_DIR: join(repoRoot, 'web', 'dist'),
      WS_GATEWAY_GAME_SERVICE: `http://${services.gameService.address}`,
      ...gatewayEnv,
    }
    services.gateway = await startBinary('ws-gateway', env)
    services.restartGateway = async () => {
      services.gateway = await startBinary('ws-gateway', { ...env, WS_GATEWAY_LISTEN: services.gateway.address })
      return services.gateway
    }
    services.addGateway = async (moreEnv = {}) => {
      const gateway = await startBinary('ws-gateway', { ...env, WS_GATEWAY_LISTEN: '127.0.0.1:0', ...moreEnv })
      services.moreGateways.push(gateway)
      return gateway
    }
  } catch (error) {
    await stopServices(services)
    throw error
  }
  return services
}

export async function stopServices({ gateway, moreGateways = [], gameService, dictionary }) {
  await gateway?.stop()
  for (const more of moreGateways) await more.stop()
  await gameService?.stop()
  dictionary?.remove()
}

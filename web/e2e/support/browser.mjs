// Debian's Chromium driven by playwright-core. Never downloads a browser: when
// /usr/bin/chromium is missing the suite fails loudly instead of skipping.
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { openSpa } from './page.mjs'
import { repoRoot } from './stack.mjs'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SCREENSHOTS = join(repoRoot, 'artifacts', 'screenshots')

export async function launchChromium() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: the browser tests cannot run. ` +
        'Install it with `apt-get install -y chromium` (.ci/run does this); never download a browser.',
    )
  }
  // playwright-core gives every launch a fresh temporary --user-data-dir.
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: process.getuid?.() !== 0, // the sandbox cannot run as root
    args: [
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  })
}

/**
 * Chromium for one suite, and the browser contexts its tests open: `open(url, contextOptions)`
 * opens the SPA in a fresh context (`openSpa`), `newContext(options)` opens a bare one, and
 * `close()` closes them all, then Chromium.
 */
export async function suiteBrowser() {
  const browser = await launchChromium()
  const contexts = []
  return {
    async open(url, contextOptions) {
      const opened = await openSpa(browser, url, contextOptions)
      contexts.push(opened.context)
      return opened
    },
    async newContext(options) {
      const context = await browser.newContext(options)
      contexts.push(context)
      return context
    },
    async close() {
      await Promise.allSettled(contexts.map((c) => c.close()))
      await browser.close()
    },
  }
}

/** Saves a full-page screenshot as artifacts/screenshots/NAME.png at the repo root. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true })
  const path = join(SCREENSHOTS, `${name}.png`)
  await page.screenshot({ path, fullPage: true })
  return path
}

// Prints the production bundle size, raw and gzipped, of the JS and CSS in dist/.
// Run after `npm run build`.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gzipSync } from 'node:zlib'

const assets = fileURLToPath(new URL('../dist/assets/', import.meta.url))
let files
try {
  files = readdirSync(assets)
} catch {
  console.error('dist/assets not found: run `npm run build` first')
  process.exit(1)
}

const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`
const totals = {}
for (const name of files.sort()) {
  const kind = name.split('.').pop()
  if (kind !== 'js' && kind !== 'css') continue
  const bytes = readFileSync(join(assets, name))
  const gzipped = gzipSync(bytes, { level: 9 }).length
  totals[kind] ??= { raw: 0, gzip: 0 }
  totals[kind].raw += bytes.length
  totals[kind].gzip += gzipped
  console.log(`${name.padEnd(32)} ${kib(bytes.length).padStart(10)} raw ${kib(gzipped).padStart(10)} gzip`)
}
for (const [kind, { raw, gzip }] of Object.entries(totals)) {
  console.log(`total ${kind.padEnd(26)} ${kib(raw).padStart(10)} raw ${kib(gzip).padStart(10)} gzip`)
}

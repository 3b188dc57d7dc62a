import vue from '@vitejs/plugin-vue'
import { defineConfig } from 'vitest/config'

// The gateway the dev server forwards the socket to (`npm run dev`).
const gateway = process.env.HANGMAN_GATEWAY ?? 'http://127.0.0.1:4000'

export default defineConfig({
  plugins: [vue()],
  // Relative asset URLs: the same build is served at `/`, `/ws/v1/`, `/ws/v2/`.
  base: './',
  server: {
    proxy: { '/socket': { target: gateway, ws: true } },
  },
  test: {
    environment: 'happy-dom',
    include: ['tests/**/*.test.ts'],
  },
})

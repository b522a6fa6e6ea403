// Builds examples/vite into examples/vite/dist. `keep-light` resolves to this checkout's
// package (www/), as `npm install keep-light` would give it.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  resolve: { alias: { 'keep-light': fileURLToPath(new URL('../../src/keep-light.js', import.meta.url)) } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022' },
  logLevel: 'warn',
});

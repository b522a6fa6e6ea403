// Builds js-libp2p.html into dist/ for the connect benchmark (scripts/bench-browser.sh).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // Served from tools/connect-bench/dist/, not the origin's root.
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: fileURLToPath(new URL('js-libp2p.html', import.meta.url)) },
  },
  logLevel: 'warn',
});

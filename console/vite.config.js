// The console is built to dist/ and served by `ravand serve` at "/".
// Everything it uses is bundled: nothing is loaded from elsewhere at run time
// (the server's Content-Security-Policy allows only its own origin).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/',
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    target: 'es2020',
    chunkSizeWarningLimit: 1500,
    // no inline <script> or data: fonts: the server's CSP allows neither
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev` with a ravand serve on :8080 behind it
    proxy: { '/v1': 'http://127.0.0.1:8080', '/metrics': 'http://127.0.0.1:8080', '/healthz': 'http://127.0.0.1:8080' },
  },
});

// What every browser test shares: a free port, waiting for a started server to be healthy, and
// Debian's Chromium launched headless with the flags that work as root in CI.
import net from 'node:net';
import { chromium } from 'playwright-core';

/** A port nothing listens on now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Waits up to `ms` for `url` to answer 2xx; fails early with the log if `server` exits. */
export async function waitForHealth(url, ms, server, log) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try { if ((await fetch(url)).ok) return; } catch { /* not up yet */ }
    if (server.exitCode !== null) throw new Error(`server exited early:\n${log()}`);
    await new Promise(r => setTimeout(r, 200));
  }
  throw new Error(`server not healthy after ${ms} ms:\n${log()}`);
}

export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
}

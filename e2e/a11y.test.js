// Accessibility: axe-core (from npm) on every kind of page, in the light and the dark theme, at a
// desktop and a phone width; any violation fails. Also the skip link, the dark theme itself and
// the breakage-start marker under forced colours. Starts its own `trellis` server with the demo
// project, as grid.test.js does, and a small project of its own with runners, a lease and a
// failing kernel source for the coverage page.
//
// The pages carry a strict Content-Security-Policy that rightly refuses axe's injected script, so
// the axe runs (and only they) use a browser context with `bypassCSP`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForHealth, launchChromium } from './harness.js';

const BIN = process.env.TRELLIS_BIN;
const SITE = process.env.SITE_ROOT;
const PROJECT = 'demo-wireguard-linux-compat';
const COVERED = 'a11y-covered';
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const VARIANTS = [
  { name: 'light 1440', colorScheme: 'light', viewport: { width: 1440, height: 900 } },
  { name: 'dark 1440', colorScheme: 'dark', viewport: { width: 1440, height: 900 } },
  { name: 'light 390', colorScheme: 'light', viewport: { width: 390, height: 844 } },
  { name: 'dark 390', colorScheme: 'dark', viewport: { width: 390, height: 844 } },
];
let dir, db, server, base, browser, serverLog = '';
/** Paths of the pages to check, found by following links the way a reader would. */
const pages = {};

/** The path of the first link on `path` matching `selector`. */
async function linkOn(page, path, selector) {
  await page.goto(`${base}${path}`);
  const href = await page.getAttribute(selector, 'href');
  assert.ok(href, `no link ${selector} on ${path}`);
  return new URL(href, base).pathname + new URL(href, base).search;
}

/** The newest subscription's token, read from the test's own SQLite database (it is only ever
    mailed, and this test has no mail server). */
function newestToken() {
  return execFileSync('python3', ['-c',
    'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT token FROM subscriptions ORDER BY id DESC LIMIT 1").fetchone()[0])',
    db]).toString().trim();
}

before(async () => {
  assert.ok(BIN && SITE, 'TRELLIS_BIN and SITE_ROOT must be set (make test-e2e sets them)');
  dir = mkdtempSync(join(tmpdir(), 'trellis-a11y-'));
  db = join(dir, 'a11y.db');
  const env = {
    ...process.env, DATABASE_URL: `sqlite://${db}?mode=rwc`, RUST_LOG: 'warn',
    // Every variant posts the subscribe form once.
    TRELLIS_SUBSCRIBE_PER_HOUR: '100',
  };
  // A project with what the demo lacks, for the coverage page's tables: runners, a lease and a
  // kernel source whose poll fails (nothing listens on port 9).
  execFileSync(BIN, ['project', 'add', COVERED], { env, stdio: 'ignore' });
  const runnerToken = execFileSync(BIN, ['runner', 'add', 'a11y-runner', '--scope', COVERED], { env }).toString().trim();
  execFileSync(BIN, ['source', 'add', COVERED, '--url', 'http://127.0.0.1:9/repo/', '--stream', 'el8'], { env, stdio: 'ignore' });
  // The poll fails, so the command does too.
  assert.equal(spawnSync(BIN, ['source', 'poll'], { env, stdio: 'ignore' }).status, 1);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve', '--demo', '--addr', `127.0.0.1:${port}`, '--site-root', SITE], { env });
  server.stdout.on('data', d => { serverLog += d; });
  server.stderr.on('data', d => { serverLog += d; });
  await waitForHealth(`${base}/api/v1/health`, 120_000, server, () => serverLog);
  await coveredProject(runnerToken);
  browser = await launchChromium();

  const context = await browser.newContext();
  const page = await context.newPage();
  const grid = `/p/${PROJECT}`;
  pages.home = '/';
  pages.grid = grid;
  pages['grid filtered'] = `${grid}?stream=el8&failing=1&q=553`;
  pages.breakages = `${grid}/breakages`;
  pages['cell (fail)'] = await linkOn(page, grid, 'td.s-fail a[href*="/cell/"]');
  pages['cell (pass)'] = await linkOn(page, grid, 'td.s-pass a[href*="/cell/"]');
  pages.kernel = await linkOn(page, grid, 'a[href*="/kernel/"]');
  pages.commit = await linkOn(page, grid, 'a[href*="/commit/"]');
  pages['commit search'] = `${grid}/commits?q=v1.0`;
  pages.signature = await linkOn(page, pages.breakages, 'a[href*="/signature/"]');
  pages.coverage = `${grid}/coverage`;
  pages['coverage (since)'] = await linkOn(page, pages.coverage, 'a[href*="/coverage?since="]');
  pages['coverage (runners, lease, failing source)'] = `/p/${COVERED}/coverage`;
  pages['error (404)'] = `${grid}/kernel/el8/no-such-kernel`;
  pages['error (unknown project)'] = '/p/no-such-project';
  // A subscription waiting for its confirmation, for the pages behind the mail's links.
  await subscribe(page, 'a11y-setup@example.org');
  const token = newestToken();
  pages['confirm'] = `/subscriptions/${token}/confirm`;
  pages['unsubscribe'] = `/subscriptions/${token}/unsubscribe`;
  pages['not subscribed'] = '/subscriptions/no-such-token/unsubscribe';
  await context.close();
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Two commits and two kernels, one of them untested at head, then a lease of that cell. */
async function coveredProject(token) {
  const post = async (path, body) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  };
  const sha = n => String(n).repeat(40);
  await post(`/api/v1/projects/${COVERED}/commits`, {
    commits: [{ sha: sha(2), parents: [sha(1)] }, { sha: sha(1), parents: [] }],
  });
  const at = new Date().toISOString();
  for (const [kernel, commit] of [['4.18.0-513.el8_9.x86_64', 1], ['4.18.0-553.el8_10.x86_64', 2]]) {
    await post('/api/v1/reports', {
      project: COVERED, kernel: { version: kernel }, commit: { sha: sha(commit) }, status: 'pass',
      started_at: at, finished_at: at, log: 'ok\n', run_id: `${kernel}-${commit}`,
    });
  }
  const { jobs } = await post('/api/v1/jobs/lease', { project: COVERED, streams: ['el8'], max_jobs: 1 });
  assert.equal(jobs.length, 1);
}

/** Posts the grid page's subscribe form, as a reader would; the page shown is the answer. */
async function subscribe(page, email) {
  await page.goto(`${base}/p/${PROJECT}`);
  await page.click('details.subscribe summary');
  await page.fill('.subscribe-form input[name="email"]', email);
  await Promise.all([page.waitForURL('**/subscribe'), page.click('.subscribe-form button[type="submit"]')]);
  assert.match(await page.textContent('h1'), /Check your inbox/);
}

/** axe's violations on the page as it is now, one line per rule and element. */
async function violations(page) {
  await page.evaluate(AXE);
  // Every rule axe runs by default: WCAG 2.x A and AA, and its best practices (`region`, ...).
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  return result.violations.flatMap(v => v.nodes.map(n =>
    `${v.id} (${v.impact}): ${n.target.join(' ')}: ${n.failureSummary.split('\n').slice(1).join(' ').trim()}`));
}

/** Islands change the page as they hydrate: check what the reader ends up with. A page that loads
    the bundle is waited for until the bundle has loaded and the browser is idle again (leptos's
    loader hydrates the islands then). */
async function hydrated(page) {
  if (!(await page.$('link[rel="modulepreload"][href$="/trellis.js"]'))) return;
  await page.waitForFunction(() => window.__hydrateIsland
    && performance.getEntriesByType('resource').some(e => e.name.endsWith('_bg.wasm') && e.responseEnd > 0),
  null, { timeout: 30_000 });
  await page.evaluate(() => new Promise(resolve => requestIdleCallback(() => setTimeout(resolve, 300))));
}

/** Opens `path` in every variant and runs axe; `prepare` may act on the page first. */
async function checkEverywhere(path, prepare) {
  const found = [];
  for (const variant of VARIANTS) {
    const context = await browser.newContext({ bypassCSP: true, colorScheme: variant.colorScheme, viewport: variant.viewport });
    const page = await context.newPage();
    const response = await (prepare ? prepare(page) : page.goto(`${base}${path}`));
    assert.ok(response, `${path}: no response`);
    await hydrated(page);
    for (const v of await violations(page)) found.push(`[${variant.name}] ${v}`);
    await context.close();
  }
  assert.deepEqual(found, [], `axe violations on ${path}:\n${found.join('\n')}`);
}

const PAGE_NAMES = ['home', 'grid', 'grid filtered', 'breakages', 'cell (fail)', 'cell (pass)', 'kernel', 'commit',
  'signature', 'coverage', 'coverage (since)', 'coverage (runners, lease, failing source)', 'confirm', 'unsubscribe',
  'not subscribed', 'error (404)', 'error (unknown project)'];
for (const name of PAGE_NAMES) {
  test(`axe finds nothing on the ${name} page, light and dark, 1440 and 390 px`, { timeout: 180_000 }, async () => {
    await checkEverywhere(pages[name]);
  });
}

test('axe finds nothing on the subscribe answer, light and dark, 1440 and 390 px', { timeout: 180_000 }, async () => {
  let n = 0;
  await checkEverywhere('the subscribe answer', async page => {
    await subscribe(page, `a11y-${n++}@example.org`);
    return true;
  });
});

test('the skip link is the first tab stop and moves focus to the content', { timeout: 60_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/p/${PROJECT}`);
  const link = page.locator('a.skip-link[href="#content"]');
  assert.equal(await link.isVisible(), true, 'present');
  const hiddenTop = await link.evaluate(a => a.getBoundingClientRect().bottom);
  assert.ok(hiddenTop <= 0, 'off screen until focused');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  assert.ok(await link.evaluate(a => a.getBoundingClientRect().top) >= 0, 'shown when focused');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'content');
  assert.equal(await page.evaluate(() => document.activeElement.tagName), 'MAIN');
  await context.close();
});

/** The relative luminance of a computed CSS colour (`rgb(...)`). */
function luminance(css) {
  const [r, g, b] = css.match(/[\d.]+/g).slice(0, 3).map(Number).map(c => {
    c /= 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

test('the theme follows the system: dark pages in dark mode, and color-scheme is declared', { timeout: 60_000 }, async () => {
  for (const colorScheme of ['light', 'dark']) {
    const context = await browser.newContext({ colorScheme });
    const page = await context.newPage();
    await page.goto(`${base}/p/${PROJECT}`);
    const style = await page.evaluate(() => {
      const s = getComputedStyle(document.body);
      return { bg: s.backgroundColor, fg: s.color, scheme: getComputedStyle(document.documentElement).colorScheme };
    });
    assert.equal(style.scheme, 'light dark');
    assert.equal(await page.getAttribute('meta[name="color-scheme"]', 'content'), 'light dark');
    const [bg, fg] = [luminance(style.bg), luminance(style.fg)];
    if (colorScheme === 'dark') assert.ok(bg < 0.05 && fg > 0.6, `${colorScheme}: ${JSON.stringify(style)}`);
    else assert.ok(bg > 0.9 && fg < 0.05, `${colorScheme}: ${JSON.stringify(style)}`);
    // Pass and fail fills differ in lightness, not only in hue.
    const fills = await page.evaluate(() => ['s-pass', 's-fail'].map(c => {
      const td = document.querySelector(`td.${c}`);
      return td && getComputedStyle(td).backgroundColor;
    }));
    assert.ok(fills.every(Boolean), 'the demo has pass and fail cells');
    const [lp, lf] = fills.map(luminance);
    const ratio = (Math.max(lp, lf) + 0.05) / (Math.min(lp, lf) + 0.05);
    assert.ok(ratio >= 1.5, `${colorScheme}: pass ${fills[0]} and fail ${fills[1]}: luminance ratio ${ratio.toFixed(2)}`);
    await context.close();
  }
});

test('under forced colours the breakage-start marker stays visible', { timeout: 60_000 }, async () => {
  const context = await browser.newContext({ forcedColors: 'active' });
  const page = await context.newPage();
  await page.goto(`${base}/p/${PROJECT}`);
  assert.equal(await page.evaluate(() => matchMedia('(forced-colors: active)').matches), true);
  const marker = await page.$eval('.grid td.start', td => {
    const s = getComputedStyle(td);
    return { outline: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  assert.notEqual(marker.outline, 'none');
  assert.ok(marker.width >= 2, JSON.stringify(marker));
  await context.close();
});

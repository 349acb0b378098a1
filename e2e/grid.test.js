// Browser end-to-end test: starts the real `trellis` server on its own port with its own SQLite
// database (seeded with the demo project), posts a report as a runner would, and drives Debian's
// Chromium through the grid, the filter island and a cell page. Any console error fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

const BIN = process.env.TRELLIS_BIN;
const SITE = process.env.SITE_ROOT;
const PROJECT = 'demo-wireguard-linux-compat';
let dir, server, base, token, browser, serverLog = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function waitForHealth(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try { if ((await fetch(url)).ok) return; } catch { /* not up yet */ }
    if (server.exitCode !== null) throw new Error(`server exited early:\n${serverLog}`);
    await new Promise(r => setTimeout(r, 200));
  }
  throw new Error(`server not healthy after ${ms} ms:\n${serverLog}`);
}

before(async () => {
  assert.ok(BIN && SITE, 'TRELLIS_BIN and SITE_ROOT must be set (make test-e2e sets them)');
  dir = mkdtempSync(join(tmpdir(), 'trellis-e2e-'));
  const env = { ...process.env, DATABASE_URL: `sqlite://${dir}/e2e.db?mode=rwc`, RUST_LOG: 'warn' };
  token = execFileSync(BIN, ['runner', 'add', 'e2e-runner'], { env }).toString().trim();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve', '--demo', '--addr', `127.0.0.1:${port}`, '--site-root', SITE], { env });
  server.stdout.on('data', d => { serverLog += d; });
  server.stderr.on('data', d => { serverLog += d; });
  await waitForHealth(`${base}/api/v1/health`, 120_000);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A page that records console errors and uncaught exceptions. */
async function watchedPage(options = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  const problems = [];
  page.on('console', m => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', e => problems.push(`page error: ${e.message}`));
  return { page, problems, context };
}

const visibleRows = page => page.$$eval('tr[data-kernel]:not([hidden])', rows => rows.map(r => ({
  kernel: r.dataset.kernel, stream: r.dataset.stream, arch: r.dataset.arch, failing: r.hasAttribute('data-failing'),
})));

test('the home page lists the labelled demo project', { timeout: 60_000 }, async () => {
  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/`);
  assert.match(await page.textContent('body'), /Demo data/);
  assert.match(await page.textContent('.project'), /demo data/);
  await page.click(`text=${PROJECT}`);
  await page.waitForSelector('table.grid');
  assert.deepEqual(problems, []);
  await context.close();
});

test('the filter island filters rows instantly and keeps its state in the URL', { timeout: 90_000 }, async () => {
  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/p/${PROJECT}`);
  // The island announces the row count once it has hydrated.
  await page.waitForFunction(() => /kernels shown/.test(document.querySelector('#row-count')?.textContent ?? ''));
  const all = await visibleRows(page);
  assert.ok(all.length > 100, `expected the demo's kernels, saw ${all.length}`);
  assert.deepEqual([...new Set(all.map(r => r.stream))], ['el9', 'el8', 'el7']);

  await page.fill('input[name="q"]', '687.1');
  await page.waitForFunction(() => /^\?q=687\.1$/.test(location.search));
  let rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.kernel.includes('687.1')), JSON.stringify(rows));
  assert.ok(rows.length < all.length);
  // Groups without a visible row are hidden too.
  assert.equal(await page.isVisible('tbody[data-stream="el7"]'), false);

  await page.fill('input[name="q"]', '');
  await page.check('input[name="failing"]');
  await page.selectOption('select[name="arch"]', 'aarch64');
  rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.failing && r.arch === 'aarch64'), JSON.stringify(rows));
  assert.equal(new URL(page.url()).search, '?arch=aarch64&failing=1');

  await page.uncheck('input[name="failing"]');
  await page.selectOption('select[name="arch"]', '');
  await page.check('input[name="stream"][value="el7"]');
  rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.stream === 'el7'));
  assert.match(await page.textContent('#row-count'), new RegExp(`^${rows.length} of ${all.length} kernels shown$`));

  // A reload (or a shared link) shows the same view.
  await page.reload();
  await page.waitForFunction(() => /kernels shown/.test(document.querySelector('#row-count')?.textContent ?? ''));
  assert.equal(await page.isChecked('input[name="stream"][value="el7"]'), true);
  assert.deepEqual(await visibleRows(page), rows);
  // The paging link carries the filter.
  assert.match(await page.getAttribute('a[data-page="1"]', 'href'), /stream=el7&page=1$/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('filters work without JavaScript', { timeout: 60_000 }, async () => {
  const { page, context } = await watchedPage({ javaScriptEnabled: false });
  await page.goto(`${base}/p/${PROJECT}?failing=1&stream=el7`);
  const rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.failing && r.stream === 'el7'), JSON.stringify(rows));
  await context.close();
});

test('a posted report changes its cell, and the cell page shows its escaped log', { timeout: 60_000 }, async () => {
  const grid = await (await fetch(`${base}/api/v1/projects/${PROJECT}/grid?stream=el9`)).json();
  const newest = grid.grid.columns[0];
  // Pick a kernel the newest commit was not tested on yet.
  const row = grid.grid.groups[0].rows.find(r => r.cells[0] === null);
  assert.ok(row, 'the demo leaves untested cells on the newest commit');
  const report = {
    project: PROJECT,
    kernel: { version: row.uname },
    commit: { sha: newest.sha },
    status: 'fail',
    stages: [{ name: 'build', status: 'fail', duration_s: 41.5 }],
    started_at: '2026-11-26T10:00:00Z',
    finished_at: '2026-11-26T10:03:00Z',
    log: "src/queueing.h:85:41: error: 'struct sk_buff' has no member named 'headers_end'\n<script>window.pwned = 1</script>\n",
    run_id: 'e2e-run-1',
    metadata: { compiler: 'gcc 11.4.1' },
  };
  const post = body => fetch(`${base}/api/v1/reports`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const created = await post(report);
  assert.equal(created.status, 201);
  const receipt = await created.json();
  const again = await post(report);
  assert.equal(again.status, 200);
  assert.equal((await again.json()).id, receipt.id);

  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/p/${PROJECT}?q=${encodeURIComponent(row.uname)}&stream=el9`);
  const cell = page.locator(`tr[data-kernel="${row.uname}"] td`).first();
  assert.equal((await cell.textContent()).trim(), '✗');
  assert.match(await cell.locator('a').getAttribute('title'), /fail \(1 report: 1 fail\)/);
  await cell.locator('a').click();
  await page.waitForSelector(`#report-${receipt.id}`);
  assert.match(await page.textContent('pre.log'), /<script>window.pwned = 1<\/script>/);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.match(await page.textContent('.metadata'), /gcc 11\.4\.1/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('breakages, kernel, commit and signature pages show the demo breakages', { timeout: 90_000 }, async () => {
  const api = await (await fetch(`${base}/api/v1/projects/${PROJECT}/breakages`)).json();
  const moduleCaused = api.breakages.find(b => b.attribution === 'module' && b.stream === 'el7');
  const kernelCaused = api.breakages.find(b => b.attribution === 'kernel' && b.stream === 'el9');
  assert.ok(moduleCaused && kernelCaused, JSON.stringify(api.breakages.map(b => [b.stream, b.attribution])));
  assert.equal(moduleCaused.open, false);
  assert.ok(moduleCaused.commit_bisect, 'the module-caused breakage has a commit-axis hint');

  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/p/${PROJECT}`);
  await page.click('text=Breakages, bisect hints and error signatures');
  await page.waitForSelector(`section[id="${moduleCaused.id}"]`);
  const card = page.locator(`section[id="${moduleCaused.id}"]`);
  assert.match(await card.textContent(), /a module commit broke it/);
  assert.match(await card.textContent(), new RegExp(`fixed by commit ${moduleCaused.fixed_by_commit.slice(0, 7)}`));

  // The signature groups the module's #error across kernels.
  await card.locator('.signature a').click();
  await page.waitForSelector('h1:text("Error signature")');
  assert.match(await page.textContent('main'), /appears on \d+ kernels since/);
  assert.ok((await page.$$('table.history tbody tr')).length >= 3);

  await page.goto(`${base}/p/${PROJECT}/breakages?attribution=kernel`);
  const kcard = page.locator(`section[id="${kernelCaused.id}"]`);
  assert.match(await kcard.textContent(), /a kernel update broke it/);
  await kcard.locator('a', { hasText: kernelCaused.first_bad_kernel }).first().click();
  await page.waitForSelector('h2:text("Results along the commits (newest first)")');
  assert.match(await page.textContent('h1'), new RegExp(kernelCaused.first_bad_kernel.replaceAll('.', '\\.')));

  await page.goto(`${base}/p/${PROJECT}/commit/${moduleCaused.first_bad_commit}`);
  assert.match(await page.textContent('main'), /Breakages that start here \(1\)/);
  assert.deepEqual(problems, []);
  await context.close();
});

// Browser end-to-end test: starts the real `trellis` server on its own port with its own SQLite
// database (seeded with the demo project), posts a report as a runner would, and drives Debian's
// Chromium through the grid, the filter island and a cell page. Any console error fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForHealth, launchChromium } from './harness.js';

const BIN = process.env.TRELLIS_BIN;
const SITE = process.env.SITE_ROOT;
const PROJECT = 'demo-wireguard-linux-compat';
let dir, server, base, token, browser, serverLog = '';

before(async () => {
  assert.ok(BIN && SITE, 'TRELLIS_BIN and SITE_ROOT must be set (make test-e2e sets them)');
  dir = mkdtempSync(join(tmpdir(), 'trellis-e2e-'));
  const env = { ...process.env, DATABASE_URL: `sqlite://${dir}/e2e.db?mode=rwc`, RUST_LOG: 'warn' };
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve', '--demo', '--addr', `127.0.0.1:${port}`, '--site-root', SITE], { env });
  server.stdout.on('data', d => { serverLog += d; });
  server.stderr.on('data', d => { serverLog += d; });
  await waitForHealth(`${base}/api/v1/health`, 120_000, server, () => serverLog);
  // The demo project exists once the server has seeded it: a runner is then scoped to it.
  token = execFileSync(BIN, ['runner', 'add', 'e2e-runner', '--scope', PROJECT], { env }).toString().trim();
  browser = await launchChromium();
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

/** Waits until the filter island has hydrated: it marks its form once it applies changes. */
const hydrated = page => page.waitForSelector('form.filters[data-live-filter]');
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
  await hydrated(page);
  const all = await visibleRows(page);
  assert.ok(all.length > 100, `expected the demo's kernels, saw ${all.length}`);
  const streams = [...new Set(all.map(r => r.stream))];
  assert.ok(['el9', 'el8', 'el7'].every(s => streams.includes(s)), JSON.stringify(streams));

  await page.fill('input[name="q"]', '687.1');
  await page.waitForFunction(() => /^\?q=687\.1$/.test(location.search));
  let rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.kernel.includes('687.1')), JSON.stringify(rows));
  assert.ok(rows.length < all.length);
  // Groups without a visible row are hidden too; the others say how many they keep.
  assert.equal(await page.isVisible('tbody[data-stream="el7"]'), false);
  const el8 = rows.filter(r => r.stream === 'el8').length;
  assert.match(await page.textContent('tbody[data-stream="el8"] .stream-count'), new RegExp(`^ ${el8} of \\d+ kernels$`));
  assert.equal(await page.isVisible('#no-match'), false);
  await page.fill('input[name="q"]', 'no-such-kernel');
  assert.equal(await page.isVisible('#no-match'), true);
  // Error text is searched too: the rows with a cell that failed with it, whatever their name.
  await page.fill('input[name="q"]', 'NETIF_napi');
  rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => !r.kernel.includes('napi')), JSON.stringify(rows));

  await page.fill('input[name="q"]', '');
  await page.check('input[name="failing"]');
  rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.length < all.length && rows.every(r => r.failing), JSON.stringify(rows));
  await page.selectOption('select[name="arch"]', 'x86_64');
  rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.failing && r.arch === 'x86_64'), JSON.stringify(rows));
  assert.equal(new URL(page.url()).search, '?arch=x86_64&failing=1');

  await page.uncheck('input[name="failing"]');
  await page.selectOption('select[name="arch"]', '');
  await page.check('input[name="stream"][value="el7"]');
  rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.stream === 'el7'));
  assert.match(await page.textContent('#row-count'), new RegExp(`^${rows.length} of ${all.length} kernels shown$`));

  // A reload (or a shared link) shows the same view, and the server sends only those rows.
  await page.reload();
  await hydrated(page);
  assert.equal(await page.isChecked('input[name="stream"][value="el7"]'), true);
  assert.deepEqual(await visibleRows(page), rows);
  assert.equal(await page.locator('tr[data-kernel]').count(), rows.length);
  // Tested commits only by default, untested runs collapsed into markers; the toggle shows every
  // commit (more than a page of them), and the paging link carries the filter.
  assert.ok(await page.locator('thead th.gap').count() > 0);
  await page.check('input[name="all"]');
  await page.waitForSelector('a[data-page="1"]');
  assert.equal(await page.locator('thead th.gap').count(), 0);
  assert.match(await page.getAttribute('a[data-page="1"]', 'href'), /stream=el7&all=1&page=1$/);
  assert.match(await page.textContent('nav.pager .range'), /^commits 1–50 /);
  await page.uncheck('input[name="all"]');
  await page.waitForSelector('thead th.gap');
  assert.match(await page.textContent('nav.pager .range'), /^tested commits 1–\d+ /);

  // A wider filter than the page was rendered under fetches the rows it lacks.
  await page.uncheck('input[name="stream"][value="el7"]');
  await page.waitForFunction(n => document.querySelectorAll('tr[data-kernel]:not([hidden])').length === n, all.length);
  assert.deepEqual(await visibleRows(page), all);
  assert.equal(new URL(page.url()).search, '');
  assert.match(await page.textContent('#row-count'), new RegExp(`^${all.length} of ${all.length} kernels shown$`));
  assert.deepEqual(problems, []);
  await context.close();
});

test('input made before the island hydrates is applied once it does', { timeout: 90_000 }, async () => {
  // A stream with a row failing now, from the API.
  const failing = await (await fetch(`${base}/api/v1/projects/${PROJECT}/grid?failing=1`)).json();
  const stream = failing.grid.groups[0].stream;
  const { page, problems, context } = await watchedPage();
  // Hold the bundle back until the boxes are ticked, as a slow CPU or network would.
  let release;
  const held = new Promise(resolve => { release = resolve; });
  await page.route('**/*.wasm', async route => { await held; await route.continue(); });
  await page.goto(`${base}/p/${PROJECT}`, { waitUntil: 'domcontentloaded' });
  await page.check(`input[name="stream"][value="${stream}"]`);
  await page.check('input[name="failing"]');
  assert.equal(new URL(page.url()).search, '');
  release();
  await page.waitForFunction(s => location.search === `?stream=${s}&failing=1`, stream, { timeout: 10_000 }).catch(async e => {
    const state = await page.evaluate(() => [location.search, document.querySelector('form.filters')?.outerHTML.slice(0, 300),
      [...document.querySelectorAll('form.filters input:checked')].map(i => i.value)]);
    throw new Error(`${stream} ${JSON.stringify(state)} ${problems} ${e}`);
  });
  const rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.stream === stream && r.failing), JSON.stringify(rows));
  assert.match(await page.textContent('#row-count'), new RegExp(`^${rows.length} of \\d+ kernels shown$`));
  assert.deepEqual(problems, []);
  await context.close();
});

test('the grid is one tab stop, walked with arrow keys, j/k between failures and / to search', { timeout: 90_000 }, async () => {
  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/p/${PROJECT}`);
  await hydrated(page);
  assert.equal(await page.getAttribute('a.skip-link[href="#grid"]', 'href'), '#grid');
  assert.equal(await page.locator('table.grid a[tabindex="0"]').count(), 1);
  const active = () => page.evaluate(() => {
    const a = document.activeElement;
    const cell = a.closest('td, th');
    return { row: a.closest('tr')?.dataset.kernel, column: cell?.cellIndex, failing: /s-(fail|flaky)/.test(cell?.className ?? ''), title: a.title };
  });
  await page.focus('table.grid a[tabindex="0"]');
  const start = await active();
  await page.keyboard.press('ArrowRight');
  const right = await active();
  assert.equal(right.row, start.row);
  assert.ok(right.column > start.column, JSON.stringify([start, right]));
  await page.keyboard.press('ArrowDown');
  const down = await active();
  assert.notEqual(down.row, right.row);
  assert.equal(down.column, right.column);
  // The focused cell's column is marked, and the cell keeps being the one tab stop.
  assert.ok(await page.locator('thead .col-hi').count() === 1);
  assert.equal(await page.locator('table.grid a[tabindex="0"]').count(), 1);

  await page.keyboard.press('j');
  const first = await active();
  assert.ok(first.failing, JSON.stringify(first));
  assert.match(first.title, /^(fail|flaky) \(/);
  await page.keyboard.press('j');
  const second = await active();
  assert.ok(second.failing && (second.row !== first.row || second.column !== first.column));
  await page.keyboard.press('k');
  assert.deepEqual(await active(), first);

  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'q');
  assert.deepEqual(problems, []);
  await context.close();
});

test('at 390 px the kernel column shows the version, and the full name on focus', { timeout: 60_000 }, async () => {
  const { page, problems, context } = await watchedPage({ viewport: { width: 390, height: 844 } });
  await page.goto(`${base}/p/${PROJECT}`);
  const th = page.locator('tr[data-kernel] th').first();
  const width = await th.evaluate(el => el.getBoundingClientRect().width);
  assert.ok(width < 140, `kernel column ${width} px`);
  assert.doesNotMatch(await th.innerText(), /\.el\d/);
  await th.locator('a').focus();
  assert.match(await th.innerText(), /\.el\d/);
  assert.deepEqual(problems, []);
  await context.close();
});

test('filters work without JavaScript', { timeout: 60_000 }, async () => {
  const { page, context } = await watchedPage({ javaScriptEnabled: false });
  await page.goto(`${base}/p/${PROJECT}?failing=1&arch=x86_64`);
  const rows = await visibleRows(page);
  assert.ok(rows.length > 0 && rows.every(r => r.failing && r.arch === 'x86_64'), JSON.stringify(rows));
  // The server sends the filter's rows only, and says so.
  assert.equal(await page.locator('tr[data-kernel]').count(), rows.length);
  assert.match(await page.textContent('#row-count'), new RegExp(`^${rows.length} of \\d+ kernels shown$`));
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
  const kernelCaused = api.breakages.find(b => b.attribution === 'kernel');
  assert.ok(moduleCaused && kernelCaused, JSON.stringify(api.breakages.map(b => [b.stream, b.attribution])));
  assert.equal(moduleCaused.open, false);
  assert.ok(moduleCaused.commit_bisect, 'the module-caused breakage has a commit-axis hint');

  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/p/${PROJECT}`);
  await page.click('text=Breakages, bisect hints and error signatures');
  await page.waitForSelector(`section[id="${moduleCaused.id}"]`);
  const card = page.locator(`section[id="${moduleCaused.id}"]`);
  assert.match(await card.textContent(), /a module commit broke it/);
  if (moduleCaused.fixed_by_commit) {
    assert.match(await card.textContent(), new RegExp(`fixed by commit ${moduleCaused.fixed_by_commit.slice(0, 7)}`));
  }

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

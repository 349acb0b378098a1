// Browser test of the live grid: starts the real `trellis` server with its own SQLite database,
// opens a project's grid in Debian's Chromium, posts reports as a runner would and sees their
// cells change without a reload; then restarts the server on the same port and database and sees
// the page reconnect by itself and keep following; and hides the tab, which lets its stream go
// and catches up on what it missed once shown again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForHealth, launchChromium } from './harness.js';

const BIN = process.env.TRELLIS_BIN;
const SITE = process.env.SITE_ROOT;
const PROJECT = 'live-e2e';
const KERNEL = '4.18.0-553.el8_10.x86_64';
const sha = n => n.toString(16).padStart(40, '0');
let dir, env, port, base, token, server, browser, serverLog = '';

async function start() {
  server = spawn(BIN, ['serve', '--addr', `127.0.0.1:${port}`, '--site-root', SITE], { env });
  server.stdout.on('data', d => { serverLog += d; });
  server.stderr.on('data', d => { serverLog += d; });
  await waitForHealth(`${base}/api/v1/health`, 60_000, server, () => serverLog);
}

/** Stops the server as a service manager would (SIGTERM) and waits for it to exit. */
async function stop() {
  const exited = new Promise(resolve => server.once('exit', resolve));
  server.kill('SIGTERM');
  await exited;
}

const api = (path, body) => fetch(`${base}/api/v1${path}`, {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
  body: JSON.stringify(body),
});

async function postReport(commit, status, runId) {
  const res = await api('/reports', {
    project: PROJECT,
    kernel: { version: KERNEL },
    commit: { sha: sha(commit) },
    status,
    stages: [{ name: 'build', status, duration_s: 12.5 }],
    started_at: '2026-11-26T10:00:00Z',
    finished_at: '2026-11-26T10:03:00Z',
    log: `log of ${runId}\n`,
    run_id: runId,
  });
  assert.equal(res.status, 201, await res.text());
}

before(async () => {
  assert.ok(BIN && SITE, 'TRELLIS_BIN and SITE_ROOT must be set (make test-e2e sets them)');
  dir = mkdtempSync(join(tmpdir(), 'trellis-live-e2e-'));
  env = { ...process.env, DATABASE_URL: `sqlite://${dir}/e2e.db?mode=rwc`, RUST_LOG: 'warn' };
  execFileSync(BIN, ['project', 'add', PROJECT], { env, stdio: 'ignore' });
  token = execFileSync(BIN, ['runner', 'add', 'e2e-runner', '--scope', PROJECT], { env }).toString().trim();
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await start();
  // Three commits, and one kernel tested on the oldest: the newer cells start blank.
  const commits = [3, 2, 1].map(n => ({ sha: sha(n), parents: n > 1 ? [sha(n - 1)] : [], subject: `commit ${n}` }));
  assert.equal((await api(`/projects/${PROJECT}/commits`, { commits })).status, 200);
  await postReport(1, 'pass', 'run-1');
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The grid cell of KERNEL at commit `n`: its symbol, class, title and link (markers of untested
 * commits are no commit's column). */
const cell = (page, n) => page.evaluate(([kernel, sha]) => {
  const column = [...document.querySelectorAll('thead th[data-sha]')].findIndex(th => th.dataset.sha === sha);
  const row = [...document.querySelectorAll('tr[data-kernel]')].find(r => r.dataset.kernel === kernel);
  const td = row.querySelectorAll('td:not(.gap)')[column];
  const a = td.querySelector('a');
  return { symbol: td.textContent.trim(), class: td.className, title: a?.title ?? '', href: a?.getAttribute('href') ?? '' };
}, [KERNEL, sha(n)]);

async function waitForCell(page, n, symbol) {
  await page.waitForFunction(([kernel, sha, symbol]) => {
    const column = [...document.querySelectorAll('thead th[data-sha]')].findIndex(th => th.dataset.sha === sha);
    const row = [...document.querySelectorAll('tr[data-kernel]')].find(r => r.dataset.kernel === kernel);
    return column >= 0 && row?.querySelectorAll('td:not(.gap)')[column]?.textContent.trim() === symbol;
  }, [KERNEL, sha(n), symbol], { timeout: 20_000 });
  return cell(page, n);
}

test('the grid shows results live, follows on after a server restart and catches up after hiding', { timeout: 120_000 }, async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const problems = [];
  // While the server restarts, the browser logs its failed reconnections: those are expected.
  page.on('console', m => {
    if (m.type() === 'error' && !/net::ERR_|EventSource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', e => problems.push(`page error: ${e.message}`));

  await page.goto(`${base}/p/${PROJECT}`);
  await page.waitForSelector('p.live-status[data-live="open"]');
  assert.match(await page.textContent('p.live-status'), /Live/);
  // Commit 2 is untested: no column of its own, but part of a marker until its first result.
  assert.equal(await page.locator(`thead th[data-sha="${sha(2)}"]`).count(), 0);
  assert.ok(await page.locator('thead th.gap').count() > 0);
  // Survives only as long as the page is not reloaded.
  await page.evaluate(() => { window.sameDocument = true; });

  await postReport(2, 'fail', 'run-2');
  const failed = await waitForCell(page, 2, '✗');
  assert.match(failed.class, /\bs-fail\b/);
  assert.match(failed.title, /^fail \(1 report: 1 fail\)/);
  assert.equal(failed.href, `/p/${PROJECT}/cell/el8/${KERNEL}/${sha(2)}`);
  // The live cell is drawn as a reload draws it (a breakage may since mark its start).
  const fresh = await context.newPage();
  await fresh.goto(`${base}/p/${PROJECT}`);
  const reloaded = await cell(fresh, 2);
  assert.equal(reloaded.symbol, failed.symbol);
  assert.equal(reloaded.href, failed.href);
  assert.ok(reloaded.title.startsWith(failed.title), `${reloaded.title} / ${failed.title}`);
  await fresh.close();

  // A restart: the page notices, and reconnects by itself once the server is back.
  await stop();
  await page.waitForSelector('p.live-status[data-live="reconnecting"]');
  await start();
  await postReport(3, 'error', 'run-3');
  const errored = await waitForCell(page, 3, '!');
  assert.match(errored.class, /\bs-error\b/);
  assert.match(errored.title, /error \(1 report: 1 error\)/);
  await page.waitForSelector('p.live-status[data-live="open"]');

  // A hidden tab gives its stream up, and catches up on what it missed once shown again.
  const setHidden = hidden => page.evaluate(hidden => {
    Object.defineProperty(document, 'hidden', { value: hidden, configurable: true });
    document.dispatchEvent(new Event('visibilitychange'));
  }, hidden);
  await setHidden(true);
  await page.waitForSelector('p.live-status:not([data-live])', { state: 'attached' });
  await postReport(1, 'fail', 'run-4');
  await new Promise(r => setTimeout(r, 2500));
  assert.equal((await cell(page, 1)).symbol, '✓', 'a hidden page does not follow');
  await setHidden(false);
  assert.match((await waitForCell(page, 1, '≈')).title, /flaky \(2 reports: 1 pass, 1 fail\)/);
  assert.equal(await page.evaluate(() => window.sameDocument), true, 'the page was not reloaded');
  assert.deepEqual(problems, []);
  await context.close();
});

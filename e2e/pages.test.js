// The workbench pages in a browser: the "now" summary and trust figures on the home page, the
// coverage page, the cell page (numbered log lines with anchors, jump to the first error,
// neighbours, raw log), the breakage card's copy button, and no sideways overflow at 390 px on the
// cell, kernel, commit, signature and coverage pages.
// Starts its own `trellis` server (with the demo project, as grid.test.js does) and posts a small
// project of its own, so what it checks does not depend on the demo's data.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitForHealth, launchChromium } from './harness.js';

const BIN = process.env.TRELLIS_BIN;
const SITE = process.env.SITE_ROOT;
const PROJECT = 'e2e-pages';
const EL8 = ['4.18.0-513.el8_9.x86_64', '4.18.0-553.el8_10.x86_64'];
const sha = n => String(n).repeat(40);
const LOG = 'make -C /lib/modules/build M=/src modules\n  CC [M]  /src/queueing.o\n'
  + "/src/queueing.h:85:41: error: 'struct sk_buff' has no member named 'headers_end'\n"
  + 'make[1]: *** [Makefile:10: /src/queueing.o] Error 1\n';
let dir, server, base, token, browser, serverLog = '';
/** The report id of the failing cell (553 at commit 4). */
let failing;

async function api(path, body) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${path}: ${res.status} ${text}`);
  return JSON.parse(text);
}

async function post(kernel, commit, status, log) {
  const at = new Date(Date.now() - (6 - commit) * 3600_000).toISOString();
  const answer = await api('/api/v1/reports', {
    project: PROJECT, kernel: { version: kernel }, commit: { sha: sha(commit) }, status,
    started_at: at, finished_at: at, log, run_id: `${kernel}-${commit}-${status}`,
  });
  return answer.id;
}

before(async () => {
  assert.ok(BIN && SITE, 'TRELLIS_BIN and SITE_ROOT must be set (make test-e2e sets them)');
  dir = mkdtempSync(join(tmpdir(), 'trellis-e2e-pages-'));
  const env = { ...process.env, DATABASE_URL: `sqlite://${dir}/e2e.db?mode=rwc`, RUST_LOG: 'warn' };
  execFileSync(BIN, ['project', 'add', PROJECT], { env, stdio: 'ignore' });
  token = execFileSync(BIN, ['runner', 'add', 'e2e-runner', '--scope', PROJECT], { env }).toString().trim();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(BIN, ['serve', '--demo', '--addr', `127.0.0.1:${port}`, '--site-root', SITE], { env });
  server.stdout.on('data', d => { serverLog += d; });
  server.stderr.on('data', d => { serverLog += d; });
  await waitForHealth(`${base}/api/v1/health`, 120_000, server, () => serverLog);
  // Five commits; the newer kernel passes on 1, is untested on 2 and 3, fails from 4: a
  // module commit broke it, with two untested commits to bisect.
  const commits = [5, 4, 3, 2, 1].map(i => ({
    sha: sha(i), parents: i === 1 ? [] : [sha(i - 1)], subject: `commit ${i}`,
  }));
  await api(`/api/v1/projects/${PROJECT}/commits`, { commits });
  await post(EL8[0], 1, 'pass', 'ok\n');
  await post(EL8[0], 4, 'error', 'runner: no space left on device\n');
  await post(EL8[1], 1, 'pass', 'ok\n');
  failing = await post(EL8[1], 4, 'fail', LOG);
  await post(EL8[1], 5, 'fail', LOG);
  // Breakages are computed in the background: wait until they are current.
  for (let i = 0; i < 100; i++) {
    const b = await (await fetch(`${base}/api/v1/projects/${PROJECT}/breakages`)).json();
    if (b.current && b.breakages.length === 1) break;
    await new Promise(r => setTimeout(r, 100));
  }
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

const cellPath = (kernel, commit) => `/p/${PROJECT}/cell/el8/${kernel}/${sha(commit)}`;

test('the home page says what is broken now and links to it', { timeout: 60_000 }, async () => {
  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/`);
  const ours = page.locator('li.project', { has: page.locator(`a.project-name:text-is("${PROJECT}")`) });
  assert.match(await ours.locator('.now h2').textContent(), /^Broken now: 1 open breakage$/);
  const line = await ours.locator('.now-line').textContent();
  assert.match(line, /^Enterprise Linux 8: module commit 4444444 commit 4 \(1 kernel\) · queueing\.h: error: /);
  assert.match(line, /open for \d+ h/);
  assert.match(line, /next: bisect: 2 untested commits, test 3333333$/);
  // Our project is real: the demo label sits on the demo project only, no site-wide banner.
  assert.equal(await ours.locator('.demo-note').count(), 0);
  assert.equal(await page.locator('.demo-banner').count(), 0);
  const time = ours.locator('.now-line time');
  assert.match(await time.getAttribute('title'), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  await ours.locator('.now-stream').click();
  await page.waitForURL(/\/breakages#.+/);
  assert.equal(await page.isVisible(`[id="${new URL(page.url()).hash.slice(1)}"]`), true);
  assert.deepEqual(problems, []);
  await context.close();
});

test('the coverage page gives the trust figure of what was posted, and lists what head lacks', { timeout: 90_000 }, async () => {
  const coverage = `/p/${PROJECT}/coverage`;
  for (const viewport of [{ width: 1440, height: 900 }, { width: 390, height: 844 }]) {
    const { page, problems, context } = await watchedPage({ viewport });
    // Linked from the project's grid page.
    await page.goto(`${base}/p/${PROJECT}`);
    await Promise.all([page.waitForURL(`${base}${coverage}`), page.click(`a[href="${coverage}"]`)]);
    // Head is commit 5: of the two el8 kernels only the newer has a result there (posted 1 h ago).
    assert.deepEqual(await page.$$eval('ul.trust li', lis => lis.map(li => li.textContent)),
      ['el8 (Enterprise Linux 8): 50% of kernels tested at head (1 of 2), newest result 1 h ago']);
    assert.match(await page.textContent('.health-problems'), /No health problems/);
    // The runner that posted: five reports, one of them a runner error.
    const runner = await page.$$eval('tr:has(th:text-is("e2e-runner")) td', tds => tds.map(td => td.textContent));
    assert.deepEqual([runner[0], runner[3], runner[4], runner[6]], ['yes', '5', '20%', PROJECT]);
    assert.match(await page.textContent('main'), /No kernel sources: kernels come only from reports/);
    assert.match(await page.textContent('main'), /Every known kernel has at least one result/);
    // The kernel missing at head, listed as untested since the head commit.
    await Promise.all([page.waitForURL(/\?since=5{40}$/), page.click('text=1 kernel without a result at head')]);
    assert.equal(await page.inputValue('#since'), sha(5));
    assert.deepEqual(await page.$$eval('table.coverage tbody th a', as => as.map(a => a.textContent)), [EL8[0]]);
    // Asked through the form: every kernel has a result on commit 4 or newer.
    await page.fill('#since', sha(4));
    await Promise.all([page.waitForURL(/\?since=4{40}$/), page.click('.since-form button')]);
    assert.match(await page.textContent('main'), /Every known kernel has a result on this commit or a newer one/);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= viewport.width, `the coverage page is ${width} px wide at ${viewport.width}`);
    assert.deepEqual(problems, []);
    await context.close();
  }
});

test('the home page gives each stream\'s trust figure, linked to the coverage page', { timeout: 30_000 }, async () => {
  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}/`);
  const ours = page.locator('li.project', { has: page.locator(`a.project-name:text-is("${PROJECT}")`) });
  assert.equal(await ours.locator('.trust li').textContent(), 'el8: 50% of kernels tested at head, newest result 1 h ago');
  assert.equal(await ours.locator('.trust a').getAttribute('href'), `/p/${PROJECT}/coverage`);
  assert.deepEqual(problems, []);
  await context.close();
});

test('the breakage card copies its git bisect line', { timeout: 60_000 }, async () => {
  const { page, problems, context } = await watchedPage();
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  await page.goto(`${base}/p/${PROJECT}/breakages`);
  const command = `git bisect start ${sha(4)} ${sha(1)}`;
  assert.equal((await page.textContent('.command pre')).trim(), command);
  // The button shows once the island has hydrated.
  await page.waitForSelector('button.copy:not([hidden])');
  await page.click('button.copy');
  await page.waitForFunction(() => document.querySelector('button.copy').textContent === 'copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), command);
  assert.deepEqual(problems, []);
  await context.close();
});

test('without JavaScript the command is plain text and no dead button shows', { timeout: 30_000 }, async () => {
  const { page, context } = await watchedPage({ javaScriptEnabled: false });
  await page.goto(`${base}/p/${PROJECT}/breakages`);
  assert.equal(await page.isVisible('button.copy'), false);
  assert.equal(await page.isVisible('.command pre'), true);
  await context.close();
});

test('the cell page numbers its log, jumps to the error and shows its neighbours', { timeout: 60_000 }, async () => {
  const { page, problems, context } = await watchedPage();
  await page.goto(`${base}${cellPath(EL8[1], 4)}`);
  const line = `#r${failing}-L3`;
  assert.equal(await page.getAttribute(line, 'class'), 'line error-line');
  assert.match(await page.textContent(line), /error: 'struct sk_buff' has no member named 'headers_end'/);
  // Line numbers are drawn, not text: copying the log copies no numbers.
  assert.doesNotMatch(await page.textContent(`#r${failing}-L1`), /^1/);
  await page.click('text=jump to first error');
  assert.equal(new URL(page.url()).hash, line);
  assert.equal(await page.evaluate(sel => document.querySelector(sel).matches(':target'), line), true);
  // Neighbours: the parent commit untested, the previous kernel with a runner error.
  const neighbours = await page.$$eval('.neighbours li', lis => lis.map(li => li.textContent.trim()));
  assert.deepEqual(neighbours, [
    `parent commit ${sha(3).slice(0, 7)}: untested`,
    `previous kernel ${EL8[0]}: ! error`,
  ]);
  await page.click('.neighbours li[data-axis="kernel"] a');
  await page.waitForURL(`${base}${cellPath(EL8[0], 4)}`);
  assert.match(await page.textContent('.report .note'), /infrastructure/);
  assert.equal(await page.getAttribute('.report details', 'open'), '');
  // The raw log.
  await page.goto(`${base}${cellPath(EL8[1], 4)}`);
  const raw = await page.getAttribute('a[download]', 'href');
  const res = await fetch(new URL(raw, base));
  assert.equal(await res.text(), LOG);
  assert.deepEqual(problems, []);
  await context.close();
});

test('at 390 px the workbench pages do not overflow sideways', { timeout: 90_000 }, async () => {
  const { page, problems, context } = await watchedPage({ viewport: { width: 390, height: 844 } });
  await page.goto(`${base}${cellPath(EL8[1], 4)}`);
  const signature = await page.getAttribute('.cell-facts .signature a', 'href');
  for (const path of [
    cellPath(EL8[1], 4),
    `/p/${PROJECT}/kernel/el8/${EL8[1]}`,
    `/p/${PROJECT}/commit/${sha(4)}`,
    signature,
    `/p/${PROJECT}/breakages`,
    '/',
  ]) {
    await page.goto(`${base}${path}`);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${path} is ${width} px wide`);
  }
  assert.deepEqual(problems, []);
  await context.close();
});

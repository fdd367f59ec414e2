// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core.
// Run by tests/dashboard.rs, which owns the server and the MCP client, and talks to this script
// in lines: the script prints `LOADED <n>` once the page shows the mesh, the test makes a change
// through MCP and writes `CHANGED <name>` on stdin, the script waits for the page to show it,
// saves a screenshot and prints `OK`. Any failure exits non-zero with the reason on stderr.
//
// Environment: DASHBOARD_URL (the page, with ?swarm=...&refresh=0 so that only /events can
// update it), EXPECT_AGENTS, SCREENSHOT (PNG path; without it the script stops after LOADED),
// PLAYWRIGHT_CORE (the module's directory), CHROMIUM (the browser binary).
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const { chromium } = require(process.env.PLAYWRIGHT_CORE);
const url = process.env.DASHBOARD_URL;
const expected = Number(process.env.EXPECT_AGENTS);
const screenshot = process.env.SCREENSHOT;
// Long enough for a loaded 2-core CI machine; the test asserts on what appears, not on when.
const WAIT = 60000;

const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve, reject) => {
  lines.once('line', resolve);
  lines.once('close', () => reject(new Error('stdin closed before the test made its change')));
});

async function main() {
  // A fresh profile, and no background traffic: on a closed network chromium otherwise hangs on it.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'mesh-dashboard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1400, height: 1500 },
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const problems = [];
    page.on('pageerror', e => problems.push(`page error: ${e.message}`));
    page.on('console', m => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
    // Nothing may be fetched from anywhere but the server under test.
    const origin = new URL(url).origin;
    page.on('request', r => { if (!r.url().startsWith(origin)) problems.push(`external request: ${r.url()}`); });

    await page.goto(url);
    await page.waitForFunction(n => document.querySelectorAll('#graph .node').length === n, expected, { timeout: WAIT });
    await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, { timeout: WAIT });
    // Query and read the nodes in one evaluation, after waiting for every one to be coloured: an
    // /events notification may redraw the graph at any moment, and a circle read after the
    // redraw detached it has no computed style at all (fill ""). The check below still names
    // any node that stays uncoloured.
    const readNodes = () => [...document.querySelectorAll('#graph .node')].map(g => ({
      name: g.dataset.name, status: g.dataset.status, fill: getComputedStyle(g.querySelector('circle')).fill,
    }));
    const coloured = fill => Boolean(fill) && fill !== 'none' && fill !== 'rgb(0, 0, 0)';
    await page.waitForFunction(() => [...document.querySelectorAll('#graph .node')].every(g => {
      const fill = getComputedStyle(g.querySelector('circle')).fill;
      return fill && fill !== 'none' && fill !== 'rgb(0, 0, 0)';
    }), null, { timeout: WAIT }).catch(() => {});
    const nodes = await page.evaluate(readNodes);
    const statuses = ['active', 'initializing', 'degraded', 'recovering', 'failed'];
    for (const n of nodes) {
      if (!statuses.includes(n.status)) throw new Error(`node ${n.name} has no known status: ${JSON.stringify(n)}`);
      if (!coloured(n.fill)) throw new Error(`node ${n.name} is not coloured by status: ${JSON.stringify(n)}`);
    }
    const wanted = new URL(url).searchParams.get('swarm');
    const selector = await page.$eval('#swarm', s => ({ value: s.value, options: [...s.options].map(o => o.value) }));
    if (selector.value !== wanted || !selector.options.includes(wanted)) throw new Error(`the selector does not show swarm ${wanted}: ${JSON.stringify(selector)}`);
    const cards = await page.$$eval('#agents .card', cs => cs.length);
    if (cards !== expected) throw new Error(`${cards} agent cards, expected ${expected}`);
    await page.waitForSelector('#metrics .chart[data-metric="tool_calls"] svg', { timeout: WAIT });
    const edges = await page.$$eval('#graph .edge', es => es.length);
    if (edges === 0) throw new Error('the topology graph has no links');
    console.log(`LOADED ${nodes.length} nodes, ${edges} links`);
    if (!screenshot) {
      if (problems.length) throw new Error(problems.join('\n'));
      console.log('OK');
      return;
    }

    const changed = await nextLine();
    const name = changed.replace(/^CHANGED /, '').trim();
    await page.waitForSelector(`#graph .node[data-name="${name}"]`, { timeout: WAIT });
    await page.waitForFunction(n => document.querySelectorAll('#graph .node').length === n, expected + 1, { timeout: WAIT });
    await page.waitForFunction(n => document.getElementById('messages').textContent.includes(n), name, { timeout: WAIT });
    // Its worker, asked for with the claude profile, in the Workers panel under the swarm's budget.
    await page.waitForFunction(n => [...document.querySelectorAll('#workers tr[data-agent-id]')]
      .some(r => r.textContent.includes(n) && r.textContent.includes('claude') && r.textContent.includes('requested')),
    name, { timeout: WAIT });
    const budget = await page.$eval('#workers .budget', b => b.textContent);
    if (!budget.includes('0/4 running') || !budget.includes('of $5 spent')) throw new Error(`the budget line says: ${budget}`);
    // The page has settled on the change; the screenshot shows it.
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    if (problems.length) throw new Error(problems.join('\n'));
    console.log('OK');
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), e => {
  console.error(`dashboard browser test failed: ${e.stack || e}`);
  process.exit(1);
});

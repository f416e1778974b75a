// Drives Debian's chromium (playwright-core) through the demo console (edge-worker/assets) served
// by the edge, step by step with the Rust test (tests/tests/demo_page.rs), which runs discord-sim,
// the holder and wrangler dev. Protocol on stdout, one line each; the test answers "NEXT" on stdin
// after acting on each line:
//   LIVE                 the page is connected
//   FEED                 the sim's messages are in the feed
//   SENT                 the page sent a message and it came back in the feed
//   DROPOUT              a voice drop-out alert is shown
//   OFFLINE              the holder is gone: the page shows Discord offline
//   DONE <json>          the holder is back: final page state
// Usage: node demo.mjs <edge-origin> <channel-id> <user-data-dir> <screenshot-dir>
import { createRequire } from 'node:module';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');
const [origin, channel, userDataDir, shots] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin });
const iter = lines[Symbol.asyncIterator]();
const next = async () => {
  const { value, done } = await iter.next();
  if (done || value.trim() !== 'NEXT') throw new Error(`expected NEXT from the test, got ${value}`);
};
const say = (s) => process.stdout.write(s + '\n');
const T = { timeout: 30000 };

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await context.newPage();
  page.on('console', (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));
  await page.goto(origin + '/');
  await page.waitForSelector('#conn[data-state="live"]', T);
  say('LIVE');
  await next();

  const rowWith = (text) => page.waitForFunction(
    (t) => [...document.querySelectorAll('#feed li')].some((li) => li.textContent.includes(t)), text, T);
  await rowWith('sim says 2');
  await page.screenshot({ path: `${shots}/demo-feed.png` });
  say('FEED');
  await next();

  await page.waitForFunction((c) => [...document.querySelectorAll('#send-channel option')].some((o) => o.value === c), channel, T);
  await page.selectOption('#send-channel', channel);
  await page.fill('#send-content', 'hello from the page');
  await page.click('#send-form button[type="submit"]');
  await page.waitForFunction(() => /send-message: (sent|queued)/.test(document.querySelector('#act-result').textContent), null, T);
  await rowWith('hello from the page');
  say('SENT');
  await next();

  await page.waitForSelector('#alerts .alert:not(.recovered)', T);
  await page.screenshot({ path: `${shots}/demo-dropout.png` });
  say('DROPOUT');
  await next();

  await page.waitForSelector('#discord[data-state="offline"]', T);
  await page.screenshot({ path: `${shots}/demo-offline.png` });
  say('OFFLINE');
  await next();

  await page.waitForSelector('#discord[data-state="ready"]', T);
  await rowWith('after restart 4');
  await page.screenshot({ path: `${shots}/demo-back.png` });
  say('DONE ' + JSON.stringify(await page.evaluate(() => ({
    ids: window.bridge.ids,
    rows: [...document.querySelectorAll('#feed li')].map((li) => li.children[2].textContent),
    conn: document.querySelector('#conn').dataset.state,
    discord: document.querySelector('#discord').dataset.state,
  }))));
} finally {
  await context.close();
  lines.close();
}
process.exit(0);

// Drives Debian's chromium (playwright-core) through the EventSource page, step by step with
// the Rust test, which plays the holder. Protocol on stdout, one line each:
//   READY              the page is connected and has its connect `status`
//   GOT <n> <lastId>   the page has shown n MESSAGE_CREATE events
//   DONE <json>        final page state
// The test answers on stdin with "NEXT" after each step it has acted on.
// Usage: node eventsource.mjs <page-url> <edge-origin> <session-jwt> <user-data-dir> <screenshot>
import { createRequire } from 'node:module';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');
const [pageUrl, edgeOrigin, jwt, userDataDir, screenshot] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin });
const iter = lines[Symbol.asyncIterator]();
const next = async () => {
  const { value, done } = await iter.next();
  if (done || value.trim() !== 'NEXT') throw new Error(`expected NEXT from the test, got ${value}`);
};
const say = (s) => process.stdout.write(s + '\n');

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const edge = new URL(edgeOrigin);
  await context.addCookies([{ name: 'rt_session', value: jwt, domain: edge.hostname, path: '/',
    httpOnly: true, sameSite: 'Lax' }]);
  const page = await context.newPage();
  page.on('console', (m) => process.stderr.write(`[page] ${m.text()}\n`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.opens === 1 && window.statuses.length >= 1, null, { timeout: 15000 });
  say('READY');
  await next();
  await page.waitForFunction(() => window.events.length >= 3, null, { timeout: 15000 });
  say(`GOT 3 ${await page.evaluate(() => window.events[2].id)}`);
  await next();
  // The test closed every stream and sent more events: the browser reconnects by itself with
  // Last-Event-ID and must get exactly the missed ones.
  await page.waitForFunction(() => window.opens >= 2 && window.events.length >= 6, null, { timeout: 20000 });
  await page.waitForTimeout(300); // let any duplicate show up before judging
  await page.screenshot({ path: screenshot, fullPage: true });
  say('DONE ' + JSON.stringify(await page.evaluate(() => ({
    events: window.events, opens: window.opens, errors: window.errors, statuses: window.statuses,
  }))));
} finally {
  await context.close();
  lines.close();
}
process.exit(0);

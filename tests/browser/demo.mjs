// Drives Debian's chromium (playwright-core) through the demo console (edge-worker/assets) served
// by the edge, step by step with the Rust test (tests/tests/demo_page.rs), which runs discord-sim,
// the holder and wrangler dev. Protocol on stdout, one line each; the test answers "NEXT" on stdin
// after acting on each line:
//   LIVE                 the page is connected
//   FEED                 the sim's messages are in the feed
//   SENT                 the page sent a message and it came back in the feed
//   DROPOUT              a voice drop-out alert is shown
//   OFFLINE              the holder is gone: the page shows Discord offline
//   DONE <json>          the holder is back: page state
//   GUILDS <json>        the guild picker, refreshed (as when a user opens it), lists <guilds> guilds
//   SWITCHED <json>      the page switched to <second>: its stream is live, its voice snapshot shown
//   SECOND <json>        the second guild's messages ("second guild 2" last) are in the feed
//   SENT2                the page sent a message in <second-channel> and it came back
//   REMOVED <json>       the bot left <second>: the page says so, the picker shows it removed
//   BACK                 the page is on <first> again, live
//   END <json>           "first guild again" is in the feed, <second> is gone from the picker
// Usage: node demo.mjs <edge-origin> <channel-id> <user-data-dir> <screenshot-dir> <guilds>
//          <first> <second> <second-channel>
import { createRequire } from 'node:module';
import readline from 'node:readline';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');
const [origin, channel, userDataDir, shots, guildCount, first, second, secondChannel] = process.argv.slice(2);
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
  const snapshot = () => page.evaluate(() => ({
    guild: window.bridge.guild,
    ids: window.bridge.ids,
    rows: [...document.querySelectorAll('#feed li')].map((li) => li.children[2].textContent),
    conn: document.querySelector('#conn').dataset.state,
    discord: document.querySelector('#discord').dataset.state,
    picker: [...document.querySelectorAll('#guild-picker option')].map((o) => ({
      value: o.value, text: o.textContent, disabled: o.disabled, selected: o.selected,
    })),
    voiceGuild: window.bridge.voiceGuild,
    voice: [...document.querySelectorAll('#voice .member')].map((m) => ({
      user: m.dataset.user, channel: m.parentElement.querySelector('b').textContent.trim(),
    })),
  }));
  say('DONE ' + JSON.stringify(await snapshot()));
  await next();

  // A user opening the picker: it refreshes, and lists every guild by name.
  await page.focus('#guild-picker');
  await page.waitForFunction((n) => {
    const o = [...document.querySelectorAll('#guild-picker option')];
    return o.length === n && o.every((x) => x.textContent !== x.value);
  }, Number(guildCount), T);
  await page.screenshot({ path: `${shots}/demo-guilds.png` });
  say('GUILDS ' + JSON.stringify(await snapshot()));
  await next();

  await page.selectOption('#guild-picker', second);
  await page.waitForFunction((g) => window.bridge.guild === g && window.bridge.voiceGuild === g
    && document.querySelector('#conn').dataset.state === 'live', second, T);
  say('SWITCHED ' + JSON.stringify(await snapshot()));
  await next();

  await rowWith('second guild 2');
  await page.screenshot({ path: `${shots}/demo-second-guild.png` });
  say('SECOND ' + JSON.stringify(await snapshot()));
  await next();

  await page.waitForFunction((c) => [...document.querySelectorAll('#send-channel option')].some((o) => o.value === c), secondChannel, T);
  await page.selectOption('#send-channel', secondChannel);
  await page.fill('#send-content', 'hello guild two');
  await page.click('#send-form button[type="submit"]');
  await page.waitForFunction(() => /send-message: (sent|queued)/.test(document.querySelector('#act-result').textContent), null, T);
  await rowWith('hello guild two');
  say('SENT2');
  await next();

  await page.waitForSelector('#discord[data-state="removed"]', T);
  await page.waitForFunction((g) => [...document.querySelectorAll('#guild-picker option')]
    .some((o) => o.value === g && o.disabled && o.textContent.endsWith('(removed)')), second, T);
  await page.screenshot({ path: `${shots}/demo-removed.png` });
  say('REMOVED ' + JSON.stringify(await snapshot()));
  await next();

  await page.selectOption('#guild-picker', first);
  await page.waitForFunction((g) => window.bridge.guild === g
    && document.querySelector('#conn').dataset.state === 'live', first, T);
  say('BACK');
  await next();

  await rowWith('first guild again');
  await page.waitForFunction((g) => ![...document.querySelectorAll('#guild-picker option')].some((o) => o.value === g), second, T);
  say('END ' + JSON.stringify(await snapshot()));
} finally {
  await context.close();
  lines.close();
}
process.exit(0);

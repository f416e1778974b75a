// Baseline for edge-bench: a plain Node SSE server on better-sse with the same two routes the
// bench drives on the edge (POST /link/ingest with an ingest batch, GET /api/stream), one
// channel, every dispatch broadcast as it arrives. No storage, no replay, no auth. Like the edge,
// it drops envelopes it already broadcast (ids only grow within a holder's epoch), so a batch the
// holder retries after a timed-out POST is not broadcast twice.
// Usage: node better-sse-server.mjs <port>
import http from 'node:http';
import { createChannel, createSession } from 'better-sse';

const port = Number(process.argv[2] || 8799);
const channel = createChannel();
let cursor = 0;
// epoch -> highest envelope id broadcast
const highest = new Map();

http
  .createServer(async (req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/api/stream')) {
      const session = await createSession(req, res, { keepAlive: 15000, retry: 2000 });
      channel.register(session);
      return;
    }
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"version":"1.0","status":"ok"}');
      return;
    }
    if (req.method === 'POST' && req.url === '/link/ingest') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const batch = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      let top = highest.get(batch.epoch) ?? 0;
      for (const env of batch.envelopes) {
        if (typeof env.id === 'number' && env.id <= top) continue;
        if (typeof env.id === 'number') top = env.id;
        cursor += 1;
        const event = {
          version: '1.0', type: env.type, guild_id: env.guild_id, channel_id: env.channel_id,
          received_at: env.received_at, d: env.d,
        };
        channel.broadcast(event, env.type, { eventId: String(cursor) });
      }
      highest.set(batch.epoch, top);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ version: '1.0', accepted: batch.envelopes.length, cursor }));
      return;
    }
    res.writeHead(404);
    res.end();
  })
  .listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));

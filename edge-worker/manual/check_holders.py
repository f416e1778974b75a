"""By-hand check of command routing with several holders against a running `scripts/edge-dev`
(settings as for check_guilds.py): two fake holders on 127.0.0.1:8931 and :8932 register shards
0-1 and 2-3 of 4; a command for a guild on each shard must reach its own holder; when holder b
stops (no batches, no registrations) past LINK_QUIET_MS its guild gets 503 holder_unavailable
and a's guild does not notice; b registering again brings it back."""
import json, time, threading, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
sys.argv = sys.argv[:2]
import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_guilds.py")).read().split("results = []")[0])
results = []
def check(name, ok, detail=""):
    results.append((name, ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f"  {detail}"))

got = {"a": [], "b": []}
def fake(name, port):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            got[name].append(body)
            out = json.dumps({"version":"1.0","command_id":body["command_id"],"status":"sent","result":{"holder":name}}).encode()
            self.send_response(200); self.send_header("Content-Type","application/json"); self.send_header("Content-Length", str(len(out))); self.end_headers(); self.wfile.write(out)
        def log_message(self, *a): pass
    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
fake("a", 8931); fake("b", 8932)

GA = guild_on(1, 7)   # shard 1 of 4: holder a (0-1)
GB = guild_on(2, 8)   # shard 2 of 4: holder b (2-3)
ids_h = {"a": {}, "b": {}}
def hbatch(holder, envs, shards):
    batch_no[0] += 1
    return {"version":"1.0","holder_id":holder,"epoch":f"{EPOCH}-{holder}","batch":batch_no[0],"gateway":"ready",
            "envelopes":envs,"shards":[{"shard":s,"count":4,"state":"ready"} for s in shards]}
def henv(holder, kind, guild, d):
    s = shard(guild); n = ids_h[holder].get(s, 0) + 1; ids_h[holder][s] = n
    e = {"version":"1.0","id":n,"shard":s,"session_id":"s","seq":n,"type":kind,"received_at":int(time.time()*1000),"d":d}
    if kind not in ("GUILD_CREATE","GUILD_DELETE"): e["guild_id"] = str(guild)
    return e
def reg(holder, first, last, port):
    st, body, _ = link("POST", "/link/register", {"version":"1.0","holder_id":holder,"url":f"http://127.0.0.1:{port}","shards":{"first":first,"last":last,"count":4}})
    assert st == 200, body
reg("a", 0, 1, 8931); reg("b", 2, 3, 8932)
post(hbatch("a", [henv("a", "GUILD_CREATE", GA, {"id": str(GA), "channels":[{"id": "5001"}]})], [0,1]))
post(hbatch("b", [henv("b", "GUILD_CREATE", GB, {"id": str(GB), "channels":[{"id": "5002"}]})], [2,3]))
user = jwt("read write", sub="alice")
def send(guild, channel):
    return req("POST", f"/api/actions/send-message?guild={guild}", {"channel_id": channel, "content": "hi"}, {"Authorization": f"Bearer {user}"})
st, body, _ = send(GA, "5001")
check("command for a guild on shard 1 reaches holder a", st == 200 and json.loads(body)["result"]["holder"] == "a" and got["a"][-1]["guild_id"] == str(GA), (st, body))
st, body, _ = send(GB, "5002")
check("command for a guild on shard 2 reaches holder b", st == 200 and json.loads(body)["result"]["holder"] == "b", (st, body))
st, body, _ = send(GA, "5002")
check("a channel of another guild -> 403 naming channel_id", st == 403 and '"field":"channel_id"' in body, (st, body))
st, body, _ = send(guild_on(3, 9), "5003")
check("a guild the bot is not in -> 404 naming it", st == 404 and str(guild_on(3, 9)) in body, (st, body))

sa = Sse(f"/api/stream?guild={GA}"); sb = Sse(f"/api/stream?guild={GB}")
sa.wait(lambda s: "status" in s.names()); sb.wait(lambda s: "status" in s.names())
# holder b dies (no more batches, no registrations); a keeps going past LINK_QUIET_MS (3 s)
t0 = time.time()
while time.time() - t0 < 4.5:
    post(hbatch("a", [], [0,1])); time.sleep(0.5)
st, body, hdr = send(GB, "5002")
check("b gone: its guild's commands -> 503 holder_unavailable with Retry-After", st == 503 and "holder_unavailable" in body and "Retry-After" in hdr, (st, body, hdr))
st, body, _ = send(GA, "5001")
check("b gone: a's guild is not affected", st == 200, (st, body))
downs_b = [json.loads(e["data"]) for e in sb.events if e["event"] == "status" and json.loads(e["data"])["link"] == "down"]
downs_a = [json.loads(e["data"]) for e in sa.events if e["event"] == "status" and json.loads(e["data"])["link"] == "down"]
check("b gone: b's guild shows link down, a's does not", downs_b and not downs_a, (downs_b, downs_a))
reg("b", 2, 3, 8932); post(hbatch("b", [], [2,3]))
st, body, _ = send(GB, "5002")
check("b back: its guild's commands reach b again", st == 200 and json.loads(body)["result"]["holder"] == "b", (st, body))
st, body, _ = req("GET", "/api/bot/registry", headers={"Authorization": f"Bearer {jwt('read admin')}"})
print(sum(ok for _, ok in results), "passed,", sum(not ok for _, ok in results), "failed")
sys.exit(0 if all(ok for _, ok in results) else 1)

"""By-hand check of the edge's many-guild routing against a running `scripts/edge-dev`
(see ../README.md, "Tests and benchmark"): python3 check_guilds.py PORT. Uses the link token
`tok` and the JWT secret `sec` (EDGE_LINK_TOKEN / EDGE_JWT_SECRET override them), PUBLIC_READ on,
LINK_QUIET_MS 3000, GUILD_ID 1000000000000000001. Guild ids are new on every run. Prints
PASS/FAIL per check and exits non-zero on any failure."""
import os
import json, time, hmac, hashlib, base64, threading, http.client, sys, urllib.request

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8911
TOK = os.environ.get("EDGE_LINK_TOKEN", "tok")
SECRET = os.environ.get("EDGE_JWT_SECRET", "sec").encode()
def b64(b): return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def jwt(scope, sub="op"):
    h = b64(json.dumps({"alg":"HS256","typ":"JWT"}).encode())
    p = b64(json.dumps({"sub":sub,"exp":int(time.time())+3600,"scope":scope}).encode())
    sig = b64(hmac.new(SECRET, f"{h}.{p}".encode(), hashlib.sha256).digest())
    return f"{h}.{p}.{sig}"

def req(method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=json.dumps(body) if isinstance(body, dict) else body, headers=h)
    r = c.getresponse()
    data = r.read().decode()
    return r.status, data, dict(r.getheaders())

def link(method, path, body):
    return req(method, path, body, {"Authorization": f"Bearer {TOK}"})

class Sse:
    def __init__(self, path, headers=None):
        self.events = []
        self.closed = False
        self.status = None
        self.c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        self.c.request("GET", path, headers=headers or {})
        self.r = self.c.getresponse()
        self.status = self.r.status
        if self.status == 200:
            threading.Thread(target=self.run, daemon=True).start()
        else:
            self.body = self.r.read().decode()
    def run(self):
        ev = {}
        while True:
            line = self.r.readline()
            if not line:
                self.closed = True
                return
            line = line.decode().rstrip("\n")
            if line == "":
                if "event" in ev: self.events.append(ev)
                ev = {}
                continue
            if line.startswith(":"): continue
            k, _, v = line.partition(": ")
            ev[k] = v
    def names(self): return [e["event"] for e in self.events]
    def wait(self, pred, t=10):
        end = time.time() + t
        while time.time() < end:
            if pred(self): return True
            time.sleep(0.05)
        return False

def shard(g, n=4): return (g >> 22) % n
RUN = int(time.time()) % 100000
def guild_on(s, k):  # a snowflake on shard s of 4, new for every run
    return ((4 * (238418579 + RUN * 10 + k) + s) << 22) | k
A = 1000000000000000001
B = guild_on((shard(A) + 1) % 4, 1)
C = guild_on((shard(A) + 2) % 4, 2)
print("guilds", A, shard(A), B, shard(B), C, shard(C))
EPOCH = f"manual-{int(time.time())}"
ids = {s: 0 for s in range(4)}
def env(kind, guild, d, s=None):
    s = shard(guild) if guild is not None and s is None else (s or 0)
    ids[s] += 1
    e = {"version":"1.0","id":ids[s],"shard":s,"session_id":"sess","seq":ids[s],"type":kind,
         "received_at":int(time.time()*1000),"d":d}
    if guild is not None and kind not in ("GUILD_CREATE","GUILD_DELETE"): e["guild_id"] = str(guild)
    return e
batch_no = [0]
def batch(envs, gaps=None, shards=(0,1,2,3), states=None):
    batch_no[0] += 1
    b = {"version":"1.0","holder_id":"manual","epoch":EPOCH,"batch":batch_no[0],"gateway":"ready",
         "envelopes":envs,"shards":[{"shard":s,"count":4,"state":(states or {}).get(s,"ready")} for s in shards]}
    if gaps: b["gaps"] = gaps
    return b
def post(b):
    st, body, _ = link("POST", "/link/ingest", b)
    assert st == 200, (st, body)
    return json.loads(body)

results = []
def check(name, ok, detail=""):
    results.append((name, ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else f"  {detail}"))

# unknown guild before GUILD_CREATE
st, body, _ = req("GET", f"/api/stream?guild={B}")
check("unknown guild -> 404 naming it", st == 404 and str(B) in body, (st, body))

# joins
creates = [env("GUILD_CREATE", g, {"id": str(g), "name": f"g{g}", "channels":[{"id": str(g+10), "type":0}]}) for g in (A, B, C)]
ack = post(batch(creates))
print("create ack", ack)
admin = jwt("read write admin")
sa, sb, sc = (Sse(f"/api/stream?guild={g}") for g in (A, B, C))
check("streams of joined guilds open", (sa.status, sb.status, sc.status) == (200, 200, 200), (sa.status, sb.status, sc.status))
bot = Sse("/api/bot/stream", {"Authorization": f"Bearer {admin}"})
check("bot stream opens for admin", bot.status == 200, bot.status)
st, body, _ = req("GET", "/api/bot/stream", headers={"Authorization": f"Bearer {jwt('read write')}"})
check("bot stream refused without admin", st == 403, (st, body))
st, body, _ = req("GET", "/api/bot/stream")
check("bot stream refused to PUBLIC_READ", st == 401, (st, body))
for s in (sa, sb, sc, bot): s.wait(lambda s: "status" in s.names(), 5)

# one batch mixing 3 guilds and guildless events
mixed = [env("MESSAGE_CREATE", A, {"n":"a1"}), env("MESSAGE_CREATE", B, {"n":"b1"}), env("READY", None, {"v":10}, s=0),
         env("MESSAGE_CREATE", C, {"n":"c1"}), env("MESSAGE_CREATE", A, {"n":"a2"}), env("MESSAGE_CREATE", B, {"n":"b2"}),
         env("USER_UPDATE", None, {"u":1}, s=1)]
mb = batch(mixed)
ack1 = post(mb)
print("mixed ack", ack1)
ack2 = post(mb)
print("retry ack", ack2)
check("retry is all duplicates", ack2["accepted"] == 0 and ack2["duplicates"] == 7 and ack1["accepted"] == 7, (ack1, ack2))
time.sleep(1)
def dispatches(s): return [json.loads(e["data"])["d"] for e in s.events if e["event"] in ("MESSAGE_CREATE","READY","USER_UPDATE")]
check("A gets a1,a2 once in order", dispatches(sa) == [{"n":"a1"},{"n":"a2"}], dispatches(sa))
check("B gets b1,b2 once in order", dispatches(sb) == [{"n":"b1"},{"n":"b2"}], dispatches(sb))
check("C gets c1 once", dispatches(sc) == [{"n":"c1"}], dispatches(sc))
check("bot record gets READY, USER_UPDATE once", dispatches(bot) == [{"v":10},{"u":1}], dispatches(bot))
st, body, _ = req("GET", "/api/bot/registry", headers={"Authorization": f"Bearer {admin}"})
reg = json.loads(body)
check("registry lists the three guilds", st == 200 and {str(g) for g in (A,B,C)} <= {g["guild_id"] for g in reg["guilds"]}, body)

# keep-alive: a status for B after its shard changes state, with traffic only for A
before = len(sb.events)
post(batch([env("MESSAGE_CREATE", A, {"n":"a3"})], states={shard(B): "reconnecting"}))
time.sleep(1.2)
post(batch([env("MESSAGE_CREATE", A, {"n":"a4"})], states={shard(B): "reconnecting"}))
ok = sb.wait(lambda s: any(e["event"]=="status" and json.loads(e["data"]).get("gateway")=="reconnecting" for e in s.events[before:]), 5)
check("quiet guild B hears its shard's state by keep-alive", ok, sb.events[before:])
# B's link stays up while only A has traffic, for longer than LINK_QUIET_MS (3 s)
t0 = time.time()
while time.time() - t0 < 5:
    post(batch([env("MESSAGE_CREATE", A, {"n":"tick"})]))
    time.sleep(0.4)
downs = [e for e in sb.events if e["event"]=="status" and json.loads(e["data"])["link"]=="down"]
check("quiet guild B's link never went down while A had traffic", not downs, downs)

# gap on B's shard reaches B (no envelopes) and the bot record, not A
gb = len(sb.events); ga = len(sa.events)
gap_from = ids[shard(B)] + 1; ids[shard(B)] += 5
post(batch([env("MESSAGE_CREATE", A, {"n":"a-gap"})], gaps=[{"from_id":gap_from,"to_id":gap_from+4,"reason":"manual","shard":shard(B)}]))
time.sleep(0.5)
check("gap of B's shard reaches B", any(e["event"]=="gap" for e in sb.events[gb:]), sb.events[gb:])
check("gap of B's shard does not reach A", not any(e["event"]=="gap" for e in sa.events[ga:]), sa.events[ga:])

# GUILD_DELETE (left) closes C's stream after a final status, then 404
post(batch([env("GUILD_DELETE", C, {"id": str(C)})]))
ok = sc.wait(lambda s: s.closed, 5)
last = sc.events[-1] if sc.events else {}
check("C's stream ends with status guild=removed", ok and last.get("event")=="status" and json.loads(last["data"]).get("guild")=="removed", (sc.closed, sc.events[-2:]))
st, body, _ = req("GET", f"/api/stream?guild={C}")
check("C -> 404 after leaving", st == 404 and str(C) in body, (st, body))
# outage for B
post(batch([env("GUILD_DELETE", B, {"id": str(B), "unavailable": True})]))
ok = sb.wait(lambda s: any(e["event"]=="status" and json.loads(e["data"]).get("guild")=="unavailable" for e in s.events), 5)
check("B outage -> status guild=unavailable, stream stays", ok and not sb.closed)
# rejoin C: streams again
post(batch([env("GUILD_CREATE", C, {"id": str(C), "channels": []})]))
s2 = Sse(f"/api/stream?guild={C}")
check("C streams again after GUILD_CREATE", s2.status == 200, s2.status)
s2.wait(lambda s: "status" in s.names(), 5)
st0 = [json.loads(e["data"]) for e in s2.events if e["event"]=="status"]
check("connect status carries guild=available", st0 and st0[-1].get("guild")=="available", st0)

# identify queue: shards 0..3, max_concurrency 2, window 5000
def ask(h, s):
    st, body, _ = link("POST", "/link/identify", {"version":"1.0","holder_id":h,"shard":s,"count":4,"max_concurrency":2})
    assert st == 200, (st, body)
    return json.loads(body)
grants = {}
pending = {("h1",0): 0, ("h1",1): 0, ("h2",2): 0, ("h2",3): 0}
start = time.time()
while pending and time.time() - start < 20:
    now = time.time()
    for k, due in list(pending.items()):
        if now >= due:
            a = ask(*k)
            if a["granted"]:
                grants[k] = time.time() - start
                del pending[k]
            else:
                pending[k] = time.time() + a["retry_after_ms"] / 1000
    time.sleep(0.01)
print("grants", grants)
b0 = sorted(t for (h, s), t in grants.items() if s % 2 == 0)
b1 = sorted(t for (h, s), t in grants.items() if s % 2 == 1)
check("identify: every shard granted", len(grants) == 4, grants)
check("identify: bucket spacing >= 5 s", len(b0)==2 and len(b1)==2 and b0[1]-b0[0] >= 4.99 and b1[1]-b1[0] >= 4.99, (b0, b1))
check("identify: buckets independent (both firsts at once)", len(b0)==2 and len(b1)==2 and abs(b0[0]-b1[0]) < 1.0, (b0, b1))
# register + holder route
st, body, _ = link("POST", "/link/register", {"version":"1.0","holder_id":"manual","url":"http://127.0.0.1:9","shards":{"first":0,"last":3,"count":4}})
check("register answers register_every_ms", st == 200 and json.loads(body)["register_every_ms"] == 10000, (st, body))
st, body, _ = link("POST", "/link/register", {"version":"1.0","holder_id":"manual","url":"ftp://x","shards":{"first":0,"last":3,"count":4}})
check("register refuses a bad url naming the field", st == 400 and '"field":"url"' in body, (st, body))
print()
print(sum(ok for _, ok in results), "passed,", sum(not ok for _, ok in results), "failed")
sys.exit(0 if all(ok for _, ok in results) else 1)

#!/usr/bin/env python3
"""Where does workerd's memory go? A diagnostic, not a test: starts `scripts/edge-dev` on port
18787 with a fresh state dir, then three phases of PHASE_S seconds each at 10 ingest batches/s of
10 events: A ingest only (no clients), B the same with N SSE clients reading, C ingest again after
the clients stopped. Samples the Worker's own workerd RSS every 5 s, with the hub's
`edge_wasm_memory_bytes`, `edge_storage_bytes` and `edge_queued_chunks` from `/metrics`, and
prints each phase's slope and where it ended.

    python3 tests/bench/edge-memprobe.py [N=100] [PHASE_S=90]
"""
import http.client, os, shutil, signal, subprocess, sys, threading, time
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
port = 18787
clients_n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
phase_s = int(sys.argv[2]) if len(sys.argv) > 2 else 90
token = [l.split("=",1)[1].strip() for l in open(f"{root}/.dev.vars") if l.startswith("LINK_TOKEN=")][0]
persist = f"/tmp/memprobe-{os.getpid()}"
env = dict(os.environ)
p = subprocess.Popen([f"{root}/scripts/edge-dev", "--port", str(port), "--persist-to", persist],
                     stdin=subprocess.DEVNULL, stdout=open("/tmp/memprobe-wrangler.log","w"), stderr=subprocess.STDOUT,
                     start_new_session=True)
def ready():
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2); c.request("GET", "/healthz"); return c.getresponse().status < 500
    except Exception: return False
t0 = time.time()
while not ready():
    if time.time() - t0 > 180: print("edge never came up"); os.killpg(p.pid, signal.SIGTERM); sys.exit(1)
    time.sleep(0.5)
def worker_pid():
    out = subprocess.run(["ps","-eo","pid,ppid,args"], capture_output=True, text=True).stdout
    rows = [l.split(None, 2) for l in out.splitlines()[1:]]
    kids = {}
    for pid, ppid, args in rows: kids.setdefault(int(ppid), []).append((int(pid), args))
    found, todo = [], [p.pid]
    while todo:
        for pid, args in kids.get(todo.pop(), []):
            todo.append(pid)
            if "workerd" in args and "entry=127.0.0.1:0" in args: found.append(pid)
    return found
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) / 1024.0
pids = worker_pid()
print("workerd candidates", pids, [rss(x) for x in pids])
wpid = max(pids, key=rss)
seq = [0]; batch = [0]
def post_batch(n=10):
    envs = []
    for _ in range(n):
        seq[0] += 1; i = seq[0]
        envs.append('{"version":"1.0","id":%d,"shard":0,"session_id":"s","seq":%d,"type":"MESSAGE_CREATE","guild_id":"1000000000000000001","channel_id":"42","received_at":%d,"d":{"content":"memory probe message %d with some text in it"}}' % (i, i, int(time.time()*1000), i))
    batch[0] += 1
    body = '{"version":"1.0","holder_id":"probe","epoch":"probe-epoch","batch":%d,"gateway":"ready","envelopes":[%s]}' % (batch[0], ",".join(envs))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/link/ingest", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse(); r.read(); assert r.status == 200, r.status
def gauges():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
    text = c.getresponse().read().decode()
    want = ("edge_wasm_memory_bytes", "edge_storage_bytes", "edge_queued_chunks")
    return {l.split()[0]: float(l.split()[1]) for l in text.splitlines() if l.split(" ")[0] in want}
def phase(name):
    samples = []; start = time.time(); next_post = start; g = {}
    while time.time() - start < phase_s:
        post_batch(); next_post += 0.1
        if len(samples) == 0 or time.time() - samples[-1][0] - start >= 5:
            samples.append((time.time() - start, rss(wpid)))
            g = gauges()
            if len(samples) % 6 == 1:
                print(f"  {name[:1]} t={samples[-1][0]:4.0f}s RSS {samples[-1][1]:.0f} MB, wasm {g.get('edge_wasm_memory_bytes', 0)/2**20:.1f} MB, sqlite {g.get('edge_storage_bytes', 0)/2**20:.1f} MB, queued {g.get('edge_queued_chunks', 0):.0f}", flush=True)
        d = next_post - time.time()
        if d > 0: time.sleep(d)
    xs = [s[0] for s in samples]; ys = [s[1] for s in samples]
    n = len(xs); mx = sum(xs)/n; my = sum(ys)/n
    slope = sum((x-mx)*(y-my) for x,y in zip(xs,ys)) / sum((x-mx)**2 for x in xs) * 60
    print(f"{name}: {n} samples, RSS {ys[0]:.0f} -> {ys[-1]:.0f} MB, slope {slope:.1f} MB/min, events so far {seq[0]}; wasm {g.get('edge_wasm_memory_bytes', 0)/2**20:.1f} MB, sqlite {g.get('edge_storage_bytes', 0)/2**20:.1f} MB, queued chunks {g.get('edge_queued_chunks', 0):.0f}", flush=True)
stop = threading.Event()
def reader():
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/api/stream")
    r = c.getresponse()
    while not stop.is_set():
        if not r.read1(65536): break
phase("A ingest only, 0 clients")
ths = [threading.Thread(target=reader, daemon=True) for _ in range(clients_n)]
for t in ths: t.start()
time.sleep(3)
phase(f"B ingest + {clients_n} clients")
stop.set()
phase("C ingest only again (the clients stopped reading and left)")
os.killpg(p.pid, signal.SIGTERM); p.wait(timeout=20)
shutil.rmtree(persist, ignore_errors=True)

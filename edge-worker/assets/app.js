// The demo console: a live view of one guild through the edge's SSE stream, with controls that
// call the command routes. Plain JS, no build step, no secrets: auth is the rt_session cookie.
const $ = (id) => document.getElementById(id);
const DISPATCHES = [
  "MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE",
  "TYPING_START", "VOICE_STATE_UPDATE", "GUILD_CREATE", "GUILD_MEMBER_ADD", "GUILD_MEMBER_REMOVE",
  "GUILD_MEMBER_UPDATE", "PRESENCE_UPDATE", "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "READY", "RESUMED",
];
const VOICE = ["voice.join", "voice.leave", "voice.move", "voice.update", "voice.dropout", "voice.recovered"];
const MAX_ROWS = 500;

// Visible to tests: every cursor shown, so duplicates and holes can be checked.
const state = { lastId: 0, ids: [], events: 0, ages: [], paused: false, channels: new Set(), types: new Set(), voice: {} };
window.bridge = state;

function setPill(el, st, text) { el.dataset.state = st; el.textContent = text; }

function row(id, type, channel, text, cls, receivedAt) {
  if (state.paused) return;
  const li = document.createElement("li");
  li.className = cls || "";
  li.dataset.type = type; li.dataset.channel = channel || ""; li.dataset.id = id;
  const age = receivedAt ? `${Math.max(0, Date.now() - receivedAt)} ms` : "";
  li.innerHTML = `<span class="id"></span><span class="type"></span><span class="text"></span><span class="age"></span>`;
  li.children[0].textContent = id; li.children[1].textContent = type;
  li.children[2].textContent = text; li.children[3].textContent = age;
  applyFilter(li);
  const feed = $("feed");
  feed.prepend(li);
  while (feed.children.length > MAX_ROWS) feed.lastChild.remove();
  return li;
}

function applyFilter(li) {
  const t = $("type-filter").value, c = $("channel-filter").value;
  li.hidden = (t && li.dataset.type !== t) || (c && li.dataset.channel !== c);
}

function addOption(select, set, value) {
  if (!value || set.has(value)) return;
  set.add(value);
  const o = document.createElement("option"); o.value = o.textContent = value; select.append(o);
}

function noteAge(receivedAt) {
  if (!receivedAt) return;
  state.ages.push(Date.now() - receivedAt);
  if (state.ages.length > 100) state.ages.shift();
  const sorted = [...state.ages].sort((a, b) => a - b);
  const p50 = sorted[Math.floor(sorted.length / 2)];
  $("latency").textContent = `latency: ${p50} ms (p50 of last ${sorted.length})`;
}

function accept(ev) {
  // The edge's cursor is strictly increasing: anything at or below the last one is a duplicate.
  const id = Number(ev.lastEventId || 0);
  if (id && id <= state.lastId) return false;
  if (id) { state.lastId = id; state.ids.push(id); }
  state.events++;
  $("counts").textContent = `events: ${state.events}`;
  return true;
}

function describe(type, d) {
  switch (type) {
    case "MESSAGE_CREATE": return `${d.author?.username ?? "?"}: ${d.content ?? ""}`;
    case "MESSAGE_REACTION_ADD": return `${d.user_id} reacted ${d.emoji?.name ?? ""} to ${d.message_id}`;
    case "TYPING_START": return `${d.user_id} is typing`;
    case "VOICE_STATE_UPDATE": return `${d.user_id} → ${d.channel_id ?? "(left voice)"}`;
    case "MESSAGE_DELETE": return `message ${d.id} deleted`;
    case "GUILD_MEMBER_REMOVE": return `${d.user?.username ?? d.user?.id} left the guild`;
    default: return JSON.stringify(d).slice(0, 160);
  }
}

function onDispatch(ev) {
  if (!accept(ev)) return;
  const data = JSON.parse(ev.data);
  noteAge(data.received_at);
  addOption($("type-filter"), state.types, ev.type);
  if (data.channel_id && ev.type === "MESSAGE_CREATE") {
    addOption($("channel-filter"), state.channels, data.channel_id);
    if (![...$("send-channel").options].some((o) => o.value === data.channel_id)) {
      const o = document.createElement("option"); o.value = o.textContent = data.channel_id; $("send-channel").append(o);
    }
  }
  const li = row(ev.lastEventId, ev.type, data.channel_id, describe(ev.type, data.d), ev.type === "MESSAGE_CREATE" ? "msg" : "", data.received_at);
  if (li && ev.type === "MESSAGE_CREATE") {
    li.addEventListener("click", () => { $("react-message").value = data.d.id; $("send-channel").value = data.channel_id; });
  }
}

function renderVoice() {
  const box = $("voice"); box.replaceChildren();
  for (const [channel, members] of Object.entries(state.voice).sort()) {
    if (!members.length) continue;
    const div = document.createElement("div"); div.className = "channel";
    const b = document.createElement("b"); b.textContent = `#${channel} `; div.append(b);
    for (const m of members) {
      const s = document.createElement("span"); s.className = "member"; s.dataset.user = m.user_id;
      s.textContent = m.user_id + (m.flags?.self_mute ? " 🔇" : "") + (m.flags?.self_stream ? " 📺" : "");
      div.append(s);
    }
    box.append(div);
  }
}

function onVoice(ev) {
  if (!accept(ev)) return;
  const v = JSON.parse(ev.data);
  const remove = (user) => { for (const c of Object.keys(state.voice)) state.voice[c] = state.voice[c].filter((m) => m.user_id !== user); };
  if (["voice.join", "voice.move", "voice.update"].includes(ev.type)) {
    remove(v.user_id);
    (state.voice[v.channel_id] ||= []).push({ user_id: v.user_id, flags: v.flags });
  } else if (ev.type === "voice.leave") {
    remove(v.user_id);
  } else if (ev.type === "voice.dropout" || ev.type === "voice.recovered") {
    const a = document.createElement("div");
    a.className = "alert" + (ev.type === "voice.recovered" ? " recovered" : "");
    a.textContent = ev.type === "voice.dropout"
      ? `⚠ ${v.user_id} dropped out of #${v.channel_id}` : `✓ ${v.user_id} is back in #${v.channel_id}`;
    $("alerts").prepend(a);
    while ($("alerts").children.length > 5) $("alerts").lastChild.remove();
  }
  renderVoice();
  row(ev.lastEventId, ev.type, v.channel_id, `${v.user_id} ${ev.type.slice(6)} #${v.channel_id}`, "voice");
}

async function loadVoice() {
  try {
    const r = await fetch("/api/voice", { credentials: "same-origin" });
    if (!r.ok) return;
    const snap = await r.json();
    state.voice = {};
    for (const [c, members] of Object.entries(snap.channels || {})) state.voice[c] = members.map((m) => ({ user_id: m.user_id, flags: m.flags }));
    renderVoice();
  } catch { /* the stream still works without the voice snapshot */ }
}

let source = null, retryMs = 1000;
function connect() {
  const url = state.lastId ? `/api/stream?last_event_id=${state.lastId}` : "/api/stream";
  source = new EventSource(url, { withCredentials: true });
  source.onopen = () => { retryMs = 1000; setPill($("conn"), "live", "live"); loadVoice(); };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. a 5xx): reconnect ourselves, resuming from the last cursor.
      setPill($("conn"), "reconnecting", "reconnecting…");
      setTimeout(connect, retryMs); retryMs = Math.min(retryMs * 2, 15000);
    } else {
      setPill($("conn"), "reconnecting", "reconnecting…");
    }
  };
  for (const t of DISPATCHES) source.addEventListener(t, onDispatch);
  for (const t of VOICE) source.addEventListener(t, onVoice);
  source.addEventListener("status", (ev) => {
    if (!accept(ev)) return;
    const s = JSON.parse(ev.data);
    if (s.link === "down") setPill($("discord"), "offline", "Discord offline");
    else setPill($("discord"), s.gateway || "ready", `Discord: ${s.gateway || "up"}`);
  });
  source.addEventListener("gap", (ev) => {
    if (!accept(ev)) return;
    const g = JSON.parse(ev.data);
    row(ev.lastEventId, "gap", "", `events missing after ${g.after} (${g.reason})`, "gap");
  });
  source.addEventListener("command.result", (ev) => {
    if (!accept(ev)) return;
    const r = JSON.parse(ev.data);
    showResult(r.status === "sent" ? `command ${r.command_id} sent` : `command ${r.command_id} failed: ${r.error?.message}`, r.status !== "sent");
  });
}

function showResult(text, isError) { const p = $("act-result"); p.textContent = text; p.classList.toggle("error", !!isError); }

async function act(route, body) {
  try {
    const r = await fetch(`/api/actions/${route}`, {
      method: "POST", credentials: "same-origin",
      headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const answer = await r.json().catch(() => ({}));
    if (r.ok) showResult(`${route}: ${answer.status}${answer.status === "queued" ? " (result follows on the stream)" : ""}`);
    else showResult(`${route}: ${answer.error?.message ?? r.statusText}${answer.error?.field ? ` [${answer.error.field}]` : ""}`, true);
    return r.status;
  } catch (e) { showResult(`${route}: ${e}`, true); }
}

$("send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act("send-message", { channel_id: $("send-channel").value, content: $("send-content").value })
    .then((status) => { if (status === 200 || status === 202) $("send-content").value = ""; });
});
$("react-form").addEventListener("submit", (e) => {
  e.preventDefault();
  act("add-reaction", { channel_id: $("send-channel").value, message_id: $("react-message").value.trim(), emoji: $("react-emoji").value.trim() });
});
$("typing").addEventListener("click", () => act("typing-start", { channel_id: $("send-channel").value }));
$("pause").addEventListener("click", () => { state.paused = !state.paused; $("pause").textContent = state.paused ? "resume" : "pause"; });
for (const f of ["type-filter", "channel-filter"]) $(f).addEventListener("change", () => { for (const li of $("feed").children) applyFilter(li); });

// A session cookie for the demo (only where the edge enables DEV_LOGIN); then the stream.
fetch("/api/dev/session", { method: "POST", credentials: "same-origin" }).catch(() => {}).finally(connect);

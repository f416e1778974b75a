// The demo console: a live view of one guild through the edge's SSE stream, with controls that
// call the command routes. Plain JS, no build step, no secrets: auth is the rt_session cookie.
// The guild picker is filled from /api/guilds; the selected guild is named with ?guild= on the
// stream, /api/voice and every command, and switching guild starts the view afresh (each guild's
// hub has its own cursors).
const $ = (id) => document.getElementById(id);
const DISPATCHES = [
  "MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE",
  "TYPING_START", "VOICE_STATE_UPDATE", "GUILD_CREATE", "GUILD_MEMBER_ADD", "GUILD_MEMBER_REMOVE",
  "GUILD_MEMBER_UPDATE", "PRESENCE_UPDATE", "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "READY", "RESUMED",
];
const VOICE = ["voice.join", "voice.leave", "voice.move", "voice.update", "voice.dropout", "voice.recovered"];
const MAX_ROWS = 500;

// Visible to tests: every cursor shown (of the current guild), so duplicates and holes can be
// checked; the guild open (null: the edge's default, when /api/guilds could not be read).
const state = {
  lastId: 0, ids: [], events: 0, ages: [], paused: false, channels: new Set(), types: new Set(), voice: {},
  guild: null, guilds: [], removed: null, names: {}, voiceGuild: null,
};
window.bridge = state;

// `path` with the open guild (and `params`) in its query.
function withGuild(path, params = {}) {
  const q = new URLSearchParams(params);
  if (state.guild) q.set("guild", state.guild);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

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
  const guild = state.guild;
  try {
    const r = await fetch(withGuild("/api/voice"), { credentials: "same-origin" });
    if (!r.ok) return;
    const snap = await r.json();
    if (guild !== state.guild) return; // switched meanwhile
    state.voice = {};
    for (const [c, members] of Object.entries(snap.channels || {})) state.voice[c] = members.map((m) => ({ user_id: m.user_id, flags: m.flags }));
    state.voiceGuild = snap.guild_id;
    renderVoice();
  } catch { /* the stream still works without the voice snapshot */ }
}

// The guild picker. A guild the bot left while it was open stays in it, disabled, so the view
// still says what it shows.
function guildLabel(g) {
  const name = g.name || state.names[g.guild_id] || g.guild_id;
  return g.availability === "unavailable" ? `${name} (unavailable)` : name;
}

function renderPicker() {
  const sel = $("guild-picker");
  sel.replaceChildren();
  for (const g of state.guilds) {
    if (g.guild_id === state.removed) continue;
    const o = document.createElement("option");
    o.value = g.guild_id; o.textContent = guildLabel(g); o.title = g.guild_id;
    sel.append(o);
  }
  if (state.removed) {
    const o = document.createElement("option");
    o.value = state.removed; o.textContent = `${state.names[state.removed] || state.removed} (removed)`;
    o.disabled = true; o.title = state.removed;
    sel.append(o);
  }
  if (state.guild) sel.value = state.guild;
  sel.disabled = sel.options.length === 0;
}

async function loadGuilds() {
  try {
    const r = await fetch("/api/guilds", { credentials: "same-origin" });
    if (!r.ok) return null;
    const list = await r.json();
    const guilds = list.guilds || [];
    const changed = JSON.stringify(guilds) !== JSON.stringify(state.guilds);
    state.guilds = guilds;
    for (const g of guilds) if (g.name) state.names[g.guild_id] = g.name;
    if (changed) renderPicker();
    return list;
  } catch { return null; }
}

let source = null, retryMs = 1000, retryTimer = null;

// Starts the view of `guild` afresh: its own stream, voice snapshot, channels and commands.
function openGuild(guild) {
  if (source) source.close();
  source = null; clearTimeout(retryTimer); retryMs = 1000;
  state.guild = guild || null; state.removed = null;
  state.lastId = 0; state.ids = []; state.events = 0; state.ages = [];
  state.channels.clear(); state.voice = {}; state.voiceGuild = null;
  $("counts").textContent = "events: 0"; $("latency").textContent = "latency: –";
  $("channel-filter").replaceChildren(new Option("all", ""));
  $("send-channel").replaceChildren(); $("react-message").value = ""; showResult("");
  $("feed").replaceChildren(); $("alerts").replaceChildren(); renderVoice();
  setPill($("discord"), "unknown", "Discord: unknown");
  renderPicker();
  connect();
}

// The bot left the open guild (the stream's final `status`): stop there and refresh the picker.
function guildRemoved(id) {
  if (source) source.close();
  source = null; clearTimeout(retryTimer);
  state.removed = state.guild;
  const name = state.names[state.guild] || state.guild;
  setPill($("conn"), "closed", "closed");
  setPill($("discord"), "removed", "the bot left this guild");
  row(id, "status", "", `the bot left ${name}: pick another guild`, "gap");
  renderPicker();
  loadGuilds();
}

function connect() {
  const url = withGuild("/api/stream", state.lastId ? { last_event_id: state.lastId } : {});
  const es = new EventSource(url, { withCredentials: true });
  source = es;
  setPill($("conn"), "connecting", "connecting…");
  es.onopen = () => { retryMs = 1000; setPill($("conn"), "live", "live"); loadVoice(); };
  es.onerror = () => {
    if (es !== source) return;
    setPill($("conn"), "reconnecting", "reconnecting…");
    if (es.readyState !== EventSource.CLOSED) return;
    // The browser gave up (e.g. a 5xx, or a 404 for a guild the bot has left): reconnect
    // ourselves, resuming from the last cursor, unless the guild is no longer listed.
    const guild = state.guild;
    retryTimer = setTimeout(async () => {
      const list = guild ? await loadGuilds() : null;
      if (guild !== state.guild || es !== source) return;
      if (list && !list.guilds.some((g) => g.guild_id === guild)) guildRemoved(state.lastId || "");
      else connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  };
  for (const t of DISPATCHES) es.addEventListener(t, onDispatch);
  for (const t of VOICE) es.addEventListener(t, onVoice);
  es.addEventListener("status", (ev) => {
    if (!accept(ev)) return;
    const s = JSON.parse(ev.data);
    if (s.guild === "removed") { guildRemoved(ev.lastEventId); return; }
    const listed = state.guilds.find((g) => g.guild_id === state.guild);
    if (s.guild && listed && listed.availability !== s.guild) { listed.availability = s.guild; renderPicker(); }
    if (s.link === "down") setPill($("discord"), "offline", "Discord offline");
    else if (s.guild === "unavailable") setPill($("discord"), "offline", "Discord: guild unavailable");
    else setPill($("discord"), s.gateway || "ready", `Discord: ${s.gateway || "up"}`);
  });
  es.addEventListener("gap", (ev) => {
    if (!accept(ev)) return;
    const g = JSON.parse(ev.data);
    row(ev.lastEventId, "gap", "", `events missing after ${g.after} (${g.reason})`, "gap");
  });
  es.addEventListener("command.result", (ev) => {
    if (!accept(ev)) return;
    const r = JSON.parse(ev.data);
    showResult(r.status === "sent" ? `command ${r.command_id} sent` : `command ${r.command_id} failed: ${r.error?.message}`, r.status !== "sent");
  });
}

function showResult(text, isError) { const p = $("act-result"); p.textContent = text; p.classList.toggle("error", !!isError); }

async function act(route, body) {
  try {
    const r = await fetch(withGuild(`/api/actions/${route}`), {
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
$("guild-picker").addEventListener("change", (e) => { openGuild(e.target.value); loadGuilds(); });
// The list changes as the bot joins and leaves guilds: fresh when the picker is about to be used,
// and every 30 s.
$("guild-picker").addEventListener("focus", loadGuilds);
setInterval(() => { if (document.visibilityState === "visible") loadGuilds(); }, 30000);

// A session cookie for the demo (only where the edge enables DEV_LOGIN); then the guilds, then
// the default guild's stream (the first listed when the edge has no default; the edge's default,
// with no ?guild=, when the list can't be read).
fetch("/api/dev/session", { method: "POST", credentials: "same-origin" }).catch(() => {})
  .then(loadGuilds)
  .then((list) => openGuild(list ? (list.default ?? list.guilds[0]?.guild_id ?? null) : null));

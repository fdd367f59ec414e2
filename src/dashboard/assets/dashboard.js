// The mesh-mcp dashboard: reads /api/swarms and /api/swarm/{id} from this server, and reads the
// snapshot again when /events says the chosen swarm changed. It shows what the server returned
// and nothing else; an empty part says "no data yet".
//
// With --auth-token, open the page once as /#token=TOKEN: the token is kept in sessionStorage
// (this tab only), sent as a bearer header on fetches and as access_token on /events.
'use strict';

const TOKEN_KEY = 'mesh-mcp-token';
const DEBOUNCE_MS = 250;
// Ages and statuses move with the clock even when nothing is written; read again this often
// (?refresh=SECONDS; 0 turns it off, so that only /events updates the page, as its test wants).
const REFRESH_MS = 1000 * Number(new URLSearchParams(location.search).get('refresh') ?? 15);
const SVG = 'http://www.w3.org/2000/svg';

const token = takeToken();
const state = { swarm: null, swarms: [], snapshot: null, timer: null, pending: null, loading: false, again: false };

function takeToken() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path) {
  const r = await fetch(path, { cache: 'no-store', headers: token ? { Authorization: 'Bearer ' + token } : {} });
  const body = await r.text();
  if (!r.ok) {
    let message = body;
    try { message = JSON.parse(body).error.message; } catch (_) { /* plain text */ }
    throw new Error(`${path}: ${r.status} ${message}`);
  }
  return JSON.parse(body);
}

// --- small DOM helpers -------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}
function fill(id, ...children) { document.getElementById(id).replaceChildren(...children.flat()); }
function empty(text) { return el('p', { class: 'empty' }, text || 'no data yet'); }
function table(head, rows) {
  return el('table', {}, el('thead', {}, el('tr', {}, head.map(h => el('th', { class: h.num ? 'num' : null }, h.label || h)))),
    el('tbody', {}, rows));
}
function ago(ms) {
  if (ms === undefined || ms === null) return 'never';
  if (ms < 1000) return `${ms} ms ago`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s ago`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min ago`;
  return `${(ms / 3600000).toFixed(1)} h ago`;
}
function pct(x) { return x === undefined || x === null ? '—' : `${(x * 100).toFixed(1)} %`; }
function short(value, n = 60) {
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
function showProblem(text) {
  const p = document.getElementById('problem');
  p.hidden = !text;
  p.textContent = text || '';
}

// --- loading -------------------------------------------------------------------------------
async function loadSwarms() {
  const list = await api('/api/swarms');
  state.swarms = list.swarms;
  const wanted = new URLSearchParams(location.search).get('swarm');
  const ids = list.swarms.map(s => s.swarmId);
  if (!ids.includes(state.swarm)) {
    state.swarm = ids.includes(wanted) ? wanted : (ids.includes(list.defaultSwarm) ? list.defaultSwarm : ids[0] || null);
  }
  const select = document.getElementById('swarm');
  select.replaceChildren(...(ids.length
    ? list.swarms.map(s => el('option', { value: s.swarmId }, `${s.swarmId} (${s.topology}, ${s.agents} agents)`))
    : [el('option', { value: '' }, '(no swarm yet)')]));
  select.value = state.swarm || '';
}

async function loadSnapshot() {
  if (state.loading) { state.again = true; return; }
  state.loading = true;
  try {
    do {
      state.again = false;
      if (!state.swarm) { render(null); continue; }
      render(await api('/api/swarm/' + encodeURIComponent(state.swarm)));
    } while (state.again);
    showProblem(null);
  } catch (e) {
    showProblem(String(e.message || e));
  } finally {
    state.loading = false;
  }
}

async function refreshSelector() {
  const before = state.swarm;
  try { await loadSwarms(); } catch (e) { showProblem(String(e.message || e)); return; }
  if (state.swarm !== before) await loadSnapshot(); // the chosen swarm was destroyed
}

async function reloadAll() {
  try { await loadSwarms(); } catch (e) { showProblem(String(e.message || e)); return; }
  await loadSnapshot();
}

function subscribe() {
  const live = document.getElementById('live');
  const source = new EventSource('/events' + (token ? '?access_token=' + encodeURIComponent(token) : ''));
  source.addEventListener('ready', () => {
    live.className = 'live-on';
    live.textContent = 'live';
    reloadAll(); // after a reconnect, whatever happened meanwhile
  });
  source.addEventListener('change', ev => {
    const change = JSON.parse(ev.data);
    if (!change.swarms.length) return; // memory or metrics only: nothing this page shows per swarm
    // The chosen swarm changes the page; any other one may change the selector (a new swarm, a
    // destroyed one, an agent count). A burst of changes becomes one read.
    const all = change.swarms.includes(state.swarm) || state.pending === reloadAll;
    state.pending = all ? reloadAll : refreshSelector;
    clearTimeout(state.timer);
    state.timer = setTimeout(() => { const run = state.pending; state.pending = null; run(); }, DEBOUNCE_MS);
  });
  source.addEventListener('error', () => {
    live.className = 'live-off';
    live.textContent = 'disconnected, retrying';
  });
}

// --- rendering -----------------------------------------------------------------------------
function render(snap) {
  state.snapshot = snap;
  document.body.dataset.revision = snap ? snap.status.revision : '';
  if (!snap) {
    fill('summary', 'no swarm yet: call swarm_init');
    for (const id of ['alerts', 'figures', 'agents', 'workers', 'proposals', 'decisions', 'reservations', 'tasks', 'messages', 'metrics']) fill(id, empty());
    fill('graph');
    return;
  }
  const s = snap.status;
  const idle = s.agents.idle ? ` · ${s.agents.idle} idle` : '';
  const offline = s.agents.offline ? ` · ${s.agents.offline} offline` : '';
  fill('summary', `${s.agents.total} agents · ${s.agents.active} active${idle}${offline} · ${s.agents.failed} failed · ${s.links.healthy}/${s.links.total} links live · revision ${s.revision}`);
  fill('topology-kind', `${s.topology}, ${s.strategy}`);
  renderGraph(snap);
  renderAlerts(snap);
  renderAgents(snap);
  renderWorkers(snap);
  renderProposals(snap);
  renderReservations(snap);
  renderTasks(snap);
  renderMessages(snap);
  renderMetrics(snap);
  fill('footer', `read at ${new Date(snap.nowMs).toLocaleTimeString()} (server clock) · updates on every change through /events`);
}

function names(snap) {
  return new Map(snap.agents.map(a => [a.agentId, a.name]));
}

// A deterministic layout: agents on a circle in spawn order; in a star the hub sits in the middle.
function layout(snap) {
  const agents = [...snap.agents].sort((a, b) => a.spawnedAtMs - b.spawnedAtMs || a.name.localeCompare(b.name));
  const [w, h] = [640, 480];
  const pos = new Map();
  let ring = agents;
  const n = agents.length;
  if (snap.status.topology === 'star' && n > 2) {
    const hub = agents.find(a => a.links.length === n - 1);
    if (hub) {
      pos.set(hub.agentId, [w / 2, h / 2]);
      ring = agents.filter(a => a !== hub);
    }
  }
  const r = Math.min(w, h) / 2 - 40;
  ring.forEach((a, i) => {
    const t = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(ring.length, 1);
    pos.set(a.agentId, [w / 2 + r * Math.cos(t), h / 2 + r * Math.sin(t)]);
  });
  return pos;
}

function renderGraph(snap) {
  const g = document.getElementById('graph');
  if (!snap.agents.length) {
    g.replaceChildren(svg('text', { x: 320, y: 240, class: 'empty' }, 'no agents yet'));
    return;
  }
  const pos = layout(snap);
  const leader = snap.status.leader;
  const edges = snap.edges.filter(e => pos.has(e.from) && pos.has(e.to)).map(e => {
    const [[x1, y1], [x2, y2]] = [pos.get(e.from), pos.get(e.to)];
    return svg('line', { class: 'edge' + (e.live ? '' : ' dead'), x1, y1, x2, y2, 'data-from': e.from, 'data-to': e.to });
  });
  const nodes = snap.agents.map(a => {
    const [x, y] = pos.get(a.agentId);
    const cls = `node ${a.status}` + (leader === a.agentId ? ' leader' : '');
    return svg('g', { class: cls, 'data-agent-id': a.agentId, 'data-name': a.name, 'data-status': a.status },
      svg('title', {}, `${a.name} (${a.type}): ${a.status}, heartbeat ${ago(a.heartbeatAgeMs)}`),
      svg('circle', { cx: x, cy: y, r: 13 }),
      svg('text', { x, y: y + 27 }, a.name));
  });
  g.replaceChildren(...edges, ...nodes);
}

function renderAlerts(snap) {
  const s = snap.status;
  fill('alerts', s.alerts.length
    ? s.alerts.map(a => el('div', { class: 'alert' }, a.message))
    : el('p', { class: 'ok' }, 'no alerts: every measured figure is within its threshold'));
  const f = s; // swarm_status flattens its health figures into the object
  const rows = [
    ['connectivity', pct(f.connectivity)],
    ['node failure rate', pct(f.nodeFailureRate)],
    ['message latency', f.messageLatencyMs === undefined ? '—' : `${f.messageLatencyMs.toFixed(1)} ms`],
    ['agreement rate', pct(f.agreementRate)],
    ['topology health', pct(f.topologyHealth)],
    ['partitions', s.partitions],
    ['leader', s.leader ? (names(snap).get(s.leader) || s.leader) : '—'],
  ];
  const note = el('p', { class: 'empty' }, '— : no data yet (nothing measured to compute it from)');
  fill('figures', table(['figure', 'value'], rows.map(([k, v]) => el('tr', {}, el('td', {}, k), el('td', {}, v)))), note);
}

function renderAgents(snap) {
  if (!snap.agents.length) { fill('agents', empty('no agents yet')); return; }
  const load = new Map(((snap.status.load || {}).agents || []).map(l => [l.agentId, l]));
  fill('agents', snap.agents.map(a => {
    const l = load.get(a.agentId);
    const loadCell = l
      ? el('span', {}, el('span', { class: 'meter' }, el('span', { style: `width:${Math.round(l.loadScore * 100)}%` })),
        `${l.loadScore.toFixed(2)} (${l.tasks}/${l.maxConcurrent} tasks)`)
      : '— (not live)';
    return el('div', { class: 'card', 'data-agent-id': a.agentId },
      el('div', {}, el('span', { class: 'name' }, a.name), ' ', el('span', { class: 'type' }, a.type), ' ',
        el('span', { class: 'badge ' + a.status }, a.status)),
      el('dl', {},
        el('dt', {}, 'heartbeat'), el('dd', {}, ago(a.heartbeatAgeMs)),
        el('dt', {}, 'load'), el('dd', {}, loadCell),
        el('dt', {}, 'links'), el('dd', {}, a.links.length),
        el('dt', {}, 'mailbox'), el('dd', {}, `${a.pendingMessages} waiting`),
        el('dt', {}, 'capabilities'), el('dd', {}, a.capabilities.length ? a.capabilities.map(c => el('span', { class: 'chip' }, c)) : '—')));
  }));
}

// The swarm's worker processes (agent_spawn with a runner profile): what their supervisors
// report, the swarm's budget, and the end of each one's output.
function renderWorkers(snap) {
  const budget = snap.status.budget;
  const parts = [];
  if (budget) {
    const l = budget.limits;
    const limits = [
      l.maxWorkers !== undefined ? `${budget.workersHeld}/${l.maxWorkers} running` : `${budget.workersHeld} running`,
      l.maxRestarts !== undefined ? `${l.maxRestarts} restarts each` : null,
      l.maxWallSeconds !== undefined ? `${l.maxWallSeconds} s each` : null,
      l.spendCapUsd !== undefined ? `$${budget.spent.costUsd.toFixed(4)} of $${l.spendCapUsd} spent` : `$${budget.spent.costUsd.toFixed(4)} spent`,
    ].filter(Boolean).join(' · ');
    parts.push(el('p', { class: budget.exhausted ? 'budget exhausted' : 'budget' }, 'budget: ', limits,
      budget.exhausted ? el('strong', {}, ` · ${budget.exhausted}`) : null));
  }
  if (!snap.workers.length) {
    fill('workers', parts.length ? parts : empty('no workers (agent_spawn with a profile asks for one)'));
    return;
  }
  const who = names(snap);
  const uptime = w => w.state === 'running' && w.startedAtMs ? ago(snap.nowMs - w.startedAtMs).replace(' ago', '') : '—';
  const exit = e => !e ? '—' : e.signal ? `signal ${e.signal}` : `code ${e.code}`;
  const spend = s => s ? `$${s.costUsd.toFixed(4)} · ${s.inputTokens + s.outputTokens} tokens` : '—';
  const rows = snap.workers.map(({ agentId, worker: w, logTail }) => [
    el('tr', { 'data-agent-id': agentId },
      el('td', {}, who.get(agentId) || agentId), el('td', {}, w.profile),
      el('td', {}, el('span', { class: 'badge ' + (w.state || 'requested') }, w.stopping ? 'stopping' : (w.state || 'requested'))),
      el('td', {}, w.host || '—'), el('td', { class: 'num' }, w.pid ?? '—'), el('td', { class: 'num' }, w.restarts),
      el('td', {}, uptime(w)), el('td', {}, exit(w.lastExit)), el('td', {}, spend(w.spend)),
      el('td', {}, w.stoppedFor || '')),
    logTail ? el('tr', { class: 'log' }, el('td', { colspan: 10 },
      el('details', {}, el('summary', {}, 'output'), el('pre', {}, logTail)))) : null,
  ]);
  parts.push(table(['agent', 'profile', 'state', 'host', { label: 'pid', num: true }, { label: 'restarts', num: true },
    'uptime', 'last exit', 'spend', 'stopped for'], rows.flat()));
  if (snap.workersOmitted) parts.push(el('p', { class: 'empty' }, `and ${snap.workersOmitted} more`));
  fill('workers', parts);
}

function renderProposals(snap) {
  const { open, decisions } = snap.proposals;
  fill('proposals', open.length
    ? table(['proposal', 'protocol', 'tally', 'expires'], open.map(p => el('tr', {},
      el('td', { title: p.proposalId }, short(p.proposal, 40)),
      el('td', {}, p.protocol),
      el('td', { title: p.reason }, `${p.tally.approvals} yes / ${p.tally.rejections} no of ${p.tally.needed} needed (${p.tally.outstanding} outstanding)`),
      el('td', {}, new Date(p.expiresAtMs).toLocaleTimeString()))))
    : empty('no open proposals'));
  fill('decisions', decisions.length
    ? table([{ label: '#', num: true }, 'proposal', 'outcome', 'votes', 'decided'], decisions.map(d => el('tr', {},
      el('td', { class: 'num' }, d.sequence),
      el('td', { title: d.proposalId }, short(d.proposal, 40)),
      el('td', { title: d.reason }, d.outcome),
      el('td', {}, Object.keys(d.votes).length),
      el('td', {}, new Date(d.decidedAtMs).toLocaleTimeString()))))
    : empty('no decisions yet'));
}

function renderReservations(snap) {
  const held = snap.reservations;
  fill('reservations', held.length
    ? table(['path', 'mode', 'holder', 'reason', 'expires'], held.map(r => el('tr', {},
      el('td', { title: r.reservationId }, short(r.path, 48)),
      el('td', {}, el('span', { class: 'badge ' + r.mode }, r.mode)),
      el('td', { title: r.agentId }, r.agentName),
      el('td', {}, r.reason ? short(r.reason, 40) : ''),
      el('td', {}, new Date(r.expiresAtMs).toLocaleTimeString()))))
    : empty('no path reservations'));
}

function renderTasks(snap) {
  const t = snap.tasks;
  if (!t.total) { fill('tasks', empty('no tasks yet')); return; }
  const byName = names(snap);
  fill('tasks',
    el('p', {}, `${t.total} tasks: `, Object.entries(t.byState).map(([k, v]) => el('span', { class: 'chip' }, `${k} ${v}`))),
    t.agents.length
      ? table(['agent', { label: 'queued', num: true }, { label: 'running', num: true }], t.agents.map(q => el('tr', {},
        el('td', {}, byName.get(q.agentId) || q.agentId), el('td', { class: 'num' }, q.queued), el('td', { class: 'num' }, q.running))))
      : empty('no task is queued on or running on an agent'));
}

function renderMessages(snap) {
  const m = snap.messages;
  if (!m.pending) { fill('messages', empty('no messages waiting in any mailbox')); return; }
  const byName = names(snap);
  const who = id => byName.get(id) || id;
  fill('messages',
    el('p', {}, `${m.pending} messages waiting (not yet acknowledged): `,
      Object.entries(m.perAgent).map(([id, n]) => el('span', { class: 'chip' }, `${who(id)} ${n}`))),
    table(['from → to', 'type', 'sent', { label: 'deliveries', num: true }], m.recent.map(x => el('tr', {},
      el('td', {}, `${who(x.from)} → ${who(x.to)}${x.broadcast ? ' (broadcast)' : ''}`),
      el('td', {}, x.type),
      el('td', {}, ago(snap.nowMs - x.sentAtMs)),
      el('td', { class: 'num' }, x.deliveries)))));
}

// Small line charts of the recorded metric series; absent series say so.
function renderMetrics(snap) {
  const m = snap.metrics;
  if (!m.series.length) { fill('metrics', empty(m.note || 'no metrics recorded yet')); return; }
  fill('metrics',
    el('p', { class: 'empty' }, `last ${Math.round((m.toMs - m.fromMs) / 60000)} min, one point per ${m.bucketMs / 1000} s bucket, from ${m.samples} samples of every process on this database (the newest bucket is still filling)${m.note ? '; ' + m.note : ''}`),
    el('div', { class: 'charts' }, m.series.map(s => chart(s, m))));
}

function chart(s, m) {
  const [w, h, pad] = [280, 110, 18];
  const [x0, x1] = [m.fromMs, m.toMs];
  const ys = s.points.map(p => p[1]);
  const [y0, y1] = [Math.min(0, ...ys), Math.max(...ys)];
  const sx = x => pad + ((x - x0) / (x1 - x0)) * (w - 2 * pad);
  const sy = y => h - pad - (y1 === y0 ? 0 : ((y - y0) / (y1 - y0)) * (h - 2 * pad));
  const points = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
  const latest = ys[ys.length - 1];
  const marks = s.points.length === 1 ? [svg('circle', { cx: sx(s.points[0][0]), cy: sy(latest), r: 2.5 })] : [svg('polyline', { points })];
  return el('div', { class: 'chart', 'data-metric': s.name },
    el('div', { class: 'title' }, s.label, ' ', el('span', { class: 'latest' }, `now ${fmt(latest)} ${s.unit}`)),
    svg('svg', { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: 'none' },
      svg('line', { class: 'axis', x1: pad, y1: h - pad, x2: w - pad, y2: h - pad }),
      svg('text', { x: 2, y: pad }, fmt(y1)),
      svg('text', { x: 2, y: h - pad }, fmt(y0)),
      svg('text', { x: pad, y: h - 4 }, new Date(x0).toLocaleTimeString()),
      svg('text', { x: w - pad - 40, y: h - 4 }, new Date(x1).toLocaleTimeString()),
      ...marks));
}
function fmt(x) { return x === 0 ? '0' : Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(2); }

// --- start ---------------------------------------------------------------------------------
document.getElementById('swarm').addEventListener('change', ev => {
  state.swarm = ev.target.value || null;
  const url = new URL(location.href);
  url.searchParams.set('swarm', state.swarm || '');
  history.replaceState(null, '', url);
  loadSnapshot();
});
if (REFRESH_MS > 0) setInterval(loadSnapshot, REFRESH_MS);
reloadAll();
subscribe();

// Scanline operator screen. Plain ES module, no dependencies, served by the gateway (works offline).
//
// Speaks the operator feed v1 (docs/protocol.md, "Operator feed v1"): subscribes to every lane, keeps each watched
// scan's preview image (decoded back to material class + brightness per sample, so the view can be re-coloured,
// windowed and stripped without asking the gateway), its machine results and decisions, and renders the selected
// scan with overlays. Decisions go to POST /v1/scans/:scanId/decision with the officer id in X-Scanline-Operator.

const PROTOCOL = 1;
const OPERATOR_ID = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const FRAME_MAGIC = 0x314f5358; // "XSO1"
const FRAME_FIXED_BYTES = 32;

// Material classes as the gateway's preview palette encodes them (src/stitch PREVIEW_PALETTE, native/preview.h):
// colour = round(base * s), s = 0.15 .. 1 (less attenuation is brighter). Background and single energy are grey.
const CLASS = { background: 0, organic: 1, mixed: 2, inorganic: 3, metal: 4, impenetrable: 5, gap: 6 };
const BASE = [
  [255, 255, 255],
  [255, 140, 0],
  [0, 170, 60],
  [30, 110, 255],
  [150, 50, 210],
  [24, 24, 24],
  [255, 0, 0],
];

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
};
const pct = (p) => `${Math.round(p * 100)}%`;
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');

/** Everything the screen knows. */
const state = {
  // ?operator= in the page address (e.g. a bookmarked screen) wins over the id remembered from last time.
  operatorId: new URLSearchParams(location.search).get('operator') || localStorage.getItem('scanline.operatorId') || '',
  ws: null,
  connected: false,
  lanes: new Map(),
  /** scanId -> ScanState (see newScan) */
  scans: new Map(),
  selected: null,
  /** What the officer picked by hand stays selected even with "follow new scans". */
  pinned: false,
  view: { mode: 'material', strip: 'none', lo: 0, hi: 1, zoom: 1, panX: 0, follow: true, overlays: true },
  history: [],
  /** scanId -> {suggestionId -> 'accept'|'reject'} */
  ratings: new Map(),
};

// ---------------------------------------------------------------------------------------------------------------
// Scan state and the decoded preview image

function newScan(summary, preview) {
  return {
    summary,
    downsample: preview.downsample,
    height: preview.height,
    columns: 0,
    capacity: 0,
    cls: new Uint8Array(0), // column-major: x * height + y
    shade: new Uint8Array(0), // 0..255 brightness s
    results: null,
    segments: [],
    alerts: new Map(),
    declaration: null,
    decisions: [],
    /** alert id -> scan state and line count when the screen first showed it */
    alertSeen: new Map(),
    firstSuggestionSeen: null,
    canvas: null, // offscreen canvas of the rendered image (width = capacity)
    dirtyFrom: 0, // columns from here on need rendering into `canvas`
    fullRender: true,
  };
}

function ensureCapacity(scan, columns) {
  if (columns <= scan.capacity) return;
  let cap = Math.max(64, scan.capacity);
  while (cap < columns) cap *= 2;
  const cls = new Uint8Array(cap * scan.height);
  const shade = new Uint8Array(cap * scan.height);
  cls.set(scan.cls);
  shade.set(scan.shade);
  scan.cls = cls;
  scan.shade = shade;
  scan.capacity = cap;
  scan.fullRender = true;
}

/** Reads material class and brightness back from one preview RGB sample. */
function decodeSample(r, g, b) {
  if (r === 255 && g === 0 && b === 0) return [CLASS.gap, 255];
  if (r === g && g === b) return r === 24 ? [CLASS.impenetrable, 0] : [CLASS.background, r];
  let best = 1;
  let bestErr = Infinity;
  let bestS = 0;
  for (let c = 1; c <= 4; c++) {
    const [br, bg, bb] = BASE[c];
    const s = (r * br + g * bg + b * bb) / (br * br + bg * bg + bb * bb);
    const er = r - s * br;
    const eg = g - s * bg;
    const eb = b - s * bb;
    const err = er * er + eg * eg + eb * eb;
    if (err < bestErr) {
      bestErr = err;
      best = c;
      bestS = s;
    }
  }
  return [best, Math.max(0, Math.min(255, Math.round(bestS * 255)))];
}

/** rgb -> (class << 8 | brightness): the palette has a few thousand distinct colours, so decode each once. */
const decoded = new Map();

/** Places a decoded image (RGBA, row-major, width x height) at preview column x0. */
function placeImage(scan, x0, width, height, rgba) {
  if (height !== scan.height) return;
  ensureCapacity(scan, x0 + width);
  for (let x = 0; x < width; x++) {
    const col = (x0 + x) * height;
    for (let y = 0; y < height; y++) {
      const i = (y * width + x) * 4;
      const key = (rgba[i] << 16) | (rgba[i + 1] << 8) | rgba[i + 2];
      let v = decoded.get(key);
      if (v === undefined) {
        const [c, s] = decodeSample(rgba[i], rgba[i + 1], rgba[i + 2]);
        v = (c << 8) | s;
        decoded.set(key, v);
      }
      scan.cls[col + y] = v >> 8;
      scan.shade[col + y] = v & 255;
    }
  }
  if (x0 + width > scan.columns) scan.columns = x0 + width;
  scan.dirtyFrom = Math.min(scan.dirtyFrom, x0);
}

/** Colour of one sample under the current view settings. */
function colourOf(c, s, v, out, o) {
  let r;
  let g;
  let b;
  if (c === CLASS.gap) {
    out[o] = 255; out[o + 1] = 0; out[o + 2] = 0; out[o + 3] = 255;
    return;
  }
  const stripped = (v.strip === 'organic' && c === CLASS.organic) || (v.strip === 'inorganic' && (c === CLASS.inorganic || c === CLASS.metal));
  if (stripped) {
    out[o] = 242; out[o + 1] = 242; out[o + 2] = 242; out[o + 3] = 255;
    return;
  }
  // Contrast window on brightness: [lo, hi] is stretched to the full range.
  let w = (s / 255 - v.lo) / Math.max(0.01, v.hi - v.lo);
  w = w < 0 ? 0 : w > 1 ? 1 : w;
  if (c === CLASS.impenetrable) {
    r = g = b = 24;
  } else if (v.mode === 'grey' || c === CLASS.background) {
    r = g = b = Math.round(255 * w);
  } else {
    const base = BASE[c];
    r = Math.round(base[0] * w);
    g = Math.round(base[1] * w);
    b = Math.round(base[2] * w);
  }
  out[o] = r; out[o + 1] = g; out[o + 2] = b; out[o + 3] = 255;
}

/** Renders the scan's dirty columns (or all of them) into its offscreen canvas. */
function renderScanImage(scan) {
  if (scan.columns === 0) return;
  if (!scan.canvas || scan.canvas.width !== scan.capacity) {
    const c = document.createElement('canvas');
    c.width = scan.capacity;
    c.height = scan.height;
    scan.canvas = c;
    scan.fullRender = true;
  }
  const from = scan.fullRender ? 0 : scan.dirtyFrom;
  const to = scan.columns;
  if (from >= to) return;
  const width = to - from;
  const ctx = scan.canvas.getContext('2d');
  const img = ctx.createImageData(width, scan.height);
  const v = state.view;
  for (let x = 0; x < width; x++) {
    const col = (from + x) * scan.height;
    for (let y = 0; y < scan.height; y++) colourOf(scan.cls[col + y], scan.shade[col + y], v, img.data, (y * width + x) * 4);
  }
  ctx.putImageData(img, from, 0);
  scan.fullRender = false;
  scan.dirtyFrom = scan.columns;
}

// ---------------------------------------------------------------------------------------------------------------
// Feed connection

let reconnectDelay = 500;

function connect() {
  if (!OPERATOR_ID.test(state.operatorId)) {
    setConn('closed', 'enter your officer id');
    return;
  }
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/operator?operator=${encodeURIComponent(state.operatorId)}`;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  state.ws = ws;
  setConn('connecting', 'connecting…');
  ws.onopen = () => {
    reconnectDelay = 500;
    state.connected = true;
    setConn('open', `live as ${state.operatorId}`);
    ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL }));
    const scans = state.selected && !isLiveOnLane(state.selected) ? [state.selected] : [];
    ws.send(JSON.stringify({ type: 'subscribe', portals: ['*'], ...(scans.length ? { scans } : {}) }));
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === 'string') onControl(JSON.parse(ev.data));
    else onImageFrame(ev.data);
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.connected = false;
    setConn('closed', `disconnected (${ev.code}${ev.reason ? ` ${ev.reason}` : ''}); retrying`);
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(10_000, reconnectDelay * 2);
  };
}

function isLiveOnLane(scanId) {
  for (const lane of state.lanes.values()) if (lane.liveScanId === scanId) return true;
  return false;
}

function setConn(s, text) {
  const c = $('conn');
  c.dataset.state = s;
  c.textContent = text;
}

function onControl(m) {
  switch (m.type) {
    case 'welcome':
      state.lanes.clear();
      for (const lane of m.lanes) state.lanes.set(lane.portalId, lane);
      renderLanes();
      break;
    case 'subscribed':
      break;
    case 'lane':
      state.lanes.set(m.lane.portalId, m.lane);
      renderLanes();
      if (!m.lane.liveScanId) scheduleHistory();
      break;
    case 'scan.started': {
      const scan = newScan(m.scan, m.preview);
      state.scans.set(m.scan.scanId, scan);
      if (state.view.follow && (!state.pinned || !state.selected)) select(m.scan.scanId, false);
      pruneScans();
      break;
    }
    case 'scan.snapshot': {
      let scan = state.scans.get(m.scan.scanId);
      if (!scan || scan.height !== m.preview.height) {
        scan = newScan(m.scan, m.preview);
        state.scans.set(m.scan.scanId, scan);
      }
      scan.summary = m.scan;
      applyReport(scan, m.results);
      scan.decisions = m.decisions;
      if (!state.selected && state.view.follow && m.scan.state === 'receiving') select(m.scan.scanId, false);
      refreshIf(m.scan.scanId);
      break;
    }
    case 'suggestions': {
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      scan.segments = m.segments;
      if (m.segments.length > 0 && !scan.firstSuggestionSeen) scan.firstSuggestionSeen = { state: scan.summary.state, lines: scan.summary.lines };
      refreshIf(m.scanId, 'results');
      break;
    }
    case 'alert': {
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      if (!scan.alertSeen.has(m.alert.id)) scan.alertSeen.set(m.alert.id, { state: scan.summary.state, lines: scan.columns * scan.downsample });
      scan.alerts.set(m.alert.id, m.alert);
      renderAlerts();
      refreshIf(m.scanId, 'results');
      break;
    }
    case 'declaration': {
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      scan.declaration = m.check;
      refreshIf(m.scanId, 'results');
      break;
    }
    case 'scan.completed': {
      const scan = state.scans.get(m.scan.scanId);
      if (!scan) return;
      scan.summary = m.scan;
      refreshIf(m.scan.scanId);
      break;
    }
    case 'results.final': {
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      applyReport(scan, m.report);
      refreshIf(m.scanId);
      scheduleHistory();
      break;
    }
    case 'decision': {
      const scan = state.scans.get(m.scanId);
      if (scan && !scan.decisions.some((d) => d.id === m.decision.id)) scan.decisions.push(m.decision);
      refreshIf(m.scanId);
      scheduleHistory();
      break;
    }
    case 'error':
      console.warn('operator feed error', m.code, m.message);
      break;
    default:
      break;
  }
}

function applyReport(scan, report) {
  scan.results = report;
  if (!report) return;
  scan.segments = report.goods.segments;
  scan.declaration = report.goods.declaration;
  for (const a of report.threats) {
    if (!scan.alertSeen.has(a.id)) scan.alertSeen.set(a.id, { state: scan.summary.state, lines: scan.summary.lines });
    scan.alerts.set(a.id, a);
  }
  if (scan.segments.length > 0 && !scan.firstSuggestionSeen) scan.firstSuggestionSeen = { state: scan.summary.state, lines: scan.summary.lines };
  renderAlerts();
}

async function onImageFrame(buffer) {
  const view = new DataView(buffer);
  if (buffer.byteLength < FRAME_FIXED_BYTES || view.getUint32(0, true) !== FRAME_MAGIC) return;
  const idBytes = view.getUint8(7);
  const line = view.getUint32(12, true);
  const lines = view.getUint32(16, true);
  const width = view.getUint32(20, true);
  const height = view.getUint16(24, true);
  const imageBytes = view.getUint32(28, true);
  const downsample = view.getUint8(6);
  const scanId = new TextDecoder().decode(new Uint8Array(buffer, FRAME_FIXED_BYTES, idBytes));
  const scan = state.scans.get(scanId);
  if (!scan || width === 0) return;
  const blob = new Blob([new Uint8Array(buffer, FRAME_FIXED_BYTES + idBytes, imageBytes)], { type: 'image/png' });
  const bitmap = await createImageBitmap(blob);
  const c = document.createElement('canvas');
  c.width = width;
  c.height = height;
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  placeImage(scan, Math.floor(line / downsample), width, height, ctx.getImageData(0, 0, width, height).data);
  if (scan.summary.state === 'receiving') scan.summary.lines = Math.max(scan.summary.lines, line + lines);
  if (scanId === state.selected) requestDraw();
  renderLanes();
}

/** Keeps memory bounded: scans that ended and are not selected are dropped after 12 are held. */
function pruneScans() {
  if (state.scans.size <= 12) return;
  for (const [id, s] of state.scans) {
    if (state.scans.size <= 12) break;
    if (id !== state.selected && s.summary.state !== 'receiving') state.scans.delete(id);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Selection and panels

function select(scanId, byHand) {
  state.selected = scanId;
  if (byHand) state.pinned = true;
  state.view.panX = 0;
  state.view.zoom = 1;
  $('decision-status').textContent = '';
  $('decision-status').className = 'decision-status';
  $('comment').value = '';
  if (!state.scans.has(scanId) && state.connected) state.ws.send(JSON.stringify({ type: 'subscribe', scans: [scanId] }));
  refreshIf(scanId);
  renderLanes();
  renderHistory();
}

function refreshIf(scanId, what = 'all') {
  if (scanId !== state.selected) {
    if (what !== 'image') renderAlerts();
    return;
  }
  renderHead();
  renderDeclaration();
  renderSuggestions();
  renderDecisions();
  renderAlerts();
  requestDraw();
}

function renderLanes() {
  const ul = $('lanes');
  ul.replaceChildren();
  if (state.lanes.size === 0) ul.append(el('li', { class: 'muted' }, 'No lanes yet'));
  for (const lane of state.lanes.values()) {
    const scanId = lane.liveScanId || lane.lastScanId;
    const li = el(
      'li',
      { 'data-portal': lane.portalId, class: scanId && scanId === state.selected ? 'selected' : '', onclick: () => scanId && select(scanId, true) },
      el('span', { class: `dot ${lane.liveScanId ? 'live' : ''}` }),
      el('span', { class: 'lane-name', text: lane.portalId }),
      ' ',
      lane.alarmDecision ? el('span', { class: `badge ${lane.alarmDecision}`, text: lane.alarmDecision }) : null,
      el('div', { class: 'muted', text: lane.liveScanId ? `scanning · ${liveLines(lane)} lines` : lane.lastState ? `idle · last ${lane.lastState}` : 'idle' }),
    );
    ul.append(li);
  }
}

/** Lines of a lane's live scan: from its strips when the screen holds the scan, else the last lane update. */
function liveLines(lane) {
  const scan = state.scans.get(lane.liveScanId);
  return scan ? Math.max(lane.lines, scan.summary.lines) : lane.lines;
}

function renderHead() {
  const scan = state.scans.get(state.selected);
  if (!scan) return;
  const s = scan.summary;
  const vehicle = s.vehicle && s.vehicle.kind ? ` · ${s.vehicle.kind}` : '';
  $('scan-title').textContent = `${s.portalId} · ${s.scanId}${vehicle}`;
  const st = $('scan-state');
  st.textContent = s.state;
  st.className = `badge ${s.state}`;
  const adv = $('machine-advice');
  const r = scan.results;
  const alarm = scan.alerts.size > 0 || (scan.declaration && scan.declaration.status === 'mismatch');
  const advice = alarm ? 'ALARM' : r ? r.alarmDecision : '';
  adv.textContent = advice ? `machine: ${advice}` : '';
  adv.className = `badge ${advice}`;
  if (r && r.decisionReason) adv.title = r.decisionReason;
  const view = $('scan-view');
  view.dataset.state = s.state;
  view.dataset.scanId = s.scanId;
  const canDecide = OPERATOR_ID.test(state.operatorId);
  $('btn-clear').disabled = !canDecide;
  $('btn-inspect').disabled = !canDecide;
}

function renderAlerts() {
  const ul = $('alerts');
  ul.replaceChildren();
  const items = [];
  for (const [scanId, scan] of state.scans) {
    for (const a of scan.alerts.values()) items.push({ scanId, scan, a });
    if (scan.declaration && scan.declaration.status === 'mismatch') items.push({ scanId, scan, mismatch: scan.declaration });
  }
  items.sort((x, y) => (x.scanId === state.selected ? -1 : 0) - (y.scanId === state.selected ? -1 : 0));
  if (items.length === 0) ul.append(el('li', { class: 'muted none', text: 'No alerts' }));
  for (const it of items) {
    const other = it.scanId !== state.selected ? ' other-scan' : '';
    if (it.a) {
      const seen = it.scan.alertSeen.get(it.a.id);
      const b = it.a.box;
      ul.append(
        el(
          'li',
          {
            class: `alert-item${other}`,
            'data-scan-id': it.scanId,
            'data-alert-id': it.a.id,
            'data-seen-while': seen ? seen.state : '',
            onclick: () => select(it.scanId, true),
          },
          el('div', { class: 'alert-title', text: `⚠ ${it.a.name} ${pct(it.a.probability)}` }),
          el('div', { class: 'muted', text: `${it.scan.summary.portalId} · lines ${b.lineStart}–${b.lineEnd}${seen && seen.state === 'receiving' ? ` · raised at line ${seen.lines} while scanning` : ''}` }),
        ),
      );
    } else {
      const names = it.mismatch.undeclared.map((u) => u.name).join(', ') || 'declared goods not seen';
      ul.append(
        el(
          'li',
          { class: `alert-item mismatch${other}`, 'data-scan-id': it.scanId, 'data-kind': 'declaration', onclick: () => select(it.scanId, true) },
          el('div', { class: 'alert-title', text: '⚠ Declaration mismatch' }),
          el('div', { class: 'muted', text: `${it.scan.summary.portalId} · undeclared: ${names}` }),
        ),
      );
    }
  }
}

function renderDeclaration() {
  const box = $('declaration');
  const scan = state.scans.get(state.selected);
  if (!scan) return;
  const declared = (scan.summary.declaration && scan.summary.declaration.hsCodes) || [];
  const d = scan.declaration;
  box.replaceChildren();
  box.className = 'declaration';
  const status = d ? d.status : 'unknown';
  box.append(el('div', { class: status, 'data-status': status, text: `Status: ${status}${d && d.emptyButDeclared ? ' (cargo bay looks empty)' : ''}` }));
  const table = el('table', {}, el('tr', {}, el('th', { text: 'Declared' }), el('th', { text: 'Observed' })));
  const observed = new Map();
  for (const s of scan.segments) {
    const top = s.top3[0];
    if (!top || !top.hsCodes || top.hsCodes.length === 0) continue;
    const o = observed.get(top.label) || { name: top.name, codes: top.hsCodes, conf: 0 };
    o.conf = Math.max(o.conf, s.confidence);
    observed.set(top.label, o);
  }
  const undeclared = new Set(d ? d.undeclared.map((u) => u.label) : []);
  const rows = Math.max(declared.length, observed.size, 1);
  const obs = [...observed.entries()];
  for (let i = 0; i < rows; i++) {
    const o = obs[i];
    table.append(
      el(
        'tr',
        {},
        el('td', { text: declared[i] || (i === 0 && declared.length === 0 ? (scan.summary.declaration ? 'nothing' : 'no declaration') : '') }),
        el('td', { class: o && undeclared.has(o[0]) ? 'mismatch' : o ? 'match' : '', text: o ? `${o[1].name} (${o[1].codes.join(', ')}) ${pct(o[1].conf)}${undeclared.has(o[0]) ? ' — undeclared' : ''}` : '' }),
      ),
    );
  }
  box.append(table);
  if (d && d.notSeen.length > 0) box.append(el('div', { class: 'muted', text: `Declared, not seen: ${d.notSeen.join(', ')}` }));
}

function ratingsOf(scanId) {
  if (!state.ratings.has(scanId)) state.ratings.set(scanId, {});
  return state.ratings.get(scanId);
}

function rateButtons(scanId, id) {
  const r = ratingsOf(scanId);
  const mk = (value, label) =>
    el('button', {
      class: `${value} ${r[id] === value ? 'on' : ''}`,
      'data-rate': value,
      text: label,
      onclick: (e) => {
        e.stopPropagation();
        if (r[id] === value) delete r[id];
        else r[id] = value;
        renderSuggestions();
      },
    });
  return el('span', { class: 'rate' }, mk('accept', 'accept'), ' ', mk('reject', 'reject'));
}

function renderSuggestions() {
  const ul = $('suggestions');
  const scan = state.scans.get(state.selected);
  if (!scan) return;
  ul.replaceChildren();
  const threats = [...scan.alerts.values()];
  if (scan.segments.length === 0 && threats.length === 0) ul.append(el('li', { class: 'muted none', text: scan.results === null && scan.summary.state !== 'receiving' ? 'No machine results for this scan' : 'No suggestions yet' }));
  for (const a of threats) {
    ul.append(
      el(
        'li',
        { class: 'suggestion threat', 'data-suggestion-id': a.id },
        el('div', { class: 'suggestion-head' }, el('strong', { text: `${a.name} ${pct(a.probability)}` }), rateButtons(scan.summary.scanId, a.id)),
        el('div', { class: 'top3', text: `threat · lines ${a.box.lineStart}–${a.box.lineEnd}, pixels ${a.box.pixelStart}–${a.box.pixelEnd}` }),
      ),
    );
  }
  for (const s of scan.segments) {
    const top = s.top3[0];
    ul.append(
      el(
        'li',
        { class: 'suggestion goods', 'data-suggestion-id': s.id, 'data-seen-while': scan.firstSuggestionSeen ? scan.firstSuggestionSeen.state : '' },
        el('div', { class: 'suggestion-head' }, el('strong', { text: `${top ? top.name : '?'} ${pct(s.confidence)}` }), rateButtons(scan.summary.scanId, s.id)),
        el('div', { class: 'top3', text: `lines ${s.startLine}–${s.endLine}${s.final ? '' : ' (growing)'} · ${s.top3.map((t) => `${t.name} ${pct(t.probability)}`).join(' · ')}` }),
      ),
    );
  }
}

function renderDecisions() {
  const ul = $('decisions');
  const scan = state.scans.get(state.selected);
  if (!scan) return;
  ul.replaceChildren();
  for (const d of [...scan.decisions].reverse()) {
    const rated = Object.entries(d.suggestions).map(([id, v]) => `${id} ${v}`).join(', ');
    ul.append(
      el(
        'li',
        { class: 'decision-item', 'data-verdict': d.verdict },
        el('span', { class: `badge ${d.verdict}`, text: d.verdict.toUpperCase() }),
        ` ${d.operatorId} · ${time(d.decidedAt)}`,
        d.comment ? el('div', { text: `“${d.comment}”` }) : null,
        rated ? el('div', { class: 'muted', text: rated }) : null,
      ),
    );
  }
}

async function decide(verdict) {
  const scanId = state.selected;
  const status = $('decision-status');
  if (!scanId) return;
  if (!OPERATOR_ID.test(state.operatorId)) {
    status.textContent = 'Enter your officer id first.';
    status.className = 'decision-status error';
    return;
  }
  const comment = $('comment').value.trim();
  const body = { verdict, ...(comment ? { comment } : {}) };
  const ratings = ratingsOf(scanId);
  if (Object.keys(ratings).length > 0) body.suggestions = { ...ratings };
  status.textContent = 'Recording…';
  status.className = 'decision-status';
  try {
    const res = await fetch(`/v1/scans/${encodeURIComponent(scanId)}/decision`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-scanline-operator': state.operatorId },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    if (res.status !== 201) throw new Error(`${answer.error.code}: ${answer.error.message}`);
    const scan = state.scans.get(scanId);
    if (scan && !scan.decisions.some((d) => d.id === answer.id)) scan.decisions.push(answer);
    status.textContent = `Recorded ${answer.verdict.toUpperCase()} by ${answer.operatorId} at ${time(answer.decidedAt)}`;
    status.dataset.recorded = answer.verdict;
    $('comment').value = '';
    renderDecisions();
    scheduleHistory();
  } catch (err) {
    status.textContent = `Not recorded: ${err.message}`;
    status.className = 'decision-status error';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// History

let historyTimer = null;

function scheduleHistory() {
  if (historyTimer) return;
  historyTimer = setTimeout(() => {
    historyTimer = null;
    loadHistory();
  }, 300);
}

async function loadHistory() {
  try {
    const res = await fetch('/v1/scans?limit=50');
    const body = await res.json();
    state.history = body.scans || [];
  } catch {
    return;
  }
  renderHistory();
}

function renderHistory() {
  const ul = $('history');
  ul.replaceChildren();
  if (state.history.length === 0) ul.append(el('li', { class: 'muted', text: 'No scans yet' }));
  for (const s of state.history) {
    const last = s.decisions && s.decisions.length > 0 ? s.decisions[s.decisions.length - 1] : null;
    ul.append(
      el(
        'li',
        { class: `history-row ${s.scanId === state.selected ? 'selected' : ''}`, 'data-scan-id': s.scanId, onclick: () => select(s.scanId, true) },
        el('div', {}, el('strong', { text: s.portalId }), ` ${time(s.startedAt)} · ${s.state}`),
        el(
          'div',
          {},
          s.alarmDecision ? el('span', { class: `badge ${s.alarmDecision}`, text: s.alarmDecision }) : null,
          ' ',
          last ? el('span', { class: `badge verdict ${last.verdict}`, 'data-verdict': last.verdict, text: `${last.verdict.toUpperCase()} · ${last.operatorId}` }) : el('span', { class: 'muted', text: 'no decision' }),
        ),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing the selected scan: image, zoom/pan, overlays

const canvas = $('scan-canvas');
let drawPending = false;

function requestDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    draw();
  });
}

function draw() {
  const view = $('scan-view');
  const dpr = window.devicePixelRatio || 1;
  const cw = Math.max(1, Math.round(view.clientWidth * dpr));
  const ch = Math.max(1, Math.round(view.clientHeight * dpr));
  if (canvas.width !== cw || canvas.height !== ch) {
    canvas.width = cw;
    canvas.height = ch;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = '#0b0d10';
  ctx.fillRect(0, 0, cw, ch);
  const scan = state.scans.get(state.selected);
  view.dataset.columns = scan ? String(scan.columns) : '0';
  if (!scan || scan.columns === 0) return;
  renderScanImage(scan);
  const v = state.view;
  // Fit the detector height to the view, then zoom; panX is in screen pixels.
  const scale = (ch / scan.height) * v.zoom;
  const imageWidth = scan.columns * scale;
  if (v.follow && !state.pinned && scan.summary.state === 'receiving') v.panX = Math.min(0, cw - imageWidth - 20 * dpr);
  v.panX = Math.max(Math.min(v.panX, cw / 2), Math.min(0, cw / 2 - imageWidth));
  ctx.imageSmoothingEnabled = v.zoom < 1;
  ctx.setTransform(scale, 0, 0, scale, v.panX, 0);
  ctx.drawImage(scan.canvas, 0, 0, scan.columns, scan.height, 0, 0, scan.columns, scan.height);
  if (v.overlays) drawOverlays(ctx, scan, scale, dpr);
}

function drawOverlays(ctx, scan, scale, dpr) {
  const d = scan.downsample;
  const px = 1 / scale; // one screen pixel in image units
  ctx.font = `${12 * dpr * px}px system-ui, "DejaVu Sans", sans-serif`;
  ctx.textBaseline = 'top';
  // Goods segments: a band along the top with the top-3 and confidence.
  const palette = ['#4c9aff', '#f2cc60', '#56d364', '#ff7b72', '#d2a8ff'];
  scan.segments.forEach((s, i) => {
    const x0 = s.startLine / d;
    const x1 = s.endLine / d;
    const colour = palette[i % palette.length];
    ctx.fillStyle = `${colour}33`;
    ctx.fillRect(x0, 0, x1 - x0, scan.height);
    ctx.fillStyle = colour;
    ctx.fillRect(x0, 0, x1 - x0, 4 * dpr * px);
    ctx.strokeStyle = colour;
    ctx.lineWidth = 1 * dpr * px;
    ctx.beginPath();
    ctx.moveTo(x0, 0);
    ctx.lineTo(x0, scan.height);
    ctx.stroke();
    const label = s.top3.map((t) => `${t.name} ${pct(t.probability)}`).join(' | ');
    drawLabel(ctx, label, x0 + 4 * dpr * px, 8 * dpr * px, colour, px, dpr);
  });
  // Threat boxes.
  for (const a of scan.alerts.values()) {
    const b = a.box;
    ctx.strokeStyle = '#ff2d2d';
    ctx.lineWidth = 3 * dpr * px;
    ctx.strokeRect(b.lineStart / d, b.pixelStart / d, (b.lineEnd - b.lineStart) / d, (b.pixelEnd - b.pixelStart) / d);
    drawLabel(ctx, `${a.name} ${pct(a.probability)}`, b.lineStart / d, b.pixelEnd / d + 3 * dpr * px, '#ff2d2d', px, dpr);
  }
}

function drawLabel(ctx, text, x, y, colour, px, dpr) {
  const w = ctx.measureText(text).width;
  ctx.fillStyle = 'rgba(0,0,0,0.7)';
  ctx.fillRect(x - 2 * dpr * px, y - 2 * dpr * px, w + 4 * dpr * px, 16 * dpr * px);
  ctx.fillStyle = colour;
  ctx.fillText(text, x, y);
}

// ---------------------------------------------------------------------------------------------------------------
// Controls

function setToggle(ids, on) {
  for (const id of ids) $(id).classList.toggle('on', id === on);
}

function rerender() {
  const scan = state.scans.get(state.selected);
  if (scan) scan.fullRender = true;
  requestDraw();
}

function wire() {
  const idInput = $('operator-id');
  idInput.value = state.operatorId;
  idInput.addEventListener('change', () => {
    const v = idInput.value.trim();
    idInput.classList.toggle('invalid', v !== '' && !OPERATOR_ID.test(v));
    if (!OPERATOR_ID.test(v)) return;
    state.operatorId = v;
    localStorage.setItem('scanline.operatorId', v);
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      old.close(1000, 'operator changed');
    }
    connect();
    renderHead();
  });
  $('view-material').onclick = () => { state.view.mode = 'material'; setToggle(['view-material', 'view-grey'], 'view-material'); rerender(); };
  $('view-grey').onclick = () => { state.view.mode = 'grey'; setToggle(['view-material', 'view-grey'], 'view-grey'); rerender(); };
  const strips = ['strip-none', 'strip-organic', 'strip-inorganic'];
  for (const id of strips) $(id).onclick = () => { state.view.strip = id.slice(6); setToggle(strips, id); rerender(); };
  const zoomAt = (factor, cx) => {
    const v = state.view;
    const z = Math.max(0.25, Math.min(16, v.zoom * factor));
    v.panX = cx - ((cx - v.panX) * z) / v.zoom;
    v.zoom = z;
    state.pinned = state.pinned || factor !== 1;
    requestDraw();
  };
  $('zoom-in').onclick = () => zoomAt(1.5, canvas.width / 2);
  $('zoom-out').onclick = () => zoomAt(1 / 1.5, canvas.width / 2);
  $('zoom-fit').onclick = () => { state.view.zoom = 1; state.view.panX = 0; state.pinned = false; requestDraw(); };
  const windowChanged = () => {
    let lo = Number($('window-lo').value) / 100;
    let hi = Number($('window-hi').value) / 100;
    if (hi <= lo) hi = Math.min(1, lo + 0.01);
    state.view.lo = lo;
    state.view.hi = hi;
    rerender();
  };
  $('window-lo').oninput = windowChanged;
  $('window-hi').oninput = windowChanged;
  $('show-overlays').onchange = (e) => { state.view.overlays = e.target.checked; requestDraw(); };
  $('follow-live').onchange = (e) => { state.view.follow = e.target.checked; if (e.target.checked) state.pinned = false; };
  $('btn-clear').onclick = () => decide('clear');
  $('btn-inspect').onclick = () => decide('inspect');
  $('history-refresh').onclick = () => loadHistory();
  const view = $('scan-view');
  let drag = null;
  view.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, panX: state.view.panX };
    view.classList.add('dragging');
    view.setPointerCapture(e.pointerId);
  });
  view.addEventListener('pointermove', (e) => {
    if (!drag) return;
    state.view.panX = drag.panX + (e.clientX - drag.x) * (window.devicePixelRatio || 1);
    state.pinned = true;
    requestDraw();
  });
  view.addEventListener('pointerup', () => { drag = null; view.classList.remove('dragging'); });
  view.addEventListener('wheel', (e) => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect();
    zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, (e.clientX - rect.left) * (window.devicePixelRatio || 1));
  }, { passive: false });
  window.addEventListener('resize', requestDraw);
}

wire();
renderLanes();
loadHistory();
connect();
if (!OPERATOR_ID.test(state.operatorId)) $('operator-id').focus();

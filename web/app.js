// @ts-check
// Scanline operator screen. Plain ES module, no dependencies, served by the gateway (works offline). Type-checked by
// `npm run build` (web/tsconfig.json, checkJs) against the JSDoc types below.
//
// Speaks the operator feed v1 (docs/protocol.md, "Operator feed v1"): subscribes to every lane, keeps each held
// scan's preview image (decoded back to material class + brightness per sample, so the view can be re-coloured,
// windowed and stripped without asking the gateway), its machine results and decisions, and renders the selected
// scan with overlays. Decisions go to POST /v1/scans/:scanId/decision with the officer id in X-Scanline-Operator.
//
// Selection: the screen follows one lane ("follow new scans"): a new scan on the lane of the selected scan is
// opened, unless the officer opened an older scan by hand or has unfinished work on the current one (a comment or
// ratings not yet sent): then a note says a new scan is waiting. Comments and ratings are kept per scan.

/** @typedef {{pixels: number, energies: number, pitchMm: number, lineRateHz: number}} Detector */
/**
 * @typedef {{scanId: string, portalId: string, state: string, lines: number, detector: Detector,
 *   vehicle: Record<string, unknown> | null, declaration: {hsCodes: string[]} | null, startedAt: string,
 *   endedAt: string | null}} ScanSummary
 */
/**
 * @typedef {{portalId: string, liveScanId: string | null, lastScanId: string | null, lastState: string | null,
 *   lines: number, alarmDecision: string | null, updatedAt: string}} LaneStatus
 */
/** @typedef {{downsample: number, width: number, height: number, seq?: number}} Preview */
/** @typedef {{label: string, name: string, hsCodes: string[], probability: number}} Category */
/** @typedef {{id: string, startLine: number, endLine: number, top3: Category[], confidence: number, final: boolean}} Segment */
/** @typedef {{lineStart: number, lineEnd: number, pixelStart: number, pixelEnd: number}} Box */
/** @typedef {{id: string, category: string, name: string, probability: number, box: Box, raisedAt: string, updatedAt: string, merged?: string[]}} Alert */
/**
 * @typedef {{status: 'unknown' | 'match' | 'mismatch', declared: string[],
 *   undeclared: Array<{label: string, name: string, hsCodes: string[]}>, notSeen: string[],
 *   emptyButDeclared: boolean}} DeclarationCheck
 */
/**
 * Reports stored before 2026-12-07 have no decisionReasons, triage, outOfDistribution or hints.
 * @typedef {{alarmDecision: string, decisionReason?: string, decisionReasons?: string[], status: string,
 *   triage?: {level: 'GREEN' | 'AMBER' | 'RED', greenScore: number | null, greenMinConfidence: number},
 *   outOfDistribution?: {tiles: number, outOfDistribution: number, share: number, scanShare: number, scan: boolean, maxScore: number} | null,
 *   goods: {segments: Segment[], declaration: DeclarationCheck}, threats: Alert[], hints?: Alert[]}} MachineReport
 */
/** @typedef {'accept' | 'reject'} Rating */
/**
 * @typedef {{id: number, scanId: string, operatorId: string, verdict: 'clear' | 'inspect', comment: string | null,
 *   suggestions: Record<string, Rating>, machineDecision: string | null, decidedAt: string}} Decision
 */
/**
 * @typedef {{type: 'welcome', protocol: number, operatorId: string, lanes: LaneStatus[]}
 *   | {type: 'subscribed', portals: string[], scans: string[]}
 *   | {type: 'lane', lane: LaneStatus}
 *   | {type: 'scan.started', scan: ScanSummary, preview: Preview}
 *   | {type: 'scan.snapshot', scan: ScanSummary, preview: Preview, results: MachineReport | null, decisions: Decision[], resync: boolean}
 *   | {type: 'suggestions', scanId: string, portalId: string, segments: Segment[]}
 *   | {type: 'alert', scanId: string, portalId: string, alert: Alert}
 *   | {type: 'distribution', scanId: string, portalId: string, outOfDistribution: boolean, withdrawnAlertIds: string[], hints: Alert[]}
 *   | {type: 'declaration', scanId: string, portalId: string, check: DeclarationCheck}
 *   | {type: 'scan.completed', scan: ScanSummary}
 *   | {type: 'results.final', scanId: string, portalId: string, report: MachineReport}
 *   | {type: 'decision', scanId: string, portalId: string, decision: Decision}
 *   | {type: 'error', code: string, message: string}} ServerMessage
 */
/** A history entry of GET /v1/scans. @typedef {ScanSummary & {alarmDecision: string | null, decisions: Decision[]}} HistoryScan */
/**
 * What the screen holds of one scan.
 * @typedef {{
 *   summary: ScanSummary, downsample: number, height: number, columns: number, capacity: number,
 *   cls: Uint8Array, shade: Uint8Array, results: MachineReport | null, segments: Segment[], alerts: Map<string, Alert>, hints: Alert[],
 *   outOfDistribution: boolean,
 *   declaration: DeclarationCheck | null, decisions: Decision[],
 *   alertSeen: Map<string, {state: string, lines: number}>, firstSuggestionSeen: {state: string, lines: number} | null,
 *   canvas: HTMLCanvasElement | null, dirtyFrom: number, fullRender: boolean
 * }} ScanView
 */
/**
 * View settings. zoom 1 fits the detector height to the view; panX / panY are in device pixels.
 * @typedef {{mode: 'material' | 'grey', strip: 'none' | 'organic' | 'inorganic', lo: number, hi: number, zoom: number,
 *   panX: number, panY: number, follow: boolean, overlays: boolean, touched: boolean}} ViewSettings
 */

const PROTOCOL = 1;
/** Roles that may record decisions (the gateway refuses the others with SCANLINE_ERR_AUTH_FORBIDDEN). */
const DECIDING_ROLES = new Set(['officer', 'supervisor', 'admin']);
const FRAME_MAGIC = 0x314f5358; // "XSO1"
const FRAME_FIXED_BYTES = 32;
/** Scans held beyond the selected and the live ones (older ended scans are dropped first). */
const MAX_HELD_SCANS = 12;

// Material classes as the gateway's preview palette encodes them (src/stitch PREVIEW_PALETTE, native/preview.h):
// colour = round(base * s), s = 0.15 .. 1 (less attenuation is brighter). Background and single energy are grey.
const CLASS = { background: 0, organic: 1, mixed: 2, inorganic: 3, metal: 4, impenetrable: 5, gap: 6 };
/** @type {ReadonlyArray<readonly [number, number, number]>} */
const BASE = [
  [255, 255, 255],
  [255, 140, 0],
  [0, 170, 60],
  [30, 110, 255],
  [150, 50, 210],
  [24, 24, 24],
  [255, 0, 0],
];

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
function $(id) {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e;
}

/**
 * @param {string} id
 * @returns {HTMLInputElement}
 */
function input(id) {
  const e = $(id);
  if (!(e instanceof HTMLInputElement)) throw new Error(`#${id} is not an input`);
  return e;
}

/**
 * @param {string} id
 * @returns {HTMLButtonElement}
 */
function button(id) {
  const e = $(id);
  if (!(e instanceof HTMLButtonElement)) throw new Error(`#${id} is not a button`);
  return e;
}

/**
 * @param {string} tag
 * @param {Record<string, string | ((e: Event) => void)>} attrs  `class`, `text`, `on<event>` or an attribute
 * @param {...(Node | string | null | undefined)} children
 * @returns {HTMLElement}
 */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

/** @param {number} p */
const pct = (p) => `${Math.round(p * 100)}%`;
/** @param {string | null | undefined} iso */
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '');

const commentBox = /** @type {HTMLTextAreaElement} */ ($('comment'));

/** Everything the screen knows. */
const state = {
  /** The signed-in account ('' while signed out), its role, and the token state-changing requests carry. */
  user: '',
  role: '',
  csrfToken: '',
  /** @type {WebSocket | null} */
  ws: null,
  connected: false,
  /** @type {Map<string, LaneStatus>} */
  lanes: new Map(),
  /** @type {Map<string, ScanView>} */
  scans: new Map(),
  /** Scans this screen subscribed to by name (history); unsubscribed when dropped. @type {Set<string>} */
  named: new Set(),
  /** @type {string | null} */
  selected: null,
  /** The officer opened an older scan by hand: new scans do not take the screen away from it. */
  pinned: false,
  /** A new scan on the followed lane waiting because the officer was busy. @type {string | null} */
  waiting: null,
  /** @type {ViewSettings} */
  view: { mode: 'material', strip: 'none', lo: 0, hi: 1, zoom: 1, panX: 0, panY: 0, follow: true, overlays: true, touched: false },
  /** @type {HistoryScan[]} */
  history: [],
  /** scanId -> {suggestionId -> rating}, until a decision is recorded. @type {Map<string, Record<string, Rating>>} */
  ratings: new Map(),
  /** scanId -> unsent comment. @type {Map<string, string>} */
  drafts: new Map(),
};

// ---------------------------------------------------------------------------------------------------------------
// Scan state and the decoded preview image

/**
 * @param {ScanSummary} summary
 * @param {Preview} preview
 * @returns {ScanView}
 */
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
    hints: [],
    outOfDistribution: false,
    declaration: null,
    decisions: [],
    alertSeen: new Map(),
    firstSuggestionSeen: null,
    canvas: null, // offscreen canvas of the rendered image (width = capacity)
    dirtyFrom: 0, // columns from here on need rendering into `canvas`
    fullRender: true,
  };
}

/**
 * @param {ScanView} scan
 * @param {number} columns
 */
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

/**
 * Reads material class and brightness back from one preview RGB sample.
 * @param {number} r
 * @param {number} g
 * @param {number} b
 * @returns {[number, number]}
 */
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

/** rgb -> (class << 8 | brightness): the palette has a few thousand distinct colours, so decode each once. @type {Map<number, number>} */
const decoded = new Map();

/**
 * Places a decoded image (RGBA, row-major, width x height) at preview column x0.
 * @param {ScanView} scan
 * @param {number} x0
 * @param {number} width
 * @param {number} height
 * @param {Uint8ClampedArray} rgba
 */
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

/**
 * Colour of one sample under the current view settings, written to out[o..o+3].
 * @param {number} c material class
 * @param {number} s brightness 0..255
 * @param {ViewSettings} v
 * @param {Uint8ClampedArray} out
 * @param {number} o
 */
function colourOf(c, s, v, out, o) {
  let r;
  let g;
  let b;
  if (c === CLASS.gap) {
    out[o] = 255;
    out[o + 1] = 0;
    out[o + 2] = 0;
    out[o + 3] = 255;
    return;
  }
  const stripped = (v.strip === 'organic' && c === CLASS.organic) || (v.strip === 'inorganic' && (c === CLASS.inorganic || c === CLASS.metal));
  if (stripped) {
    out[o] = 242;
    out[o + 1] = 242;
    out[o + 2] = 242;
    out[o + 3] = 255;
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
  out[o] = r;
  out[o + 1] = g;
  out[o + 2] = b;
  out[o + 3] = 255;
}

/**
 * Renders the scan's dirty columns (or all of them) into its offscreen canvas.
 * @param {ScanView} scan
 */
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
  const ctx = /** @type {CanvasRenderingContext2D} */ (scan.canvas.getContext('2d'));
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
  if (!state.user) {
    setConn('closed', 'signed out');
    return;
  }
  // The session cookie goes with the upgrade (same origin); the gateway knows who this is.
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/operator`;
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  state.ws = ws;
  setConn('connecting', 'connecting…');
  ws.onopen = () => {
    reconnectDelay = 500;
    state.connected = true;
    setConn('open', 'live');
    ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL }));
    // Every lane, plus every scan held: those that ended while the screen was away get a fresh snapshot too (the
    // gateway sends snapshots of the lanes' live scans only).
    state.named = new Set(state.scans.keys());
    if (state.selected) state.named.add(state.selected);
    ws.send(JSON.stringify({ type: 'subscribe', portals: ['*'], ...(state.named.size > 0 ? { scans: [...state.named] } : {}) }));
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === 'string') onControl(/** @type {ServerMessage} */ (JSON.parse(ev.data)));
    else void onImageFrame(/** @type {ArrayBuffer} */ (ev.data));
  };
  ws.onclose = (ev) => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.connected = false;
    // A refused upgrade reaches the page as 1006 without its reason: ask whether the session still holds.
    void fetch('/v1/session').then(
      (res) => {
        if (res.status === 401) {
          showSignIn('Your session has ended. Sign in again.');
          return;
        }
        setConn('closed', `disconnected (${ev.code}${ev.reason ? ` ${ev.reason}` : ''}); retrying`);
        setTimeout(connect, reconnectDelay);
        reconnectDelay = Math.min(10_000, reconnectDelay * 2);
      },
      () => {
        setConn('closed', 'gateway unreachable; retrying');
        setTimeout(connect, reconnectDelay);
        reconnectDelay = Math.min(10_000, reconnectDelay * 2);
      },
    );
  };
}

/** @param {unknown} message */
function send(message) {
  if (state.ws && state.connected && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(message));
}

/** @param {string} scanId */
function isLiveOnLane(scanId) {
  for (const lane of state.lanes.values()) if (lane.liveScanId === scanId) return true;
  return false;
}

/**
 * @param {string} s
 * @param {string} text
 */
function setConn(s, text) {
  const c = $('conn');
  c.dataset.state = s;
  c.textContent = text;
}

/** @param {ServerMessage} m */
function onControl(m) {
  switch (m.type) {
    case 'welcome':
      state.lanes.clear();
      for (const lane of m.lanes) state.lanes.set(lane.portalId, lane);
      schedule('lanes');
      break;
    case 'subscribed':
      break;
    case 'lane':
      state.lanes.set(m.lane.portalId, m.lane);
      schedule('lanes');
      if (!m.lane.liveScanId) scheduleHistory();
      break;
    case 'scan.started': {
      state.scans.set(m.scan.scanId, newScan(m.scan, m.preview));
      follow(m.scan);
      pruneScans();
      scheduleHistory();
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
      if (!state.selected && state.view.follow && m.scan.state === 'receiving') select(m.scan.scanId, { pinned: false });
      refreshIf(m.scan.scanId);
      pruneScans();
      break;
    }
    case 'suggestions': {
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      scan.segments = m.segments;
      if (m.segments.length > 0 && !scan.firstSuggestionSeen) scan.firstSuggestionSeen = { state: scan.summary.state, lines: scan.summary.lines };
      refreshIf(m.scanId);
      break;
    }
    case 'alert': {
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      if (!scan.alertSeen.has(m.alert.id)) scan.alertSeen.set(m.alert.id, { state: scan.summary.state, lines: scan.columns * scan.downsample });
      // Alerts this one absorbed (a cell bridged them) no longer exist.
      for (const gone of m.alert.merged ?? []) scan.alerts.delete(gone);
      scan.alerts.set(m.alert.id, m.alert);
      refreshIf(m.scanId);
      break;
    }
    case 'distribution': {
      // The scan crossed the out-of-distribution line (or its hints changed while out): withdrawn alerts are hints
      // now (dashed, never ALARM), and ratings of them go; back in, its alerts come again as `alert` messages.
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      scan.outOfDistribution = m.outOfDistribution;
      const ratings = state.ratings.get(m.scanId);
      for (const id of m.withdrawnAlertIds) {
        scan.alerts.delete(id);
        if (ratings) delete ratings[id];
      }
      scan.hints = m.hints;
      refreshIf(m.scanId);
      break;
    }
    case 'declaration': {
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      scan.declaration = m.check;
      refreshIf(m.scanId);
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
      scheduleHistory();
      const scan = state.scans.get(m.scanId);
      if (!scan) return;
      applyReport(scan, m.report);
      refreshIf(m.scanId);
      break;
    }
    case 'decision': {
      // Any officer's decision on a watched lane: the history shows it.
      scheduleHistory();
      const scan = state.scans.get(m.scanId);
      if (scan && !scan.decisions.some((d) => d.id === m.decision.id)) scan.decisions.push(m.decision);
      refreshIf(m.scanId);
      break;
    }
    case 'error':
      console.warn('operator feed error', m.code, m.message);
      $('feed-stats').textContent = `feed: ${m.code}`;
      $('feed-stats').title = m.message;
      break;
    default:
      break;
  }
}

/**
 * Takes a machine report (snapshot or final) as the truth: alerts that joined another are gone from it.
 * @param {ScanView} scan
 * @param {MachineReport | null} report
 */
function applyReport(scan, report) {
  scan.results = report;
  if (!report) return;
  scan.segments = report.goods.segments;
  scan.declaration = report.goods.declaration;
  scan.alerts = new Map(report.threats.map((a) => [a.id, a]));
  // A scan unlike the models' training data: its threat boxes are hints, never alerts.
  scan.hints = report.hints ?? [];
  scan.outOfDistribution = report.outOfDistribution?.scan === true;
  for (const a of report.threats) {
    if (!scan.alertSeen.has(a.id)) scan.alertSeen.set(a.id, { state: scan.summary.state, lines: scan.summary.lines });
  }
  if (scan.segments.length > 0 && !scan.firstSuggestionSeen) scan.firstSuggestionSeen = { state: scan.summary.state, lines: scan.summary.lines };
}

/**
 * Image frames are positional: each is drawn at column line / downsample, whatever order they decode in.
 * @param {ArrayBuffer} buffer
 */
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
  if (!state.scans.has(scanId) || width === 0) return;
  let pixels;
  try {
    const bitmap = await createImageBitmap(new Blob([new Uint8Array(buffer, FRAME_FIXED_BYTES + idBytes, imageBytes)], { type: 'image/png' }));
    const c = document.createElement('canvas');
    c.width = width;
    c.height = height;
    const ctx = /** @type {CanvasRenderingContext2D} */ (c.getContext('2d', { willReadFrequently: true }));
    ctx.drawImage(bitmap, 0, 0);
    bitmap.close();
    pixels = ctx.getImageData(0, 0, width, height).data;
  } catch (err) {
    console.warn('an image frame could not be decoded', scanId, err);
    return;
  }
  // The scan may have been dropped (or re-created) while the image decoded.
  const scan = state.scans.get(scanId);
  if (!scan) return;
  placeImage(scan, Math.floor(line / downsample), width, height, pixels);
  if (scan.summary.state === 'receiving') scan.summary.lines = Math.max(scan.summary.lines, line + lines);
  if (scanId === state.selected) schedule('image');
  schedule('lanes');
}

/** Keeps memory bounded: ended scans other than the selected one are dropped, oldest first, beyond MAX_HELD_SCANS. */
function pruneScans() {
  for (const [id, s] of state.scans) {
    if (state.scans.size <= MAX_HELD_SCANS) break;
    if (id === state.selected || s.summary.state === 'receiving') continue;
    state.scans.delete(id);
    state.ratings.delete(id);
    if (state.named.delete(id)) send({ type: 'unsubscribe', scans: [id] });
  }
  schedule('alerts');
}

// ---------------------------------------------------------------------------------------------------------------
// Selection and panels

/** True while the officer has unsent work on the selected scan: a comment, ratings, or the comment box in focus. */
function busy() {
  if (!state.selected) return false;
  const ratings = state.ratings.get(state.selected);
  return document.activeElement === commentBox || commentBox.value.trim() !== '' || (ratings !== undefined && Object.keys(ratings).length > 0);
}

/**
 * A scan started: open it if the screen follows its lane (or shows nothing) and the officer is not busy.
 * @param {ScanSummary} summary
 */
function follow(summary) {
  if (!state.view.follow || state.pinned) return;
  const current = state.selected ? state.scans.get(state.selected) : undefined;
  if (current) {
    if (current.summary.portalId !== summary.portalId) return;
    if (busy()) {
      state.waiting = summary.scanId;
      renderHead();
      return;
    }
  }
  select(summary.scanId, { pinned: false });
}

/**
 * Shows a scan. `pinned`: the officer opened it by hand and new scans must not take the screen away from it.
 * @param {string} scanId
 * @param {{pinned: boolean}} how
 */
function select(scanId, how) {
  if (state.selected && state.selected !== scanId) {
    const draft = commentBox.value.trim();
    if (draft) state.drafts.set(state.selected, commentBox.value);
    else state.drafts.delete(state.selected);
  }
  const changed = state.selected !== scanId;
  state.selected = scanId;
  // Opening the scan already shown (its alert, its history row) does not pin it; its lane unpins it.
  state.pinned = changed ? how.pinned : state.pinned && how.pinned;
  if (state.waiting === scanId || changed) state.waiting = null;
  if (changed) {
    Object.assign(state.view, { panX: 0, panY: 0, zoom: 1, touched: false });
    $('decision-status').textContent = '';
    $('decision-status').className = 'decision-status';
    delete $('decision-status').dataset.recorded;
    commentBox.value = state.drafts.get(scanId) ?? '';
  }
  if (!state.scans.has(scanId)) {
    // A scan from the history: ask for its snapshot; the one named before is no longer needed.
    for (const id of state.named) {
      if (id !== scanId && !isLiveOnLane(id)) {
        state.named.delete(id);
        send({ type: 'unsubscribe', scans: [id] });
      }
    }
    state.named.add(scanId);
    send({ type: 'subscribe', scans: [scanId] });
  }
  refreshIf(scanId);
  schedule('lanes', 'history');
}

/**
 * Re-renders what shows the scan: everything when it is the selected one, else the alert panel.
 * @param {string} scanId
 */
function refreshIf(scanId) {
  if (scanId !== state.selected) {
    schedule('alerts');
    return;
  }
  schedule('head', 'declaration', 'suggestions', 'decisions', 'alerts', 'image');
}

/** @type {Set<string>} */
const dirty = new Set();
let frame = 0;

/**
 * Renders the named parts at the next animation frame (at most once a frame, however many messages arrive).
 * @param {...('lanes' | 'history' | 'head' | 'declaration' | 'suggestions' | 'decisions' | 'alerts' | 'image')} parts
 */
function schedule(...parts) {
  for (const p of parts) dirty.add(p);
  if (frame === 0) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  const parts = new Set(dirty);
  dirty.clear();
  if (parts.has('lanes')) renderLanes();
  if (parts.has('history')) renderHistory();
  if (parts.has('head')) renderHead();
  if (parts.has('declaration')) renderDeclaration();
  if (parts.has('suggestions')) renderSuggestions();
  if (parts.has('decisions')) renderDecisions();
  if (parts.has('alerts')) renderAlerts();
  if (parts.has('image')) draw();
}

function renderLanes() {
  const ul = $('lanes');
  ul.replaceChildren();
  if (state.lanes.size === 0) ul.append(el('li', { class: 'muted' }, 'No lanes yet'));
  const followed = state.selected ? state.scans.get(state.selected)?.summary.portalId : undefined;
  for (const lane of state.lanes.values()) {
    const scanId = lane.liveScanId || lane.lastScanId;
    const li = el(
      'li',
      {
        'data-portal': lane.portalId,
        'data-live': lane.liveScanId ? 'true' : 'false',
        class: `${scanId && scanId === state.selected ? 'selected' : ''}${lane.portalId === followed && !state.pinned ? ' followed' : ''}`,
        onclick: () => {
          if (scanId) select(scanId, { pinned: false });
        },
      },
      el('span', { class: `dot ${lane.liveScanId ? 'live' : ''}` }),
      el('span', { class: 'lane-name', text: lane.portalId }),
      ' ',
      lane.alarmDecision ? el('span', { class: `badge ${lane.alarmDecision}`, text: lane.alarmDecision }) : null,
      el('div', {
        class: 'muted lane-status',
        text: lane.liveScanId ? `scanning · ${liveLines(lane)} lines` : lane.lastState ? `idle · last ${lane.lastState}` : 'idle',
      }),
    );
    ul.append(li);
  }
}

/**
 * Lines of a lane's live scan: from its strips when the screen holds the scan, else the last lane update.
 * @param {LaneStatus} lane
 */
function liveLines(lane) {
  const scan = lane.liveScanId ? state.scans.get(lane.liveScanId) : undefined;
  return scan ? Math.max(lane.lines, scan.summary.lines) : lane.lines;
}

function renderHead() {
  const note = $('follow-note');
  const waiting = state.waiting ? state.scans.get(state.waiting) : undefined;
  note.replaceChildren();
  if (waiting) {
    note.append(
      el('button', {
        class: 'small',
        title: 'Your comment and ratings on this scan are kept',
        text: `New scan on ${waiting.summary.portalId} ▸`,
        onclick: () => state.waiting && select(state.waiting, { pinned: false }),
      }),
    );
  }
  const scan = state.selected ? state.scans.get(state.selected) : undefined;
  if (!scan) return;
  const s = scan.summary;
  const vehicle = s.vehicle && typeof s.vehicle.kind === 'string' ? ` · ${s.vehicle.kind}` : '';
  $('scan-title').textContent = `${s.portalId} · ${s.scanId}${vehicle}`;
  const st = $('scan-state');
  st.textContent = s.state;
  st.className = `badge ${s.state}`;
  const adv = $('machine-advice');
  const r = scan.results;
  // A final report is the machine's word; before it, live alerts and a live mismatch already say ALARM, unless the
  // image is unlike the models' training data (then the machine does not know: UNKNOWN).
  const alarm = scan.alerts.size > 0 || (!scan.outOfDistribution && scan.declaration && scan.declaration.status === 'mismatch');
  const advice = r && r.status === 'final' ? r.alarmDecision : alarm ? 'ALARM' : scan.outOfDistribution ? 'UNKNOWN' : r ? r.alarmDecision : '';
  adv.textContent = advice ? `machine: ${advice}` : '';
  adv.className = `badge ${advice}`;
  adv.title = r?.decisionReason ? r.decisionReason : '';
  const triage = $('triage');
  const level = r && r.status === 'final' && r.triage ? r.triage.level : '';
  triage.textContent = level;
  triage.className = `badge ${level}`;
  triage.title =
    level === 'GREEN'
      ? `may be released without an image review: CLEAR, every goods segment at least ${pct(r?.triage?.greenMinConfidence ?? 1)}`
      : level === 'AMBER'
        ? 'needs an image review'
        : level === 'RED'
          ? 'the machine raised an ALARM'
          : '';
  // Every reason, visible: an UNKNOWN says what evidence was missing.
  const reasons = r && r.status === 'final' ? (r.decisionReasons ?? (r.decisionReason ? [r.decisionReason] : [])) : [];
  $('machine-reasons').textContent = advice === 'CLEAR' || reasons.length === 0 ? '' : reasons.join(' · ');
  const view = $('scan-view');
  view.dataset.state = s.state;
  view.dataset.scanId = s.scanId;
  const canDecide = DECIDING_ROLES.has(state.role);
  button('btn-clear').disabled = !canDecide;
  button('btn-inspect').disabled = !canDecide;
}

function renderAlerts() {
  const ul = $('alerts');
  ul.replaceChildren();
  /** @type {Array<{scanId: string, scan: ScanView, a?: Alert, mismatch?: DeclarationCheck}>} */
  const items = [];
  for (const [scanId, scan] of state.scans) {
    for (const a of scan.alerts.values()) items.push({ scanId, scan, a });
    // On an image unlike the training data the goods reading is unreliable: no mismatch alert (the reasons say so).
    const unreliable = scan.outOfDistribution;
    if (!unreliable && scan.declaration && scan.declaration.status === 'mismatch') items.push({ scanId, scan, mismatch: scan.declaration });
  }
  // The selected scan's first, then the newest scans.
  items.sort(
    (x, y) => Number(y.scanId === state.selected) - Number(x.scanId === state.selected) || y.scan.summary.startedAt.localeCompare(x.scan.summary.startedAt),
  );
  if (items.length === 0) ul.append(el('li', { class: 'muted none', text: 'No alerts' }));
  for (const it of items) {
    const other = it.scanId !== state.selected ? ' other-scan' : '';
    const decided = it.scan.decisions.at(-1);
    const where = `${it.scan.summary.portalId} ${time(it.scan.summary.startedAt)}${decided ? ` · ${decided.verdict.toUpperCase()} by ${decided.operatorId}` : ''}`;
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
            onclick: () => {
              select(it.scanId, { pinned: !isLiveOnLane(it.scanId) });
              if (it.a) showBox(it.a.box);
            },
          },
          el('div', { class: 'alert-title', text: `⚠ ${it.a.name} ${pct(it.a.probability)}` }),
          el('div', {
            class: 'muted',
            text: `${where} · lines ${b.lineStart}–${b.lineEnd}${seen && seen.state === 'receiving' ? ` · raised at line ${seen.lines} while scanning` : ''}`,
          }),
        ),
      );
    } else if (it.mismatch) {
      const names = it.mismatch.undeclared.map((u) => u.name).join(', ');
      ul.append(
        el(
          'li',
          {
            class: `alert-item mismatch${other}`,
            'data-scan-id': it.scanId,
            'data-kind': 'declaration',
            onclick: () => select(it.scanId, { pinned: !isLiveOnLane(it.scanId) }),
          },
          el('div', { class: 'alert-title', text: '⚠ Declaration mismatch' }),
          el('div', {
            class: 'muted',
            text: `${where} · ${names ? `undeclared: ${names}` : it.mismatch.emptyButDeclared ? 'cargo bay looks empty' : 'declared goods not seen'}`,
          }),
        ),
      );
    }
  }
}

function renderDeclaration() {
  const box = $('declaration');
  const scan = state.selected ? state.scans.get(state.selected) : undefined;
  if (!scan) return;
  const declared = scan.summary.declaration?.hsCodes || [];
  const d = scan.declaration;
  box.replaceChildren();
  box.className = 'declaration';
  const status = d ? d.status : 'unknown';
  box.append(el('div', { class: status, 'data-status': status, text: `Status: ${status}${d?.emptyButDeclared ? ' (cargo bay looks empty)' : ''}` }));
  const table = el('table', {}, el('tr', {}, el('th', { text: 'Declared' }), el('th', { text: 'Observed' })));
  /** @type {Map<string, {name: string, codes: string[], conf: number}>} */
  const observed = new Map();
  for (const s of scan.segments) {
    const top = s.top3[0];
    if (!top?.hsCodes || top.hsCodes.length === 0) continue;
    const o = observed.get(top.label) || { name: top.name, codes: top.hsCodes, conf: 0 };
    o.conf = Math.max(o.conf, s.confidence);
    observed.set(top.label, o);
  }
  const undeclared = new Set(d ? d.undeclared.map((u) => u.label) : []);
  const notSeen = new Set(d ? d.notSeen : []);
  const rows = Math.max(declared.length, observed.size, 1);
  const obs = [...observed.entries()];
  for (let i = 0; i < rows; i++) {
    const o = obs[i];
    const code = declared[i];
    table.append(
      el(
        'tr',
        {},
        el('td', {
          class: code && notSeen.has(code) ? 'not-seen' : '',
          text: code
            ? `${code}${notSeen.has(code) ? ' (not seen)' : ''}`
            : i === 0 && declared.length === 0
              ? scan.summary.declaration
                ? 'nothing'
                : 'no declaration'
              : '',
        }),
        el('td', {
          class: o && undeclared.has(o[0]) ? 'mismatch' : o ? 'match' : '',
          text: o ? `${o[1].name} (${o[1].codes.join(', ')}) ${pct(o[1].conf)}${undeclared.has(o[0]) ? ' — undeclared' : ''}` : '',
        }),
      ),
    );
  }
  box.append(table);
}

/** @param {string} scanId */
function ratingsOf(scanId) {
  let r = state.ratings.get(scanId);
  if (!r) {
    r = {};
    state.ratings.set(scanId, r);
  }
  return r;
}

/**
 * @param {string} scanId
 * @param {string} id
 */
function rateButtons(scanId, id) {
  const r = ratingsOf(scanId);
  /**
   * @param {Rating} value
   * @param {string} label
   */
  const mk = (value, label) =>
    el('button', {
      class: `${value} ${r[id] === value ? 'on' : ''}`,
      'data-rate': value,
      'aria-pressed': String(r[id] === value),
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
  const scan = state.selected ? state.scans.get(state.selected) : undefined;
  if (!scan) return;
  ul.replaceChildren();
  const threats = [...scan.alerts.values()];
  if (scan.segments.length === 0 && threats.length === 0) {
    ul.append(
      el('li', {
        class: 'muted none',
        text: scan.results === null && scan.summary.state !== 'receiving' ? 'No machine results for this scan' : 'No suggestions yet',
      }),
    );
  }
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
        el('div', {
          class: 'top3',
          text: `lines ${s.startLine}–${s.endLine}${s.final ? '' : ' (growing)'} · ${s.top3.map((t) => `${t.name} ${pct(t.probability)}`).join(' · ')}`,
        }),
      ),
    );
  }
}

function renderDecisions() {
  const ul = $('decisions');
  const scan = state.selected ? state.scans.get(state.selected) : undefined;
  if (!scan) return;
  ul.replaceChildren();
  for (const d of [...scan.decisions].reverse()) {
    const rated = Object.entries(d.suggestions)
      .map(([id, v]) => `${id} ${v}`)
      .join(', ');
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

/** @param {'clear' | 'inspect'} verdict */
async function decide(verdict) {
  const scanId = state.selected;
  const status = $('decision-status');
  if (!scanId) return;
  if (!DECIDING_ROLES.has(state.role)) {
    status.textContent = `Role ${state.role} may not record decisions.`;
    status.className = 'decision-status error';
    return;
  }
  const comment = commentBox.value.trim();
  /** @type {{verdict: 'clear' | 'inspect', comment?: string, suggestions?: Record<string, Rating>}} */
  const body = { verdict, ...(comment ? { comment } : {}) };
  const ratings = ratingsOf(scanId);
  if (Object.keys(ratings).length > 0) body.suggestions = { ...ratings };
  status.textContent = 'Recording…';
  status.className = 'decision-status';
  delete status.dataset.recorded;
  try {
    const res = await fetch(`/v1/scans/${encodeURIComponent(scanId)}/decision`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': state.csrfToken },
      body: JSON.stringify(body),
    });
    const answer = await res.json();
    if (res.status === 401) {
      showSignIn('Your session has ended. Sign in again; your comment and ratings are kept.');
      throw new Error('signed out');
    }
    if (res.status !== 201) {
      const e = answer.error ?? { code: `HTTP ${res.status}`, message: res.statusText };
      if (e.code === 'SCANLINE_ERR_DECISION_UNKNOWN_SUGGESTION' && Array.isArray(e.unknown)) {
        // The machine's segments changed while the officer rated them (a live scan): drop the ratings of the ones
        // that are gone and let the officer look again; nothing was stored.
        for (const id of e.unknown) delete ratings[id];
        renderSuggestions();
        throw new Error(`suggestion ${e.unknown.join(', ')} changed while you rated it; check your ratings and press again`);
      }
      throw new Error(`${e.code}: ${e.message}`);
    }
    /** @type {Decision} */
    const decision = answer;
    const scan = state.scans.get(scanId);
    if (scan && !scan.decisions.some((d) => d.id === decision.id)) scan.decisions.push(decision);
    state.ratings.delete(scanId);
    state.drafts.delete(scanId);
    if (state.selected === scanId) {
      status.textContent = `Recorded ${decision.verdict.toUpperCase()} by ${decision.operatorId} at ${time(decision.decidedAt)}`;
      status.dataset.recorded = decision.verdict;
      commentBox.value = '';
      commentBox.blur();
    }
    schedule('decisions', 'suggestions', 'alerts');
    scheduleHistory();
  } catch (err) {
    if (state.selected !== scanId) return;
    status.textContent = `Not recorded: ${err instanceof Error ? err.message : String(err)}`;
    status.className = 'decision-status error';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// History

/** @type {ReturnType<typeof setTimeout> | null} */
let historyTimer = null;

function scheduleHistory() {
  if (historyTimer) return;
  historyTimer = setTimeout(() => {
    historyTimer = null;
    void loadHistory();
  }, 300);
}

async function loadHistory() {
  if (!state.user) return;
  try {
    const res = await fetch('/v1/scans?limit=50');
    if (res.status !== 200) return;
    const body = await res.json();
    state.history = body.scans || [];
  } catch {
    return;
  }
  schedule('history');
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
        {
          class: `history-row ${s.scanId === state.selected ? 'selected' : ''}`,
          'data-scan-id': s.scanId,
          onclick: () => select(s.scanId, { pinned: !isLiveOnLane(s.scanId) }),
        },
        el('div', {}, el('strong', { text: s.portalId }), ` ${time(s.startedAt)} · ${s.state}`),
        el(
          'div',
          {},
          s.alarmDecision ? el('span', { class: `badge ${s.alarmDecision}`, text: s.alarmDecision }) : null,
          ' ',
          last
            ? el('span', { class: `badge verdict ${last.verdict}`, 'data-verdict': last.verdict, text: `${last.verdict.toUpperCase()} · ${last.operatorId}` })
            : el('span', { class: 'muted', text: 'no decision' }),
        ),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Drawing the selected scan: image, zoom/pan, overlays

const canvas = /** @type {HTMLCanvasElement} */ ($('scan-canvas'));

/**
 * Pans the view so a box (scan coordinates) of the selected scan is in the middle, at the current zoom.
 * @param {Box} box
 */
function showBox(box) {
  const scan = state.selected ? state.scans.get(state.selected) : undefined;
  const d = scan ? scan.downsample : 2;
  const height = scan ? scan.height : 512;
  const v = state.view;
  const scale = (canvas.height / height) * v.zoom;
  v.panX = canvas.width / 2 - ((box.lineStart + box.lineEnd) / 2 / d) * scale;
  v.panY = canvas.height / 2 - ((box.pixelStart + box.pixelEnd) / 2 / d) * scale;
  v.touched = true;
  schedule('image');
}

/**
 * Rows for labels laid along one axis: each goes to the first row where it does not overlap the labels already
 * there (spans in order of x), so a long top-3 never hides the next segment's (as the gateway's burned-in images).
 * @param {Array<{x: number, width: number}>} spans
 * @returns {number[]}
 */
function labelRows(spans) {
  /** @type {number[]} */
  const rowEnds = [];
  return spans.map(({ x, width }) => {
    let row = rowEnds.findIndex((end) => end <= x);
    if (row < 0) row = rowEnds.push(0) - 1;
    rowEnds[row] = x + width;
    return row;
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
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = '#0b0d10';
  ctx.fillRect(0, 0, cw, ch);
  const scan = state.selected ? state.scans.get(state.selected) : undefined;
  view.dataset.columns = scan ? String(scan.columns) : '0';
  if (!scan || scan.columns === 0) return;
  renderScanImage(scan);
  const v = state.view;
  // Fit the detector height to the view, then zoom; panX / panY are in device pixels.
  const scale = (ch / scan.height) * v.zoom;
  const imageWidth = scan.columns * scale;
  const imageHeight = scan.height * scale;
  // Keep the growing end in view until the officer pans or zooms.
  if (!v.touched && scan.summary.state === 'receiving') v.panX = Math.min(0, cw - imageWidth - 20 * dpr);
  v.panX = Math.max(Math.min(v.panX, cw / 2), Math.min(0, cw / 2 - imageWidth));
  v.panY = imageHeight <= ch ? 0 : Math.max(ch - imageHeight, Math.min(0, v.panY));
  view.dataset.zoom = v.zoom.toFixed(3);
  view.dataset.panX = String(Math.round(v.panX));
  view.dataset.panY = String(Math.round(v.panY));
  view.dataset.mode = v.mode;
  view.dataset.strip = v.strip;
  ctx.imageSmoothingEnabled = v.zoom < 1;
  ctx.setTransform(scale, 0, 0, scale, v.panX, v.panY);
  if (scan.canvas) ctx.drawImage(scan.canvas, 0, 0, scan.columns, scan.height, 0, 0, scan.columns, scan.height);
  const labels = v.overlays ? drawOverlays(ctx, scan, scale, dpr, -v.panX / scale) : [];
  // Where the segment labels are, in device pixels (for tests: they must not overlap).
  view.dataset.labels = JSON.stringify(labels.map((r) => [v.panX + r.x * scale, v.panY + r.y * scale, r.w * scale, r.h * scale].map(Math.round)));
}

/**
 * @param {CanvasRenderingContext2D} ctx  transformed to image (preview sample) coordinates
 * @param {ScanView} scan
 * @param {number} scale  device pixels per preview sample
 * @param {number} dpr
 * @param {number} left  the first preview column in view: a segment that starts before it has its label here
 * @returns {Array<{x: number, y: number, w: number, h: number}>}  the segment labels' boxes, image coordinates
 */
function drawOverlays(ctx, scan, scale, dpr, left) {
  const d = scan.downsample;
  const px = dpr / scale; // one CSS pixel in image units
  ctx.font = `${12 * px}px system-ui, "DejaVu Sans", sans-serif`;
  ctx.textBaseline = 'top';
  // Goods segments: a band along the top with the top-3 and confidence; labels stack when they would overlap.
  const palette = ['#4c9aff', '#f2cc60', '#56d364', '#ff7b72', '#d2a8ff'];
  const labels = scan.segments.map((s) => s.top3.map((t) => `${t.name} ${pct(t.probability)}`).join(' | '));
  const xs = scan.segments.map((s) => (s.startLine / d < left && s.endLine / d > left ? left : s.startLine / d) + 4 * px);
  const widths = labels.map((l) => ctx.measureText(l).width);
  const rows = labelRows(xs.map((x, i) => ({ x, width: widths[i] + 12 * px })));
  /** @type {Array<{x: number, y: number, w: number, h: number}>} */
  const boxes = [];
  scan.segments.forEach((s, i) => {
    const x0 = s.startLine / d;
    const x1 = s.endLine / d;
    const colour = palette[i % palette.length];
    ctx.fillStyle = `${colour}33`;
    ctx.fillRect(x0, 0, x1 - x0, scan.height);
    ctx.fillStyle = colour;
    ctx.fillRect(x0, 0, x1 - x0, 4 * px);
    ctx.strokeStyle = colour;
    ctx.lineWidth = px;
    ctx.beginPath();
    ctx.moveTo(x0, 0);
    ctx.lineTo(x0, scan.height);
    ctx.stroke();
    const y = (8 + 18 * rows[i]) * px;
    drawLabel(ctx, labels[i], xs[i], y, colour, px);
    boxes.push({ x: xs[i] - 2 * px, y: y - 2 * px, w: widths[i] + 4 * px, h: 16 * px });
  });
  // Threat boxes, labelled below (above when the box reaches the bottom of the image).
  for (const a of scan.alerts.values()) {
    const b = a.box;
    const x = b.lineStart / d;
    const y0 = b.pixelStart / d;
    const y1 = b.pixelEnd / d;
    ctx.strokeStyle = '#ff2d2d';
    ctx.lineWidth = 3 * px;
    ctx.strokeRect(x, y0, (b.lineEnd - b.lineStart) / d, y1 - y0);
    const below = y1 + 20 * px <= scan.height;
    drawLabel(ctx, `${a.name} ${pct(a.probability)}`, x, below ? y1 + 4 * px : y0 - 18 * px, '#ff2d2d', px);
  }
  // Hints of a scan unlike the training data: dashed, amber, and named as hints.
  for (const a of scan.hints) {
    const b = a.box;
    const x = b.lineStart / d;
    const y0 = b.pixelStart / d;
    const y1 = b.pixelEnd / d;
    ctx.save();
    ctx.setLineDash([6 * px, 4 * px]);
    ctx.strokeStyle = '#ffb020';
    ctx.lineWidth = 2 * px;
    ctx.strokeRect(x, y0, (b.lineEnd - b.lineStart) / d, y1 - y0);
    ctx.restore();
    const below = y1 + 20 * px <= scan.height;
    drawLabel(ctx, `hint: ${a.name} ${pct(a.probability)}`, x, below ? y1 + 4 * px : y0 - 18 * px, '#ffb020', px);
  }
  return boxes;
}

/**
 * @param {CanvasRenderingContext2D} ctx
 * @param {string} text
 * @param {number} x
 * @param {number} y
 * @param {string} colour
 * @param {number} px  one CSS pixel in image units
 */
function drawLabel(ctx, text, x, y, colour, px) {
  const w = ctx.measureText(text).width;
  ctx.fillStyle = 'rgba(0,0,0,0.75)';
  ctx.fillRect(x - 2 * px, y - 2 * px, w + 4 * px, 16 * px);
  ctx.fillStyle = colour;
  ctx.fillText(text, x, y);
}

// ---------------------------------------------------------------------------------------------------------------
// Controls

/**
 * @param {string[]} ids
 * @param {string} on
 */
function setToggle(ids, on) {
  for (const id of ids) {
    $(id).classList.toggle('on', id === on);
    $(id).setAttribute('aria-pressed', String(id === on));
  }
}

/** View settings changed: the selected scan's image is re-coloured from its classes and brightness. */
function rerender() {
  const scan = state.selected ? state.scans.get(state.selected) : undefined;
  if (scan) scan.fullRender = true;
  // Other held scans are re-coloured when next shown.
  for (const s of state.scans.values()) s.fullRender = true;
  schedule('image');
}

/**
 * Zooms by `factor` keeping the image point under (cx, cy) (device pixels) in place.
 * @param {number} factor
 * @param {number} cx
 * @param {number} cy
 */
function zoomAt(factor, cx, cy) {
  const v = state.view;
  const z = Math.max(0.25, Math.min(16, v.zoom * factor));
  v.panX = cx - ((cx - v.panX) * z) / v.zoom;
  v.panY = cy - ((cy - v.panY) * z) / v.zoom;
  v.zoom = z;
  v.touched = true;
  schedule('image');
}

function windowChanged(/** @type {'lo' | 'hi'} */ moved) {
  const lo = input('window-lo');
  const hi = input('window-hi');
  // Keep lo < hi by moving the other handle.
  if (Number(hi.value) <= Number(lo.value)) {
    if (moved === 'lo') hi.value = String(Math.min(100, Number(lo.value) + 1));
    else lo.value = String(Math.max(0, Number(hi.value) - 1));
  }
  state.view.lo = Number(lo.value) / 100;
  state.view.hi = Number(hi.value) / 100;
  $('window-value').textContent = `${lo.value}–${hi.value}%`;
  rerender();
}

// ---------------------------------------------------------------------------------------------------------------
// Signing in and out

/**
 * The session is the gateway's (an HttpOnly cookie this script cannot read); the page learns who it is from
 * GET /v1/session, and sends the session's CSRF token with every state-changing request.
 * @param {{user: string, role: string, csrfToken?: string}} s
 */
function signedIn(s) {
  state.user = s.user;
  state.role = s.role;
  state.csrfToken = s.csrfToken ?? '';
  $('sign-in').hidden = true;
  $('signed-in').hidden = false;
  $('user-name').textContent = s.user;
  $('user-role').textContent = s.role;
  // Controls a role may not use are not offered.
  $('decision-section').hidden = !DECIDING_ROLES.has(s.role);
  reconnectDelay = 500;
  connect();
  void loadHistory();
  renderHead();
}

/** @param {string} message */
function showSignIn(message) {
  state.user = '';
  state.role = '';
  state.csrfToken = '';
  if (state.ws) {
    const old = state.ws;
    state.ws = null;
    state.connected = false;
    old.close(1000, 'signed out');
  }
  setConn('closed', 'signed out');
  $('signed-in').hidden = true;
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message;
  input('sign-in-password').value = '';
  input('sign-in-user').focus();
}

/** What a sign-in through the OpenID provider came back with (?signInError=CODE), in words. */
const SIGN_IN_ERRORS = /** @type {Record<string, string>} */ ({
  SCANLINE_ERR_AUTH_FORBIDDEN: 'Your account at the identity provider has no role in Scanline, or its name is taken by a local account.',
  SCANLINE_ERR_AUTH_INVALID: 'The identity provider did not sign you in, or the sign-in took too long. Try again.',
  SCANLINE_ERR_AUTH_OIDC: 'The identity provider cannot be reached or its answer did not verify. Try again, or sign in with a password.',
});

async function startSession() {
  const params = new URLSearchParams(location.search);
  const error = params.get('signInError');
  if (error !== null) history.replaceState(null, '', location.pathname);
  try {
    const providers = await (await fetch('/v1/session/providers')).json();
    const link = /** @type {HTMLAnchorElement} */ ($('sign-in-oidc'));
    if (providers.oidc) {
      link.textContent = providers.oidc.label;
      link.href = providers.oidc.start;
      link.hidden = false;
    }
    const res = await fetch('/v1/session');
    if (res.status === 200) {
      signedIn(await res.json());
      return;
    }
  } catch {
    // unreachable: the sign-in page says so when the officer tries
  }
  showSignIn(error === null ? '' : (SIGN_IN_ERRORS[error] ?? `Sign-in failed: ${error}`));
}

/** @param {SubmitEvent} e */
async function submitSignIn(e) {
  e.preventDefault();
  const error = $('sign-in-error');
  const submit = button('sign-in-submit');
  submit.disabled = true;
  error.textContent = '';
  try {
    const res = await fetch('/v1/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: input('sign-in-user').value.trim(), password: input('sign-in-password').value }),
    });
    const body = await res.json();
    if (res.status === 201) {
      input('sign-in-password').value = '';
      signedIn(body);
      return;
    }
    const code = body.error?.code ?? `HTTP ${res.status}`;
    error.textContent =
      code === 'SCANLINE_ERR_AUTH_LOCKED'
        ? `Too many failed attempts; try again in ${body.error.retryAfterSec ?? 'a few'} s.`
        : code === 'SCANLINE_ERR_AUTH_INVALID'
          ? 'Wrong account name or password.'
          : `${code}: ${body.error?.message ?? res.statusText}`;
  } catch (err) {
    error.textContent = `The gateway cannot be reached: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    submit.disabled = false;
  }
}

async function signOut() {
  try {
    await fetch('/v1/session', { method: 'DELETE', headers: { 'x-csrf-token': state.csrfToken } });
  } finally {
    showSignIn('Signed out.');
  }
}

function wire() {
  /** @type {HTMLFormElement} */ ($('sign-in-form')).addEventListener('submit', (e) => void submitSignIn(e));
  $('sign-out').onclick = () => void signOut();
  const modes = ['view-material', 'view-grey'];
  $('view-material').onclick = () => {
    state.view.mode = 'material';
    setToggle(modes, 'view-material');
    rerender();
  };
  $('view-grey').onclick = () => {
    state.view.mode = 'grey';
    setToggle(modes, 'view-grey');
    rerender();
  };
  const strips = ['strip-none', 'strip-organic', 'strip-inorganic'];
  for (const id of strips) {
    $(id).onclick = () => {
      state.view.strip = /** @type {ViewSettings['strip']} */ (id.slice(6));
      setToggle(strips, id);
      rerender();
    };
  }
  $('zoom-in').onclick = () => zoomAt(1.5, canvas.width / 2, canvas.height / 2);
  $('zoom-out').onclick = () => zoomAt(1 / 1.5, canvas.width / 2, canvas.height / 2);
  $('zoom-fit').onclick = () => {
    Object.assign(state.view, { zoom: 1, panX: 0, panY: 0, touched: false });
    schedule('image');
  };
  input('window-lo').oninput = () => windowChanged('lo');
  input('window-hi').oninput = () => windowChanged('hi');
  input('show-overlays').onchange = () => {
    state.view.overlays = input('show-overlays').checked;
    schedule('image');
  };
  input('follow-live').onchange = () => {
    state.view.follow = input('follow-live').checked;
    if (state.view.follow) state.pinned = false;
    schedule('lanes');
  };
  button('btn-clear').onclick = () => void decide('clear');
  button('btn-inspect').onclick = () => void decide('inspect');
  $('history-refresh').onclick = () => void loadHistory();
  const view = $('scan-view');
  /** @type {{x: number, y: number, panX: number, panY: number} | null} */
  let drag = null;
  view.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY, panX: state.view.panX, panY: state.view.panY };
    view.classList.add('dragging');
    view.setPointerCapture(e.pointerId);
  });
  view.addEventListener('pointermove', (e) => {
    if (!drag) return;
    const dpr = window.devicePixelRatio || 1;
    state.view.panX = drag.panX + (e.clientX - drag.x) * dpr;
    state.view.panY = drag.panY + (e.clientY - drag.y) * dpr;
    state.view.touched = true;
    schedule('image');
  });
  const endDrag = () => {
    drag = null;
    view.classList.remove('dragging');
  };
  view.addEventListener('pointerup', endDrag);
  view.addEventListener('pointercancel', endDrag);
  view.addEventListener(
    'wheel',
    (e) => {
      e.preventDefault();
      const rect = canvas.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, (e.clientX - rect.left) * dpr, (e.clientY - rect.top) * dpr);
    },
    { passive: false },
  );
  window.addEventListener('resize', () => schedule('image'));
}

wire();
renderLanes();
void startSession();

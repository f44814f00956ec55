"""Shared pieces of the Scanline demo-model recipe: seeding, dataset loading, normalisation, scan-level threat
alerts and small helpers. Python 3 with Debian's python3-torch (1.13), python3-numpy and python3-onnx; run with
/usr/bin/python3.

A dataset directory is what `scanline dataset` writes (tools/dataset/export.ts):
  tiles.f32   N x 2 x 64 x 64 float32 little-endian (attenuation, high energy first)
  goods.u8    N goods label indices
  threats.u8  N x K x 16 x 16 0/1 threat cells
  index.json  labels, geometry, stitch options, per-scan truth, per-tile placement
"""
import hashlib
import json
import os
import random
import time
from collections import deque

import numpy as np

# Threads: the recipe is sized for 2 CPU cores. OMP_NUM_THREADS is read by torch at import. On a GPU, cuBLAS needs a
# fixed workspace for deterministic results (read at the first cuBLAS call).
os.environ.setdefault('OMP_NUM_THREADS', '2')
os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')

import torch  # noqa: E402

THREADS = int(os.environ.get('OMP_NUM_THREADS', '2'))


def seed_everything(seed):
    """Seeds Python, numpy and torch and asks torch for deterministic kernels (CPU and CUDA; on CUDA an operation
    without a deterministic kernel warns instead of failing)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=torch.cuda.is_available())
    torch.set_num_threads(THREADS)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def pick_device(name):
    """'auto' (CUDA when torch sees a GPU, else CPU), 'cpu' or 'cuda'."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    if name == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: torch sees no GPU')
    return torch.device(name)


class Dataset:
    """One or more `scanline dataset` directories, concatenated. Tiles stay on disk (numpy.memmap)."""

    def __init__(self, dirs):
        if isinstance(dirs, str):
            dirs = [dirs]
        self.dirs = list(dirs)
        self.parts = []
        self.tiles_index = []
        self.scans = []
        goods, threats = [], []
        offset = 0
        first = None
        for d in self.dirs:
            with open(os.path.join(d, 'index.json')) as f:
                idx = json.load(f)
            if idx.get('format') != 'scanline-tiles' or idx.get('formatVersion') != 1:
                raise ValueError('%s: not a scanline-tiles v1 dataset' % d)
            if first is None:
                first = idx
            elif idx['labels'] != first['labels'] or idx['tile'] != first['tile']:
                raise ValueError('%s: labels or tile geometry differ from %s' % (d, self.dirs[0]))
            n = idx['count']
            size = idx['tile']['size']
            k = len(idx['labels']['threats'])
            g = idx['labels']['threatGrid']
            # Channels: 2 (dual-energy: high, low) or 1 (a single-energy portal: high only; `scanline dataset --energies 1`).
            channels = idx['files']['tiles']['shape'][1]
            if channels != first['files']['tiles']['shape'][1]:
                raise ValueError('%s: %d channels, %s has %d' % (d, channels, self.dirs[0], first['files']['tiles']['shape'][1]))
            tiles = np.memmap(os.path.join(d, 'tiles.f32'), dtype='<f4', mode='r', shape=(n, channels, size, size))
            goods.append(np.fromfile(os.path.join(d, 'goods.u8'), dtype=np.uint8))
            threats.append(np.fromfile(os.path.join(d, 'threats.u8'), dtype=np.uint8).reshape(n, k, g, g))
            if goods[-1].shape[0] != n or threats[-1].shape[0] != n:
                raise ValueError('%s: file sizes do not match index.json count %d' % (d, n))
            self.parts.append((offset, n, tiles))
            for s in idx['scans']:
                s = dict(s)
                s['firstTile'] += offset
                s['pixels'] = idx['generator']['pixels']
                self.scans.append(s)
            self.tiles_index.extend(idx['tiles'])
            offset += n
        self.index = first
        self.n = offset
        self.goods = np.concatenate(goods)
        self.threats = np.concatenate(threats)
        self.goods_labels = [g['id'] for g in first['labels']['goods']]
        self.threat_labels = list(first['labels']['threats'])
        self.grid = first['labels']['threatGrid']
        self.size = first['tile']['size']
        self.channels = first['files']['tiles']['shape'][1]
        self.downsample = first['tile']['downsample']
        self.seeds = sorted({s['seed'] for s in self.scans})

    def __len__(self):
        return self.n

    def get(self, indices):
        """Tiles at `indices` (any order) as a float32 array [len, channels, size, size]."""
        indices = np.asarray(indices)
        out = np.empty((len(indices), self.channels, self.size, self.size), dtype=np.float32)
        for offset, n, tiles in self.parts:
            sel = np.nonzero((indices >= offset) & (indices < offset + n))[0]
            if len(sel):
                local = indices[sel] - offset
                order = np.argsort(local)  # sorted reads are kinder to the page cache
                out[sel[order]] = tiles[local[order]]
        return out

    def placement(self, i):
        t = self.tiles_index[i]
        return t['line'], t['pixel']

    def share(self):
        return np.array([t['share'] for t in self.tiles_index], dtype=np.float32)


def start_training(args):
    """What both training scripts begin with: seed everything, open the training and validation datasets, and derive the
    input normalisation from the training tiles. Returns (train, val, norm, start time)."""
    seed_everything(args.seed)
    started = time.time()
    train = Dataset(args.train)
    val = Dataset(args.val)
    mean, std = channel_stats(train, seed=args.seed)
    return train, val, Normalization.from_stats(mean, std), started


def seed_ranges(seeds, gap=100):
    """Sorted seeds as [first, last] ranges that cover every one of them; a gap under `gap` seeds stays inside a range
    (a threat-rich set keeps only the trucks whose threats gave a tile, so its seeds have holes). The held-out check
    (test/tools/dataset/models.test.ts) reads these: [first seed, last seed] alone would span the held-out 5000-5999
    once training seeds lie above them."""
    ranges = []
    for s in seeds:
        if ranges and s - ranges[-1][1] <= gap:
            ranges[-1][1] = s
        else:
            ranges.append([s, s])
    return ranges


def provenance(train, val, model, started):
    """The provenance both training scripts save in their checkpoint (export.py copies it into the manifest).
    trainSeeds / valSeeds: [first, last]; trainSeedRanges / valSeedRanges: the ranges the seeds lie in."""
    return {
        'trainSeeds': [train.seeds[0], train.seeds[-1]],
        'trainSeedRanges': seed_ranges(train.seeds),
        'trainScans': len(train.seeds),
        'valSeeds': [val.seeds[0], val.seeds[-1]],
        'valSeedRanges': seed_ranges(val.seeds),
        'valScans': len(val.seeds),
        'trainTiles': len(train),
        'valTiles': len(val),
        'dataset': {k: train.index['generator'][k] for k in ('scanline', 'simulatorFingerprint', 'pixels', 'truck', 'calibration', 'stitch')},
        'trainSeconds': round(time.time() - started, 1),
        'params': count_params(model),
    }


def channel_stats(ds, samples=4000, seed=0):
    """Per-channel mean and standard deviation of the attenuation over a seeded sample of tiles."""
    rng = np.random.RandomState(seed)
    idx = np.sort(rng.choice(len(ds), size=min(samples, len(ds)), replace=False))
    x = ds.get(idx).astype(np.float64)
    return x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3))


class Normalization:
    """x' = clamp((x - offset[c]) * scale[c], clamp_min, clamp_max): exactly what the gateway applies (model.json)."""

    def __init__(self, offset, scale, clamp_min, clamp_max):
        self.offset = [float(v) for v in offset]
        self.scale = [float(v) for v in scale]
        self.clamp_min = float(clamp_min)
        self.clamp_max = float(clamp_max)

    @staticmethod
    def from_stats(mean, std):
        # Rounded so the manifest carries readable numbers; the model is trained with exactly these.
        return Normalization([round(float(m), 4) for m in mean], [round(1.0 / float(s), 4) for s in std], -8.0, 8.0)

    def apply(self, x):
        off = np.asarray(self.offset, dtype=np.float32).reshape(1, -1, 1, 1)
        sc = np.asarray(self.scale, dtype=np.float32).reshape(1, -1, 1, 1)
        return np.clip((x - off) * sc, self.clamp_min, self.clamp_max).astype(np.float32)

    def manifest(self):
        return {'offset': self.offset, 'scale': self.scale, 'clampMin': self.clamp_min, 'clampMax': self.clamp_max}

    @staticmethod
    def from_manifest(m):
        return Normalization(m['offset'], m['scale'], m['clampMin'], m['clampMax'])


def predict(model, ds, norm, indices=None, batch=512, outputs=1):
    """Runs `model` (eval mode, on the device its parameters are on) over tiles; returns numpy outputs (a tuple when
    outputs > 1)."""
    model.eval()
    device = next(model.parameters()).device
    if indices is None:
        indices = np.arange(len(ds))
    chunks = [[] for _ in range(outputs)]
    with torch.no_grad():
        for s in range(0, len(indices), batch):
            x = torch.from_numpy(norm.apply(ds.get(indices[s:s + batch]))).to(device)
            y = model(x)
            if outputs == 1:
                y = (y,)
            for c, v in zip(chunks, y):
                c.append(v.float().cpu().numpy())
    res = tuple(np.concatenate(c) for c in chunks)
    return res if outputs > 1 else res[0]


class ThreatPatches:
    """The threat image projection library written by threat-patches.mjs: per-threat attenuation on its own, at
    tile resolution ([2][h][w]), and its kind."""

    # The stitcher's attenuation clamp and the simulated portal's mean air counts per energy (high, low): used to add
    # the extra photon noise a projected threat brings.
    ATTENUATION_MAX = 10.0
    AIR_COUNTS = (50000.0, 40000.0)

    def __init__(self, d, kinds):
        with open(os.path.join(d, 'patches.json')) as f:
            meta = json.load(f)
        data = np.fromfile(os.path.join(d, 'patches.f32'), dtype='<f4')
        self.items = []
        for it in meta['items']:
            p = data[it['offset']:it['offset'] + 2 * it['h'] * it['w']].reshape(2, it['h'], it['w'])
            self.items.append((kinds.index(it['kind']), p))
        self.seeds = meta['seeds']

    def __len__(self):
        return len(self.items)

    def project(self, x, t, rng, samples_per_cell=4, samples_per_raw=16):
        """Adds a random threat to tile x ([C][H][W] attenuation, C = 2 or 1 for a single-energy tile, modified in
        place) at a random place where at least half of it lies inside, marks its cells in t ([K][G][G], in place) and
        returns the kind index."""
        k, p = self.items[rng.randint(len(self.items))]
        channels = x.shape[0]
        p = p[:channels]
        if rng.rand() < 0.5:
            p = p[:, :, ::-1]
        p = p * rng.uniform(0.85, 1.15)
        _, ph, pw = p.shape
        _, H, W = x.shape
        y0 = rng.randint(-ph // 2, H - (ph + 1) // 2 + 1)
        x0 = rng.randint(-pw // 2, W - (pw + 1) // 2 + 1)
        ya, yb = max(0, y0), min(H, y0 + ph)
        xa, xb = max(0, x0), min(W, x0 + pw)
        if yb <= ya or xb <= xa:
            return k
        before = x[:, ya:yb, xa:xb].copy()
        after = np.minimum(before + p[:, ya - y0:yb - y0, xa - x0:xb - x0], self.ATTENUATION_MAX)
        # Fewer photons through the threat: extra variance of the block mean of -ln T is (e^a' - e^a) / (N * 16).
        air = np.array(self.AIR_COUNTS[:channels], dtype=np.float32).reshape(channels, 1, 1)
        var = np.maximum(np.exp(np.minimum(after, 12)) - np.exp(np.minimum(before, 12)), 0) / (air * samples_per_raw)
        x[:, ya:yb, xa:xb] = np.clip(after + rng.randn(*after.shape).astype(np.float32) * np.sqrt(var), 0, self.ATTENUATION_MAX)
        g = samples_per_cell
        t[k, ya // g:(yb + g - 1) // g, xa // g:(xb + g - 1) // g] = 1
        return k


# ---- scan-level threat alerts -----------------------------------------------------------------------------------
# Every tile's cell probabilities are placed on the scan's cell grid (cells of cellSpan raw lines x cellSpan raw
# pixels, cellSpan = 16) and overlapping tiles are merged by maximum. A cell is positive when the probability of at
# least one label is at or above that label's threshold. An alert is a connected group (8-neighbourhood) of positive
# cells; its kind is the label whose probability exceeds its threshold the most (ratio) anywhere in the group. An
# alert is a false alarm when none of its cells overlaps a true threat box. A true threat is found when an alert
# overlaps its box (`recall`); `recallKindCorrect` also asks for the alert's kind to be the threat's.

def scan_cell_maps(ds, probs):
    """Per scan: (scan, [K, lines_cells, pixel_cells] max-merged cell probabilities, cell span in raw samples)."""
    g = ds.grid
    span = ds.size * ds.downsample // g
    out = []
    for s in ds.scans:
        gl = (s['totalLines'] + span - 1) // span
        gp = (s['pixels'] + span - 1) // span
        m = np.zeros((len(ds.threat_labels), gp, gl), dtype=np.float32)
        for i in range(s['firstTile'], s['firstTile'] + s['tileCount']):
            line, pixel = ds.placement(i)
            l0 = (line + span // 2) // span
            p0 = (pixel + span // 2) // span
            wl = min(g, gl - l0)
            wp = min(g, gp - p0)
            if wl <= 0 or wp <= 0:
                continue
            blk = m[:, p0:p0 + wp, l0:l0 + wl]
            np.maximum(blk, probs[i][:, :wp, :wl], out=blk)
        out.append((s, m, span))
    return out


def components(mask):
    """8-connected components of a 2-D boolean mask: list of (rows, cols) index arrays."""
    seen = np.zeros(mask.shape, dtype=bool)
    comps = []
    rows, cols = mask.shape
    for r0, c0 in zip(*np.nonzero(mask)):
        if seen[r0, c0]:
            continue
        q = deque([(r0, c0)])
        seen[r0, c0] = True
        rr, cc = [], []
        while q:
            r, c = q.popleft()
            rr.append(r)
            cc.append(c)
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    nr, nc = r + dr, c + dc
                    if 0 <= nr < rows and 0 <= nc < cols and mask[nr, nc] and not seen[nr, nc]:
                        seen[nr, nc] = True
                        q.append((nr, nc))
        comps.append((np.array(rr), np.array(cc)))
    return comps


def truth_mask(scan, shape, span, kind=None):
    """Cells overlapping the scan's threat boxes (of `kind`, or any): [pixel_cells, line_cells] bool."""
    m = np.zeros(shape, dtype=bool)
    for t in scan['threats']:
        if kind is not None and t['kind'] != kind:
            continue
        m[t['pixelStart'] // span:(t['pixelEnd'] + span - 1) // span, t['lineStart'] // span:(t['lineEnd'] + span - 1) // span] = True
    return m


def scan_alerts(m, labels, thresholds):
    """Alerts of one scan cell map m [K, rows, cols]: list of (rows, cols, kind)."""
    active = [k for k, kind in enumerate(labels) if kind in thresholds]
    ratio = np.stack([m[k] / thresholds[labels[k]] for k in active])
    positive = (ratio >= 1).any(0)
    out = []
    for rr, cc in components(positive):
        k = active[int(ratio[:, rr, cc].max(1).argmax())]
        out.append((rr, cc, labels[k]))
    return out


def alert_stats(cell_maps, labels, thresholds):
    """Recall (overall, per kind, kind-correct) and false alarms for per-label thresholds (dict). Labels without a
    threshold raise no alerts; their threats still count as missed unless another label's alert overlaps them."""
    kinds = [k for k in labels if k in thresholds]
    fa = {k: 0 for k in kinds}
    found = {k: 0 for k in labels}
    found_kind = {k: 0 for k in labels}
    total = {k: 0 for k in labels}
    alerts = 0
    for scan, m, span in cell_maps:
        any_truth = truth_mask(scan, m.shape[1:], span)
        al = scan_alerts(m, labels, thresholds)
        alerts += len(al)
        for rr, cc, kind in al:
            if not any_truth[rr, cc].any():
                fa[kind] += 1
        for t in scan['threats']:
            total[t['kind']] += 1
            box = truth_mask({'threats': [t]}, m.shape[1:], span)
            hits = [kind for rr, cc, kind in al if box[rr, cc].any()]
            if hits:
                found[t['kind']] += 1
            if t['kind'] in hits:
                found_kind[t['kind']] += 1
    n = len(cell_maps)
    all_total = sum(total.values())
    return {
        'scans': n,
        'threats': all_total,
        'recall': sum(found.values()) / max(1, all_total),
        'recallKindCorrect': sum(found_kind.values()) / max(1, all_total),
        'recallByKind': {k: found[k] / max(1, total[k]) for k in labels},
        'threatsByKind': total,
        'alerts': alerts,
        'falseAlarms': sum(fa.values()),
        'falseAlarmsPerScan': sum(fa.values()) / max(1, n),
        'falseAlarmsByKind': fa,
    }


def operating_curve(cell_maps, labels, grid=(0.3, 0.5, 0.7, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)):
    """Recall and false alarms per scan with one threshold t for every label (the alert rule of alert_stats): where
    a low t finds nearly every threat and its false alarms are many, the heatmap sees the threats and it is
    discrimination that is missing. One dict per t."""
    out = []
    for t in grid:
        st = alert_stats(cell_maps, labels, {k: t for k in labels})
        out.append({'threshold': t, 'recall': round(st['recall'], 4), 'falseAlarmsPerScan': round(st['falseAlarmsPerScan'], 4)})
    return out


THRESHOLD_GRID = [0.999, 0.998, 0.995, 0.99, 0.98, 0.97, 0.96, 0.95, 0.93, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6,
                  0.55, 0.5, 0.45, 0.4, 0.35, 0.3]


def choose_thresholds(cell_maps, labels, fa_per_scan_budget, grid=THRESHOLD_GRID, lookahead=3, candidates=()):
    """The best of _greedy_thresholds run with the budget, half of it and a quarter of it (the greedy path depends on
    the budget, and a smaller budget sometimes ends with more threats found), and of `candidates` (threshold dicts,
    e.g. the ones a checkpoint already has) that stay within the budget: the greedy search is not exhaustive, and a
    re-choice should never find fewer threats than thresholds it was given. A candidate wins ties (max keeps the first).
    Returns (thresholds, alert_stats)."""
    runs = []
    for c in candidates:
        st = alert_stats(cell_maps, labels, c)
        if st['falseAlarms'] <= fa_per_scan_budget * len(cell_maps):
            runs.append(({k: float(v) for k, v in c.items()}, st))
    runs += [_greedy_thresholds(cell_maps, labels, fa_per_scan_budget * f, grid, lookahead) for f in (1, 0.5, 0.25)]
    return max(runs, key=lambda r: (r[1]['recall'], -r[1]['falseAlarms']))


def _greedy_thresholds(cell_maps, labels, fa_per_scan_budget, grid, lookahead):
    """Per-label thresholds for the most threats found with at most `fa_per_scan_budget` false alarms per scan over
    these scans (alerts as in alert_stats, exact). Greedy: every label starts at the top of `grid`; each step lowers
    one label by 1..`lookahead` grid values, choosing the move that finds the most threats (then: fewest false
    alarms, then: the smallest move) while staying within the budget; it stops when no move fits.
    Returns (thresholds, alert_stats of the chosen thresholds)."""
    budget = fa_per_scan_budget * len(cell_maps)
    pos = {k: 0 for k in labels}
    current = {k: grid[0] for k in labels}
    best = alert_stats(cell_maps, labels, current)
    while True:
        options = []
        for k in labels:
            for step in range(1, lookahead + 1):
                if pos[k] + step >= len(grid):
                    break
                st = alert_stats(cell_maps, labels, dict(current, **{k: grid[pos[k] + step]}))
                if st['falseAlarms'] <= budget:
                    options.append((st['recall'], -st['falseAlarms'], -step, k, st))
        if not options:
            break
        recall, _, neg_step, k, st = max(options, key=lambda o: o[:3])
        pos[k] -= neg_step
        current[k] = grid[pos[k]]
        best = st
    return {k: float(v) for k, v in current.items()}, best


# ---- files -----------------------------------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


def count_params(model):
    return sum(p.numel() for p in model.parameters())

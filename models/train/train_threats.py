"""Trains the threat detector (ThreatNet) on `scanline dataset` exports, picks per-label alert thresholds on the
validation seeds and saves a checkpoint for export.py.

  /usr/bin/python3 train_threats.py --train DIR [DIR ...] --val DIR [DIR ...] --patches DIR --out CKPT [--seed S]

Each epoch draws:
  * every real tile with a threat cell;
  * `--tip` times as many threat-free tiles with a simulated threat projected into them (threat image projection:
    attenuation is additive, see threat-patches.mjs and common.ThreatPatches), cargo tiles weighted up, and with
    `--tip-clutter` the tiles whose attenuation varies most (cluttered loads) further up;
  * `--neg-ratio` times as many threat-free tiles, cargo weighted up (dense loads are where false alarms come from);
  * `--hard` mined hard negatives, twice each: the most confident threat-free tiles of a fresh random pool scored
    with the current model (from the second epoch on).
Loss: per-cell binary cross-entropy, positive cells weighted `--pos-weight` (threat cells are rare even in threat
tiles); `--loss focal` multiplies it by (1 - p_t)^gamma, so confident easy cells (most of every tile) stop dominating
the gradient. Augmentation: mirror along the scan (tile and target) and a common attenuation gain of 0.9-1.1.

Network: `--arch threatnet` (nets.ThreatNet, the CPU recipe) or `threatnet2` (nets.ThreatNet2: more detail and
context). `--device auto` trains on a GPU when torch sees one (models/train/threats.sh); batches are drawn from a
per-batch seeded generator and prepared one ahead on a thread, so the draw is the same on either device.

Fine-tuning: `--init-onnx ../threats-v1` starts from a committed model's ONNX weights and normalisation instead of
from scratch (from_onnx.py; its BatchNorms stay frozen), so a CPU can adapt the GPU-trained network to new data, such
as the harder simulator's, in a fraction of the epochs. The checkpoint and the manifest record what it started from.

Thresholds: per label, chosen on the validation scans for the most threats found with at most `--fa-budget` false
alarms per scan under the scan-level alert rule (common.alert_stats, common.choose_thresholds).
"""
import argparse
import json
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

import common
import from_onnx
import nets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--train', nargs='+', required=True)
    ap.add_argument('--val', nargs='+', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--epochs', type=int, default=16)
    ap.add_argument('--neg-ratio', type=float, default=2.0)
    ap.add_argument('--hard', type=int, default=2000, help='mined hard negatives per epoch (each drawn twice)')
    ap.add_argument('--mine-pool', type=int, default=16000, help='threat-free tiles scored per epoch to mine them')
    ap.add_argument('--pos-weight', type=float, default=3.0)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--lr', type=float, default=4e-3)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--width', type=int, default=32, help='channels of the 16x16 layers')
    ap.add_argument('--patches', help='threat-patches.mjs output: threat image projection into threat-free tiles')
    ap.add_argument('--tip', type=float, default=1.0, help='projected positives per real threat tile')
    ap.add_argument('--tip-clutter', type=float, default=0.0,
                    help='weight projected threats towards cluttered loads: a threat-free tile is drawn as a background '
                         'with weight x (1 + this x the percentile of its high-energy attenuation spread); 0: cargo '
                         'weighting only')
    ap.add_argument('--fa-budget', type=float, default=0.05, help='false alarms per scan allowed on the validation seeds')
    ap.add_argument('--arch', default='threatnet', choices=['threatnet', 'threatnet2'])
    ap.add_argument('--loss', default='bce', choices=['bce', 'focal'])
    ap.add_argument('--focal-gamma', type=float, default=2.0)
    ap.add_argument('--device', default='auto', help='auto, cpu or cuda')
    ap.add_argument('--init-onnx', help='a committed model folder (model.onnx, model.json) to fine-tune instead of '
                                        'training from scratch: its weights, its normalisation, BatchNorm frozen')
    ap.add_argument('--batchnorm', default='frozen', choices=['frozen', 'train'],
                    help='with --init-onnx: keep the folded BatchNorms frozen (default) or re-estimate their statistics '
                         'on the training tiles and let them learn (from_onnx.reestimate_batchnorm)')
    args = ap.parse_args()
    device = common.pick_device(args.device)

    train, val, norm, started = common.start_training(args)
    kinds = train.threat_labels
    init_from = None
    target = train.threats
    pos = np.nonzero(target.reshape(len(train), -1).any(1))[0]
    neg = np.setdiff1d(np.arange(len(train)), pos)
    cargo_ids = [i for i, l in enumerate(train.goods_labels) if l not in ('vehicle', 'air', 'empty')]
    neg_w = np.where(np.isin(train.goods[neg], cargo_ids), 3.0, 1.0)
    tip_w = neg_w.copy()
    if args.tip_clutter > 0:
        # Where the held-out threats are missed: in loads whose own attenuation varies most (models/README.md, "What
        # limits threat recall"). The spread of a tile's high-energy attenuation, as a percentile over the negatives.
        spread = np.empty(len(neg), dtype=np.float64)
        for s in range(0, len(neg), 4096):
            x = train.get(neg[s:s + 4096])[:, 0]
            spread[s:s + 4096] = x.reshape(len(x), -1).std(1)
        pct = spread.argsort().argsort() / max(1, len(neg) - 1)
        tip_w = tip_w * (1.0 + args.tip_clutter * pct)
        print('projection backgrounds weighted by clutter (x%.1f at the top): median spread %.3f' % (1 + args.tip_clutter, float(np.median(spread))), flush=True)
    neg_w /= neg_w.sum()
    tip_w /= tip_w.sum()
    print('train tiles %d (threat tiles %d), val tiles %d, val scans %d' % (len(train), len(pos), len(val), len(val.scans)), flush=True)

    model = nets.threat_net(args.arch, len(kinds), args.width, train.channels)
    if args.init_onnx:
        # Fine-tuning a committed model (on a CPU, where training from scratch takes hours): the input must be
        # normalised exactly as the model was trained, so its manifest's normalisation replaces the derived one.
        manifest = from_onnx.load(model, args.init_onnx, train.channels)
        if manifest['labels'] and [l['id'] for l in manifest['labels']] != list(kinds):
            raise ValueError('%s detects %s, the datasets label %s' % (args.init_onnx, [l['id'] for l in manifest['labels']], kinds))
        norm = common.Normalization.from_manifest(manifest['input']['normalization'])
        # The hash of the file loaded, not the one its manifest claims.
        init_from = {'name': manifest['name'], 'version': manifest['version'],
                     'sha256': common.sha256_file(os.path.join(args.init_onnx, 'model.onnx')),
                     'trainedWith': manifest['training'].get('trainedWith'), 'arguments': manifest['training'].get('arguments')}
        if args.batchnorm == 'train':
            sample = np.sort(np.random.RandomState(args.seed).choice(len(train), size=min(2048, len(train)), replace=False))
            change = from_onnx.reestimate_batchnorm(model, torch.from_numpy(norm.apply(train.get(sample))))
            print('BatchNorm statistics re-estimated on %d training tiles (output changed by %.1e)' % (len(sample), change), flush=True)
        print('fine-tuning %s %s (BatchNorm %s)' % (manifest['name'], manifest['version'], args.batchnorm), flush=True)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    n_neg = int(len(pos) * args.neg_ratio)
    patches = common.ThreatPatches(args.patches, kinds) if args.patches else None
    n_tip = int(len(pos) * args.tip) if patches else 0
    per_epoch = ((len(pos) + n_neg + n_tip + 2 * args.hard) // args.batch) * args.batch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * (per_epoch // args.batch), pct_start=0.15)
    rng = np.random.RandomState(args.seed)
    history = []
    for epoch in range(args.epochs):
        t0 = time.time()
        if epoch > 0 and args.hard > 0:
            # Hard negative mining: score a fresh random pool of threat-free tiles with the current model and keep
            # the ones whose strongest cell is most confident (steel pipes that look like pipe bombs, machinery...).
            pool = rng.choice(neg, size=min(args.mine_pool, len(neg)), replace=False)
            peak = common.predict(model, train, norm, pool).reshape(len(pool), -1).max(1)
            hard = np.repeat(pool[np.argsort(-peak)[:args.hard]], 2)
        else:
            hard = np.array([], dtype=np.int64)
        easy = rng.choice(neg, size=n_neg, replace=False, p=neg_w)
        # Projected threats go into random threat-free tiles, cargo weighted up (index + len(train) marks them). Not
        # into the mined hard negatives: a threat projected into a load it is invisible in (a pipe bomb among steel
        # pipes) would teach the model to fire on that load.
        tip_bg = rng.choice(neg, size=n_tip, replace=False, p=tip_w)
        draw = np.concatenate([pos, hard, easy, tip_bg + len(train)])
        rng.shuffle(draw)
        draw = draw[:per_epoch]
        model.train()
        if args.init_onnx and args.batchnorm == 'frozen':
            from_onnx.freeze_batchnorm(model)
        loss_sum = 0.0

        def prepare(step):
            # Everything random about one batch comes from its own generator: the same batches whatever the device
            # or the prefetch timing.
            brng = np.random.RandomState((args.seed * 1_000_003 + epoch * 10_007 + step) % (2 ** 32))
            sel = draw[step * args.batch:(step + 1) * args.batch]
            tip = sel >= len(train)
            idx = np.where(tip, sel - len(train), sel)
            x = train.get(idx)
            t = target[idx].astype(np.float32)
            for j in np.nonzero(tip)[0]:
                patches.project(x[j], t[j], brng)
            x *= brng.uniform(0.9, 1.1, size=(len(idx), 1, 1, 1)).astype(np.float32)
            flip = brng.rand(len(idx)) < 0.5
            x[flip] = x[flip, :, :, ::-1]
            t[flip] = t[flip, :, :, ::-1]
            return torch.from_numpy(norm.apply(x)), torch.from_numpy(np.ascontiguousarray(t))

        steps = (len(draw) + args.batch - 1) // args.batch
        pos_weight = torch.tensor(args.pos_weight, device=device)
        with ThreadPoolExecutor(max_workers=1) as prefetch:
            pending = prefetch.submit(prepare, 0)
            for step in range(steps):
                xb, tb = pending.result()
                if step + 1 < steps:
                    pending = prefetch.submit(prepare, step + 1)
                xb = xb.to(device, non_blocking=True)
                tt = tb.to(device, non_blocking=True)
                logits = model(xb)
                if args.loss == 'focal':
                    bce = F.binary_cross_entropy_with_logits(logits, tt, pos_weight=pos_weight, reduction='none')
                    p = torch.sigmoid(logits)
                    p_t = torch.where(tt > 0.5, p, 1 - p)
                    loss = ((1 - p_t) ** args.focal_gamma * bce).mean()
                else:
                    loss = F.binary_cross_entropy_with_logits(logits, tt, pos_weight=pos_weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * len(xb)
        history.append({'epoch': epoch + 1, 'loss': round(loss_sum / len(draw), 5), 'seconds': round(time.time() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)

    def save(thresholds, metrics):
        torch.save({
            'task': 'threats',
            'state': {k: v.detach().cpu() for k, v in model.state_dict().items()},
            'labels': kinds,
            'normalization': norm.manifest(),
            'thresholds': thresholds,
            'metrics': metrics,
            'history': history,
            'args': vars(args),
            'channels': train.channels,
            'trainedWith': {'torch': torch.__version__, 'python': platform.python_version(),
                            'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'},
            **common.provenance(train, val, model, started),
            'trainThreatTiles': int(len(pos)),
            'initFrom': init_from,
            'threatPatches': {'count': len(patches), 'seeds': patches.seeds, 'perRealThreatTile': args.tip} if patches else None,
        }, args.out)

    # Saved before the (slow) threshold search too, so an interrupted run keeps its weights.
    save(None, None)
    t0 = time.time()
    logits = common.predict(model, val, norm)
    probs = 1.0 / (1.0 + np.exp(-logits))
    maps = common.scan_cell_maps(val, probs)
    thresholds, metrics = common.choose_thresholds(maps, kinds, args.fa_budget)
    metrics['thresholds'] = thresholds
    metrics['faBudgetPerScan'] = args.fa_budget
    # Honest split: thresholds picked on the first half of the validation scans, measured on the second half.
    half = len(maps) // 2
    th_a, _ = common.choose_thresholds(maps[:half], kinds, args.fa_budget)
    metrics['splitCheck'] = {'thresholdsFromFirstHalf': th_a, 'secondHalf': common.alert_stats(maps[half:], kinds, th_a)}
    print(json.dumps(metrics, indent=1), flush=True)
    print('evaluation seconds %.1f' % (time.time() - t0), flush=True)
    save(thresholds, metrics)


if __name__ == '__main__':
    main()

"""Trains the goods classifier (GoodsNet) on `scanline dataset` exports and saves a checkpoint for export.py.

  /usr/bin/python3 train_goods.py --train DIR [DIR ...] --val DIR [DIR ...] --out CKPT [--epochs E] [--seed S]

Sampling: each epoch draws `--samples` tiles with replacement, weighted 1/sqrt(class frequency) so rare goods are
seen often without starving the common ones. Augmentation: mirror along the scan (a load looks the same driven the
other way) and a common attenuation gain of 0.9-1.1 (denser or lighter packing). Loss: cross-entropy with label
smoothing. The metrics on the validation seeds go into the checkpoint (and from there into model.json).
"""
import argparse
import json
import time

import numpy as np
import torch
from torch import nn

import common
import nets


def goods_metrics(ds, logits, probs_threshold):
    labels = ds.goods_labels
    y = ds.goods.astype(np.int64)
    pred = logits.argmax(1)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    top = p.max(1)
    empty = labels.index('empty')
    cargo_ids = [i for i, l in enumerate(labels) if l not in ('vehicle', 'air')]
    goods_mask = np.isin(y, [i for i in cargo_ids if i != empty])
    cargo_mask = np.isin(y, cargo_ids)
    per_class = {}
    for i, l in enumerate(labels):
        m = y == i
        per_class[l] = {'tiles': int(m.sum()), 'accuracy': round(float((pred[m] == i).mean()), 4) if m.any() else None}
    sure = goods_mask & (top >= probs_threshold)
    # Confusion rows: true label, columns: predicted.
    conf = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(conf, (y, pred), 1)
    return {
        'tiles': int(len(y)),
        'goodsTiles': int(goods_mask.sum()),
        'goodsTop1': round(float((pred[goods_mask] == y[goods_mask]).mean()), 4),
        'cargoTiles': int(cargo_mask.sum()),
        'cargoTop1': round(float((pred[cargo_mask] == y[cargo_mask]).mean()), 4),
        'allTop1': round(float((pred == y).mean()), 4),
        'suggestThreshold': probs_threshold,
        'goodsCoverageAtThreshold': round(float(sure.sum() / max(1, goods_mask.sum())), 4),
        'goodsTop1AtThreshold': round(float((pred[sure] == y[sure]).mean()), 4) if sure.any() else None,
        'perClass': per_class,
        'confusion': conf.tolist(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--train', nargs='+', required=True)
    ap.add_argument('--val', nargs='+', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--epochs', type=int, default=8)
    ap.add_argument('--samples', type=int, default=10000, help='tiles drawn per epoch')
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--lr', type=float, default=4e-3)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--suggest', type=float, default=0.6, help='minimum top-1 probability for a suggestion')
    args = ap.parse_args()

    train, val, norm, started = common.start_training(args)
    labels = train.goods_labels
    y = train.goods.astype(np.int64)
    counts = np.bincount(y, minlength=len(labels)).astype(np.float64)
    w_class = np.where(counts > 0, 1.0 / np.sqrt(np.maximum(counts, 1)), 0.0)
    w = w_class[y]
    w /= w.sum()
    print('train tiles %d, val tiles %d, label counts %s' % (len(train), len(val), dict(zip(labels, counts.astype(int).tolist()))), flush=True)

    model = nets.GoodsNet(len(labels), channels=train.channels)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * (args.samples // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    rng = np.random.RandomState(args.seed)
    history = []
    for epoch in range(args.epochs):
        model.train()
        t0 = time.time()
        draw = rng.choice(len(train), size=(args.samples // args.batch) * args.batch, replace=True, p=w)
        total, correct, loss_sum = 0, 0, 0.0
        for s in range(0, len(draw), args.batch):
            idx = draw[s:s + args.batch]
            x = train.get(idx)
            x *= rng.uniform(0.9, 1.1, size=(len(idx), 1, 1, 1)).astype(np.float32)
            flip = rng.rand(len(idx)) < 0.5
            x[flip] = x[flip, :, :, ::-1]
            xb = torch.from_numpy(norm.apply(x))
            yb = torch.from_numpy(y[idx])
            logits, _ = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            total += len(idx)
        vl, _ = common.predict(model, val, norm, outputs=2)
        m = goods_metrics(val, vl, args.suggest)
        history.append({'epoch': epoch + 1, 'loss': round(loss_sum / total, 4), 'trainTop1': round(correct / total, 4),
                        'valGoodsTop1': m['goodsTop1'], 'valCargoTop1': m['cargoTop1'], 'seconds': round(time.time() - t0, 1)})
        print(json.dumps(history[-1]), flush=True)

    vl, _ = common.predict(model, val, norm, outputs=2)
    metrics = goods_metrics(val, vl, args.suggest)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ('confusion',)}, indent=1), flush=True)
    torch.save({
        'task': 'goods',
        'state': model.state_dict(),
        'labels': labels,
        'channels': train.channels,
        'normalization': norm.manifest(),
        'suggest': args.suggest,
        'metrics': metrics,
        'history': history,
        'args': vars(args),
        **common.provenance(train, val, model, started),
    }, args.out)


if __name__ == '__main__':
    main()

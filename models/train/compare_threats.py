"""Compares threat checkpoints on scans none of them was trained or validated on, with the scan-level alert rule the
gateway uses (common.alert_stats) and each checkpoint's own thresholds. Used to pick which GPU-trained variant
becomes models/threats-v1 without spending the held-out seeds that `scanline eval` reports on.

  /usr/bin/python3 compare_threats.py --data DIR [DIR ...] --checkpoints CKPT [CKPT ...] [--json] [--curve]
  /usr/bin/python3 compare_threats.py --data DIR [DIR ...] --checkpoints CKPT --choose-thresholds BUDGET --write OUT

With --choose-thresholds, the per-label thresholds are chosen again on these scans (common.choose_thresholds: the most
threats found at <= BUDGET false alarms per scan; the checkpoint's own thresholds stay when the search finds no set
that does better, `keptOwn`), checked on the two halves (chosen on one, measured on the other),
and --write saves a copy of the checkpoint with them and the seeds they were chosen on. The validation split of
training is small and the search overfits its few false alarms; a larger set of unseen scans gives steadier
thresholds. The seeds used here must stay out of the range `scanline eval` reports on.
"""
import argparse
import json

import numpy as np
import torch

import common
import nets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--data', nargs='+', required=True, help='`scanline dataset` exports (every tile) of unseen seeds')
    ap.add_argument('--json', action='store_true')
    ap.add_argument('--checkpoints', nargs='+', required=True)
    ap.add_argument('--choose-thresholds', type=float, metavar='BUDGET', help='false alarms per scan allowed')
    ap.add_argument('--write', help='with --choose-thresholds: the checkpoint copy to write')
    ap.add_argument('--curve', action='store_true',
                    help='also print each checkpoint\'s operating curve: recall and false alarms per scan with one '
                         'threshold for every label')
    args = ap.parse_args()
    common.seed_everything(0)
    ds = common.Dataset(args.data)
    rows = []
    for path in args.checkpoints:
        ck = torch.load(path, map_location='cpu')
        if ck.get('thresholds') is None:
            raise SystemExit('%s: no thresholds (the run stopped before its threshold search)' % path)
        a = ck['args']
        net = nets.threat_net(a.get('arch', 'threatnet'), len(ck['labels']), a.get('width', 32), ck.get('channels', 2))
        net.load_state_dict(ck['state'])
        norm = common.Normalization.from_manifest(ck['normalization'])
        probs = 1.0 / (1.0 + np.exp(-common.predict(net, ds, norm)))
        maps = common.scan_cell_maps(ds, probs)
        # The checkpoint's own thresholds: what `st` and the row below report, whatever --write saves.
        own_thresholds = ck['thresholds']
        st = common.alert_stats(maps, ck['labels'], own_thresholds)
        if args.curve:
            for point in common.operating_curve(maps, ck['labels']):
                print(json.dumps({'checkpoint': path, **point}), flush=True)
        if args.choose_thresholds is not None:
            # The checkpoint's own thresholds are a candidate too: kept when the search finds nothing better.
            own = [own_thresholds]
            th, chosen = common.choose_thresholds(maps, ck['labels'], args.choose_thresholds, candidates=own)
            kept_own = th == {k: float(v) for k, v in own_thresholds.items()}
            half = len(maps) // 2
            th_a, _ = common.choose_thresholds(maps[:half], ck['labels'], args.choose_thresholds, candidates=own)
            th_b, _ = common.choose_thresholds(maps[half:], ck['labels'], args.choose_thresholds, candidates=own)
            check = {'aOnB': common.alert_stats(maps[half:], ck['labels'], th_a), 'bOnA': common.alert_stats(maps[:half], ck['labels'], th_b)}
            print(json.dumps({'checkpoint': path, 'budget': args.choose_thresholds, 'thresholds': th, 'stats': chosen,
                              'keptOwn': kept_own,
                              'thresholdsA': th_a, 'thresholdsB': th_b,
                              'halves': {k: {f: v[f] for f in ('recall', 'falseAlarmsPerScan')} for k, v in check.items()}}, indent=1), flush=True)
            if args.write:
                ck = dict(ck)
                ck['thresholds'] = th
                ck['thresholdChoice'] = {'seeds': [ds.seeds[0], ds.seeds[-1]], 'scans': len(ds.scans), 'budgetPerScan': args.choose_thresholds,
                                         'stats': chosen, 'halves': check, 'validationThresholds': ck['metrics'].get('thresholds'),
                                         'keptOwn': kept_own}
                torch.save(ck, args.write)
        rows.append({'checkpoint': path, 'arch': a.get('arch', 'threatnet'), 'width': a.get('width'), 'params': common.count_params(net),
                     'thresholds': own_thresholds, 'valRecall': ck['metrics']['recall'], 'valFalseAlarmsPerScan': ck['metrics']['falseAlarmsPerScan'],
                     **{k: st[k] for k in ('scans', 'threats', 'recall', 'recallKindCorrect', 'recallByKind', 'falseAlarmsPerScan')}})
        r = rows[-1]
        print('%-28s %-10s w%-3s recall %.3f (kind %.3f) FA/scan %.3f | val %.3f @ %.3f | by kind %s' % (
            path, r['arch'], r['width'], r['recall'], r['recallKindCorrect'], r['falseAlarmsPerScan'], r['valRecall'],
            r['valFalseAlarmsPerScan'], {k: round(v, 3) for k, v in r['recallByKind'].items()}), flush=True)
    print('scans %d, threats %d (seeds %d..%d)' % (len(ds.scans), rows[0]['threats'], ds.seeds[0], ds.seeds[-1]))
    if args.json:
        print(json.dumps(rows))


if __name__ == '__main__':
    main()

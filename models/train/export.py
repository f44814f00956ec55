"""Exports trained checkpoints to the model registry: models/<name>/model.onnx, model.fp16.onnx and model.json
(the manifest contract of src/inference/manifest-types.ts, documented in models/README.md).

  /usr/bin/python3 export.py --goods goods.pt --threats threats.pt --val DIR [DIR ...] --models ../

Checks before anything is written: onnx.checker (full) on both files, and the exported graphs evaluated with a numpy
ONNX evaluator (onnx_ref.py) on validation tiles against PyTorch (fp32 within 1e-3; fp16 top-1 / cell decisions
compared).
"""
import argparse
import os
import platform

import numpy as np
import onnx
import torch

import common
import nets
import onnx_ref
import to_fp16

OPSET = 13
# Semantic versions of the trained weights, reported with every result (DICOS algorithm version). Bump one when its
# weights or thresholds change. threats 3.0.0: 2.1.0 fine-tuned on the harder simulator's scans on a CPU
# (--init-onnx); 2.0.0: ThreatNet2 (32 x 32 detail layer, dilated residual pairs, global context), trained on a GPU
# by threats.sh on 2.5x the scans; 1.1.0: ThreatNet width 48, 24 epochs; 1.0.0: width 32. goods 2.0.0 and
# goods-1e 1.0.0: trained on the harder simulator. threats-1e 1.0.0: threats 2.1.0 folded to one energy, fine-tuned
# on the harder simulator's single-energy scans. Minor versions count the fits scanline fit-opinion adds to the same
# weights (run.sh runs it after this export): goods 2.1.0 and goods-1e 1.1.0 fitted them with the two dual-energy
# noise statistics. threats 3.1.0: 3.0.0's weights, thresholds chosen again on 600 unseen scans (compare_threats.py).
# threats-1e 1.0.1: 1.0.0's weights and thresholds; the re-choice on 600 unseen single-energy scans kept them, and the
# manifest records it. threats 4.0.0: 2.1.0 fine-tuned again, on about twice the threat tiles (threats.sh threats-b,
# threats-c); threats-1e 2.0.0: folded from 4.0.0 and fine-tuned as 1.0.0 was. threats 5.0.0: 4.0.0 fine-tuned 6 more
# epochs with threats-d (seeds 7000-7999); threats-1e 3.0.0: folded from 5.0.0 and fine-tuned as before.
VERSIONS = {'goods-v1': '2.1.0', 'threats-v1': '5.0.0', 'goods-1e-v1': '1.1.0', 'threats-1e-v1': '3.0.0'}

GOODS_NAMES = {
    'timber': 'Timber (sawn wood)',
    'paper': 'Paper and cartons',
    'clothing': 'Clothing',
    'footwear': 'Footwear',
    'beverages': 'Beverages (bottled)',
    'tobacco': 'Tobacco products',
    'fruit': 'Fresh fruit',
    'tyres': 'Tyres',
    'steel': 'Steel structures',
    'machinery': 'Machinery',
    'electronics': 'Electronics (computers)',
    'empty': 'Empty cargo bay',
    'vehicle': 'Vehicle structure (no cargo)',
    'air': 'Air (nothing in the beam)',
}
THREAT_NAMES = {'firearm': 'Firearm', 'narcotics': 'Narcotics', 'explosive': 'Explosive'}


class GoodsExport(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, tiles):
        logits, embedding = self.net(tiles)
        return logits, embedding


def export_onnx(module, path, outputs, channels=2):
    module.eval()
    dummy = torch.zeros(2, channels, 64, 64)
    torch.onnx.export(
        module, dummy, path,
        input_names=['tiles'], output_names=outputs,
        dynamic_axes={n: {0: 'batch'} for n in ['tiles'] + outputs},
        opset_version=OPSET, do_constant_folding=True,
    )
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    return model


def check_against_torch(module, model32, model16, x, outputs):
    """Max abs difference of fp32 ONNX vs torch per output, and the fp16 outputs, on normalised tiles x."""
    with torch.no_grad():
        ref = module(torch.from_numpy(x))
    ref = ref if isinstance(ref, tuple) else (ref,)
    ref = {n: r.numpy() for n, r in zip(outputs, ref)}
    got32 = onnx_ref.run(model32, {'tiles': x})
    got16 = onnx_ref.run(model16, {'tiles': x})
    for n in outputs:
        assert got32[n].dtype == np.float32 and got16[n].dtype == np.float32, 'outputs must be float32'
        assert got32[n].shape == ref[n].shape == got16[n].shape, (n, got32[n].shape, ref[n].shape)
    diff32 = {n: float(np.abs(got32[n] - ref[n]).max()) for n in outputs}
    diff16 = {n: float(np.abs(got16[n] - ref[n]).max()) for n in outputs}
    return ref, got16, diff32, diff16


def file_entry(folder, name):
    path = os.path.join(folder, name)
    return {'path': name, 'sha256': common.sha256_file(path)}, os.path.getsize(path)


def export_and_check(module, folder, outputs, ck, tiles, channels=2):
    """Writes folder/model.onnx and its fp16 variant, then evaluates both on `tiles` (raw, normalised here with the
    checkpoint's normalisation) against PyTorch. Returns (normalisation, torch outputs, fp16 outputs, fp32 max diffs,
    fp16 max diffs)."""
    os.makedirs(folder, exist_ok=True)
    m32 = export_onnx(module, os.path.join(folder, 'model.onnx'), outputs, channels)
    m16 = to_fp16.convert(m32)
    onnx.save(m16, os.path.join(folder, 'model.fp16.onnx'))
    norm = common.Normalization.from_manifest(ck['normalization'])
    ref, got16, d32, d16 = check_against_torch(module, m32, m16, norm.apply(tiles), outputs)
    return norm, ref, got16, d32, d16


CHANNELS = {2: ['attenuation_high', 'attenuation_low'], 1: ['attenuation_high']}


def base_manifest(name, task, description, norm, outputs, labels, thresholds, training, channels=2):
    return {
        'manifestVersion': 1,
        'name': name,
        'version': VERSIONS[name],
        'task': task,
        'description': description,
        'files': {},
        'input': {
            'name': 'tiles',
            'shape': [-1, channels, 64, 64],
            'dtype': 'float32',
            'layout': 'NCHW',
            'channels': CHANNELS[channels],
            'tile': {'size': 64, 'downsample': 4},
            'normalization': norm,
        },
        'outputs': outputs,
        'labels': labels,
        'thresholds': thresholds,
        'training': training,
    }


def simulated(ck):
    """Which simulator the checkpoint's scans came from, for the description."""
    hard = (ck.get('dataset') or {}).get('truck', {}).get('realism') == 'hard'
    return "the harder simulator's (textured, cluttered, mixed loads, detector effects)" if hard else 'simulated'


def started_from(ck):
    """For a fine-tuned checkpoint, the sentence that says what it started from (else '')."""
    f = ck.get('initFrom')
    if not f:
        return ''
    return (' Fine-tuned from %s %s, trained on the basic simulator, whose input normalisation it keeps.' % (f['name'], f['version'])
            if f['name'] == 'threats-v1' and f['version'] == '2.1.0' else ' Fine-tuned from %s %s.' % (f['name'], f['version']))


def provenance(ck, extra):
    trained = ck.get('trainedWith') or {'torch': torch.__version__, 'device': 'cpu', 'python': platform.python_version()}
    t = {
        'recipe': 'models/train/threats.sh' if ck.get('task') == 'threats' else 'models/train/run.sh',
        'trainedWith': trained,
        'arguments': {k: v for k, v in ck['args'].items() if k not in ('train', 'val', 'out', 'patches')},
        'framework': 'exported with torch %s, onnx %s, opset %d' % (torch.__version__, onnx.__version__, OPSET),
        'python': platform.python_version(),
        'trainSeeds': ck['trainSeeds'],
        'trainScans': ck['trainScans'],
        'trainTiles': ck['trainTiles'],
        'validationSeeds': ck['valSeeds'],
        # Checkpoints before the ranges were recorded lie in one range, [first, last].
        'trainSeedRanges': ck.get('trainSeedRanges', [ck['trainSeeds']]),
        'validationSeedRanges': ck.get('valSeedRanges', [ck['valSeeds']]),
        'validationScans': ck['valScans'],
        'validationTiles': ck['valTiles'],
        'seed': ck['args']['seed'],
        'epochs': ck['args']['epochs'],
        'parameters': ck['params'],
        'trainSeconds': ck['trainSeconds'],
        'dataset': ck['dataset'],
        'history': ck['history'],
    }
    if ck.get('initFrom'):
        # Fine-tuned from a committed model (train_threats.py --init-onnx): what it started from.
        t['initFrom'] = ck['initFrom']
    if ck.get('thresholdChoice'):
        # Thresholds chosen again after training on more unseen scans (compare_threats.py --choose-thresholds).
        c = ck['thresholdChoice']
        t['thresholdChoice'] = {'seeds': c['seeds'], 'scans': c['scans'], 'budgetPerScan': c['budgetPerScan'],
                                'recall': c['stats']['recall'], 'falseAlarmsPerScan': c['stats']['falseAlarmsPerScan'],
                                'validationThresholds': c['validationThresholds']}
        if 'keptOwn' in c:
            # True: no set the search tried found more threats within the budget than the training run's own.
            t['thresholdChoice']['keptValidationThresholds'] = c['keptOwn']
    t.update(extra)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--goods', required=True)
    ap.add_argument('--goods-name', default='goods-v1', help='registry name and folder of the goods model')
    ap.add_argument('--threats', help='threat checkpoint (absent: goods only)')
    ap.add_argument('--threats-name', default='threats-v1', help='registry name and folder of the threats model')
    ap.add_argument('--val', nargs='+', required=True)
    ap.add_argument('--models', required=True, help='the models/ directory')
    ap.add_argument('--check-tiles', type=int, default=256)
    args = ap.parse_args()
    common.seed_everything(0)
    val = common.Dataset(args.val)
    rng = np.random.RandomState(0)
    pick = np.sort(rng.choice(len(val), size=min(args.check_tiles, len(val)), replace=False))

    # ---- goods ----
    ck = torch.load(args.goods)
    labels = ck['labels']
    channels = ck.get('channels', 2)
    if channels != val.channels:
        raise ValueError('the goods checkpoint reads %d channels, the validation tiles have %d' % (channels, val.channels))
    net = nets.GoodsNet(len(labels), channels=channels)
    net.load_state_dict(ck['state'])
    module = GoodsExport(net).eval()
    name = args.goods_name
    folder = os.path.join(args.models, name)
    outputs = ['logits', 'embedding']
    norm, ref, got16, d32, d16 = export_and_check(module, folder, outputs, ck, val.get(pick), channels)
    agree16 = float((ref['logits'].argmax(1) == got16['logits'].argmax(1)).mean())
    assert d32['logits'] < 1e-3 and d32['embedding'] < 1e-3, d32
    assert agree16 >= 0.98, agree16
    print('goods: fp32 max diff %s, fp16 max diff %s, fp16 top-1 agreement %.4f' % (d32, d16, agree16), flush=True)
    hs = {g['id']: g['hsCode'] for g in val.index['labels']['goods']}
    fp32, size32 = file_entry(folder, 'model.onnx')
    fp16, size16 = file_entry(folder, 'model.fp16.onnx')
    met = ck['metrics']
    goods_manifest = base_manifest(
        name, 'goods',
        'Scanline demo goods classifier: one of %d labels per 64x64 tile (11 goods categories, empty cargo bay, '
        'vehicle structure, air) plus a 64-d embedding for reference-sample matching. Trained on %s '
        '%s MeV portal scans only.' % (len(labels), simulated(ck), 'dual-energy' if channels == 2 else 'single-energy (high energy only)'),
        ck['normalization'],
        [
            {'name': 'logits', 'shape': [-1, len(labels)], 'dtype': 'float32', 'meaning': 'class_logits'},
            {'name': 'embedding', 'shape': [-1, 64], 'dtype': 'float32', 'meaning': 'embedding'},
        ],
        [dict({'id': l, 'name': GOODS_NAMES[l], 'hsCodes': [hs[l]] if hs.get(l) else []}, cargo=l not in ('vehicle', 'air')) for l in labels],
        {'suggest': ck['suggest']},
        provenance(ck, {
            'validation': {k: v for k, v in met.items() if k != 'confusion'},
            'validationConfusion': {'rows': 'true label', 'columns': 'predicted label', 'labels': labels, 'counts': met['confusion']},
            'exportCheck': {'fp32MaxAbsDiff': d32, 'fp16MaxAbsDiff': d16, 'fp16Top1Agreement': agree16, 'tiles': len(pick)},
        }),
        channels,
    )
    goods_manifest['files'] = {'fp32': fp32, 'fp16': fp16}
    common.write_json(os.path.join(folder, 'model.json'), goods_manifest)
    print('%s: model.onnx %d bytes, model.fp16.onnx %d bytes' % (name, size32, size16), flush=True)
    if not args.threats:
        return

    # ---- threats ----
    ck = torch.load(args.threats)
    kinds = ck['labels']
    channels = ck.get('channels', 2)
    net = nets.threat_net(ck['args'].get('arch', 'threatnet'), len(kinds), ck['args'].get('width', 32), channels)
    net.load_state_dict(ck['state'])
    net.eval()
    name = args.threats_name
    folder = os.path.join(args.models, name)
    outputs = ['heatmap']
    norm, ref, got16, d32, d16 = export_and_check(net, folder, outputs, ck, val.get(pick), channels)
    assert d32['heatmap'] < 1e-3, d32
    th = np.array([ck['thresholds'][k] for k in kinds], dtype=np.float32).reshape(1, -1, 1, 1)
    logit_th = np.log(th / (1 - th))
    agree16 = float(((ref['heatmap'] >= logit_th) == (got16['heatmap'] >= logit_th)).mean())
    print('threats: fp32 max diff %s, fp16 max diff %s, fp16 cell decision agreement %.5f' % (d32, d16, agree16), flush=True)
    fp32, size32 = file_entry(folder, 'model.onnx')
    fp16, size16 = file_entry(folder, 'model.fp16.onnx')
    threats_manifest = base_manifest(
        name, 'threats',
        'Scanline demo threat detector: per-cell logits for firearms, narcotics and explosives on a 16x16 grid '
        'per 64x64 tile (one cell = 4x4 tile samples = 16 lines x 16 detector pixels). Trained on %s '
        '%s MeV portal scans only.%s' % (simulated(ck), 'dual-energy' if channels == 2 else 'single-energy (high energy only)', started_from(ck)),
        ck['normalization'],
        [{'name': 'heatmap', 'shape': [-1, len(kinds), 16, 16], 'dtype': 'float32', 'meaning': 'threat_heatmap_logits'}],
        [{'id': k, 'name': THREAT_NAMES[k], 'hsCodes': []} for k in kinds],
        {k: ck['thresholds'][k] for k in kinds},
        provenance(ck, {
            'trainThreatTiles': ck['trainThreatTiles'],
            'alertDefinition': 'connected groups (8-neighbourhood) of cells at or above the label threshold on the '
                               'scan-wide cell grid (overlapping tiles merged by maximum); an alert is false when '
                               'none of its cells overlaps a true threat box; a threat is found when an alert of its '
                               'kind overlaps its box (models/train/common.py)',
            'validation': ck['metrics'],
            'exportCheck': {'fp32MaxAbsDiff': d32, 'fp16MaxAbsDiff': d16, 'fp16CellDecisionAgreement': agree16, 'tiles': len(pick)},
        }),
        channels,
    )
    threats_manifest['files'] = {'fp32': fp32, 'fp16': fp16}
    common.write_json(os.path.join(folder, 'model.json'), threats_manifest)
    print('%s: model.onnx %d bytes, model.fp16.onnx %d bytes' % (name, size32, size16), flush=True)


if __name__ == '__main__':
    main()

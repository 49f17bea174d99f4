#!/usr/bin/env python3
"""Cross-check of the TypeScript evaluation metrics against the numpy reference.

Recomputes every case written by tools/dump_metric_cases.ts with the functions of datasets_ref.py
(imported by path) and prints the largest absolute difference per metric; exits 1 when one exceeds its
tolerance. Usage:
    node --import tsx tools/dump_metric_cases.ts /tmp/clove_metric_cases.json 1
    python3 tools/crosscheck_metrics.py /tmp/clove_metric_cases.json [../shared/tools/datasets_ref.py]
"""
import importlib.util
import json
import os
import sys

import numpy as np
from scipy import ndimage as ndi

cases_path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/clove_metric_cases.json"
ref_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/tools/datasets_ref.py")
spec = importlib.util.spec_from_file_location("datasets_ref", ref_path)
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
with open(cases_path) as f:
    cases = json.load(f)

results = []  # (metric, max |difference|, tolerance, number of values compared)


def report(metric, diffs, tol):
    diffs = np.asarray(diffs, dtype=np.float64).ravel()
    results.append((metric, float(np.max(diffs)) if diffs.size else 0.0, tol, diffs.size))


def nan_diff(a, b):
    """|a - b|, with both NaN counting as agreement and one NaN as disagreement."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isnan(a) & np.isnan(b)
    return np.where(both, 0.0, np.where(np.isnan(a) | np.isnan(b), np.inf, np.abs(a - b)))


# ---------------------------------------------------------------- confusion + mIoU
d_cm, d_miou, d_fg, d_bg = [], [], [], []
for c in cases["segCases"]:
    n, k = c["n"], c["classes"]
    gt = np.array(c["gt"], np.uint8).reshape(n, 64, 64)
    pred = np.array(c["pred"], np.int64).reshape(n, 64, 64)
    cm = ref.confusion(pred, gt, k).sum(0)
    miou, ious = ref.miou_from_cm(cm)
    d_cm.append(np.abs(cm.ravel() - np.array(c["ts"]["confusion"])).max())
    d_miou.append(abs(miou - c["ts"]["miou"]))
    d_fg.append(abs(ious[1:].mean() - c["ts"]["fgMiou"]))
    d_bg.append(abs(ious[0] - c["ts"]["bgIou"]))
report("confusion matrix counts", d_cm, 0)
report("mIoU(11)", d_miou, 1e-12)
report("fg-mIoU(10)", d_fg, 1e-12)
report("bg IoU", d_bg, 1e-12)

# ---------------------------------------------------------------- bilinear upsampling (align_corners=False) + argmax
d_up, d_arg = [], []
for c in cases["upsampleCases"]:
    n, g, ch, fac = c["n"], c["grid"], c["channels"], c["factor"]
    logits = np.array(c["logits"], np.float64).reshape(n, g, g, ch)
    up = ref.upsample4(logits) if fac == 4 else ndi.zoom(logits, (1, fac, fac, 1), order=1, grid_mode=True, mode="nearest")
    d_up.append(np.abs(up.ravel() - np.array(c["ts"]["up"])).max())
    d_arg.append(np.mean(up.argmax(-1).ravel() != np.array(c["ts"]["argmax"])))
report("bilinear upsampling values", d_up, 1e-9)
report("argmax disagreement (fraction of pixels)", d_arg, 0)

# ---------------------------------------------------------------- P2 decoding
d_dec = []
for c in cases["decodeCases"]:
    n = c["n"]
    heat = np.array(c["heat"], np.float64).reshape(n, 16, 16, 10)
    size = np.array(c["size"], np.float64).reshape(n, 16, 16, 2)
    dets = np.array(ref.decode(heat, size), np.float64)
    ts = np.array(c["ts"], np.float64)
    d_dec.append(np.inf if dets.shape != ts.shape else np.abs(dets - ts).max())
report("decoded detections (image, class, score, box)", d_dec, 1e-9)

# ---------------------------------------------------------------- AP
d_ap_cls, d_map, d_ag, d_ctr_cls, d_ctr = [], [], [], [], []
for c in cases["apCases"]:
    objs = [[(int(o[0]), *o[1:5], o[5]) for o in items] for items in c["objs"]]
    dets = [(int(d[0]), int(d[1]), d[2], *d[3:7]) for d in c["dets"]]
    per_iou = [ref.average_precision(dets, objs, k) for k in range(10)]
    per_ctr = [ref.average_precision(dets, objs, k, mode="dist", thr=4.0) for k in range(10)]
    d_ap_cls.append(nan_diff(per_iou, c["ts"]["perClassIou"]))
    d_ctr_cls.append(nan_diff(per_ctr, c["ts"]["perClassCentre"]))
    d_map.append(nan_diff(np.nanmean(per_iou), c["ts"]["mAP50"]))
    d_ag.append(nan_diff(ref.average_precision(dets, objs, None), c["ts"]["agnosticAP50"]))
    d_ctr.append(nan_diff(np.nanmean(per_ctr), c["ts"]["centreAP4"]))
report("AP50 per class", np.concatenate(d_ap_cls), 1e-12)
report("mAP50", d_map, 1e-12)
report("class-agnostic AP50", d_ag, 1e-12)
report("centre-AP@4px per class", np.concatenate(d_ctr_cls), 1e-12)
report("centre-AP@4px", d_ctr, 1e-12)

# ---------------------------------------------------------------- ROC-AUC with ties
report("ROC-AUC (ties at average rank)",
       [abs(ref._auc(np.array(c["scores"]), np.array(c["labels"], bool)) - c["ts"]) for c in cases["aucCases"]], 1e-12)

# ---------------------------------------------------------------- ridge
d_ridge = []
for c in cases["ridgeCases"]:
    X = np.array(c["x"], np.float32).reshape(c["rows"], c["dim"])
    T = np.array(c["t"], np.float32).reshape(c["rows"], c["targets"])
    keep = np.array(c["keep"], bool)
    Xt = np.array(c["xTest"], np.float32).reshape(-1, c["dim"])
    r = ref.Ridge(X, T, w=keep)
    for lam, ts in zip(c["lambdas"], c["ts"]):
        p = r.solve(lam).predict(Xt)
        d_ridge.append(np.abs(p.ravel() - np.array(ts)).max() / (np.abs(p).max() + 1e-12))
report("ridge predictions (relative to max |prediction|), 5 λ", d_ridge, 1e-8)

# ---------------------------------------------------------------- P5 cosine of per-image standardised features
d_cos = []
for c in cases["cosineCases"]:
    X = np.array(c["feats"], np.float32).reshape(256, c["dim"]).astype(np.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)                      # the two lines of ref.eval_pair_auc
    X /= np.linalg.norm(X, axis=1, keepdims=True) + 1e-6
    a, b = np.array(c["pairs"]).T
    d_cos.append(np.abs((X[a] * X[b]).sum(1) - np.array(c["ts"])).max())
report("P5 standardised cosine", d_cos, 1e-12)

# ---------------------------------------------------------------- end-to-end P1 / P2 (features looked up by canvas index)
p = cases["protocols"]
D = p["dim"]


def split(s):
    n = len(s["objs"])
    return dict(img=np.arange(n), feats=np.array(s["feats"], np.float32).reshape(n, 16, 16, D),
                sem=np.array(s["sem"], np.uint8).reshape(n, 64, 64),
                objs=[[(int(o[0]), *o[1:5], o[5]) for o in items] for items in s["objs"]])


tr, va, te = split(p["train"]), split(p["val"]), split(p["test"])
store = {}
for s in (tr, va, te):
    s["img"] = np.arange(len(store), len(store) + len(s["objs"]))
    for i, f in zip(s["img"], s["feats"]):
        store[int(i)] = f
fx = lambda idx: np.stack([store[int(i)] for i in idx])          # "feature extractor" = lookup of the dumped features
seg = ref.eval_seg(fx, tr, va, te, 11)
det = ref.eval_det(fx, tr, va, te)
ts = p["ts"]
report("P1 fm_seg mIoU (end to end)", [abs(seg["miou"] - ts["fmSeg"]["miou"])], 1e-9)
report("P1 fm_seg fg-mIoU (end to end)", [abs(seg["ious"][1:].mean() - ts["fmSeg"]["fgMiou"])], 1e-9)
report("P1 fm_seg chosen λ (|log10 ratio|)", [abs(np.log10(seg["lam"] / ts["fmSeg"]["lambda"]))], 0)
report("P2 fm_det mAP50 (end to end)", [abs(det["mAP50"] - ts["fmDet"]["mAP50"])], 1e-9)
report("P2 fm_det agnostic AP50 (end to end)", [abs(det["agnostic_AP50"] - ts["fmDet"]["agnosticAP50"])], 1e-9)
report("P2 fm_det centre-AP@4px (end to end)", [abs(det["centre_AP4px"] - ts["fmDet"]["centreAP4"])], 1e-9)
report("P2 fm_det chosen λ (|log10 ratio|)", [abs(np.log10(det["lam"] / ts["fmDet"]["lambda"]))], 0)
print(f"end-to-end values (TS): fm_seg mIoU={ts['fmSeg']['miou']:.4f} λ={ts['fmSeg']['lambda']:g}; "
      f"fm_det mAP50={ts['fmDet']['mAP50']:.4f} agnostic={ts['fmDet']['agnosticAP50']:.4f} "
      f"centre={ts['fmDet']['centreAP4']:.4f} λ={ts['fmDet']['lambda']:g}")

failed = False
print(f"cross-check of {cases_path} (seed {cases['seed']}) against {ref_path}")
for metric, worst, tol, count in results:
    ok = worst <= tol
    failed |= not ok
    print(f"  {'ok  ' if ok else 'FAIL'} {metric:55s} max |diff| = {worst:.3e}  (tolerance {tol:g}, {count} comparisons)")
sys.exit(1 if failed else 0)

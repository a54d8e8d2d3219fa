//! Scoring of detections and tracks against ground truth: pure functions, no I/O.
//!
//! # Definitions used
//!
//! **Boxes** are `[x, y, w, h]` in pixels (top-left corner, width, height). A box with a
//! non-finite coordinate or a width or height `<= 0` overlaps nothing.
//!
//! **Match.** A ground-truth box and a predicted box *may match* when they have the same `class`,
//! the same camera and frame, `IoU > 0` and `IoU >= iou` (compared in `f32`, so `0.3` means the
//! `f32` 0.3 the caller wrote). Every matching in this module is one-to-one inside a
//! `(camera, frame)`: it maximises the number of matched pairs first and then the summed IoU,
//! solved exactly with the Hungarian (Kuhn–Munkres) algorithm. Prediction scores are not used:
//! callers filter predictions by score before scoring.
//!
//! **Ratios.** Precision, recall, IDP, IDR, IDF1, purity and completeness are `1.0` when their
//! denominator is 0 (nothing was there to get wrong): precision with no predictions, recall with no
//! ground truth. Report the counts next to them to tell "perfect" from "empty".
//!
//! **CLEAR-MOT** (Bernardin & Stiefelhagen 2008), per camera sequence, frames in increasing order:
//! 1. a correspondence `(gt id, track)` made in the previous processed frame of the sequence is kept
//!    when both are present and may still match;
//! 2. the remaining boxes are matched optimally (above);
//! 3. a match `(gt id, track)` of step 2 is an **identity switch** when that gt id's last
//!    correspondence (at any earlier time) was another track.
//!
//! `fp` = unmatched predicted boxes, `fn_` = unmatched ground-truth boxes, `gt` = ground-truth boxes,
//! `MOTA = 1 − (fn_ + fp + id_switches) / gt` (with `gt` taken as 1 when it is 0, so an empty
//! sequence with no predictions scores 1 and the value stays finite), `MOTP` = mean IoU of the
//! matched pairs (higher is better; 0 when nothing matched). A **fragmentation** is a ground-truth
//! trajectory going from tracked to missed and later tracked again (counted over the frames where
//! the gt id is annotated, as py-motmetrics does). **Mostly tracked**: a gt identity matched in at
//! least 80 % of its boxes; **mostly lost**: in less than 20 %.
//!
//! **IDF1** (Ristani et al. 2016). For every pair (gt identity, predicted identity), `IDTP(g, p)` is
//! the number of frames (per camera) where a box of `g` and a box of `p` may match; pairs are
//! counted independently of each other. A one-to-one assignment of gt identities to predicted
//! identities maximising `Σ IDTP` is found (the cost matrix is built sparsely from these
//! co-occurrence counts and each connected component solved with Kuhn–Munkres). Then
//! `IDFN = gt boxes − IDTP`, `IDFP = predicted boxes − IDTP`, `IDP = IDTP / predicted boxes`,
//! `IDR = IDTP / gt boxes`, `IDF1 = 2·IDTP / (gt boxes + predicted boxes)`.
//!
//! **Cross-camera (MTMC).** The same IDF1 over all cameras at once, with gt identities the global
//! `id`s and predicted identities the fused ids given by `global_of`, or the per-camera track
//! itself when it is not fused. **Purity** uses the per-frame optimal matching above: for each
//! predicted identity, the matched detections of its majority gt identity; purity is the sum of
//! those over all predicted identities divided by all matched detections (detection-weighted).
//! **Completeness** is the same with the roles swapped (per gt identity, its majority predicted
//! identity).
//!
//! **Percentiles** use linear interpolation between closest ranks (numpy's default, "type 7").

mod assign;
pub mod svg;
#[cfg(test)]
mod tests;

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hash;

/// One ground-truth box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GtBox {
    /// Camera the box is seen by.
    pub camera: String,
    /// Frame index in that camera's stream.
    pub frame: u64,
    /// Global identity (the same person or vehicle has the same id on every camera).
    pub id: u64,
    /// Object class, e.g. `person`, `car`.
    pub class: String,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f32; 4],
}

/// One predicted (detected and tracked) box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PredBox {
    /// Camera that produced it.
    pub camera: String,
    /// Frame index in that camera's stream.
    pub frame: u64,
    /// Per-camera track id.
    pub track: u64,
    /// Object class.
    pub class: String,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f32; 4],
    /// Detector confidence (not used by the scorers).
    pub score: f32,
}

/// Detection precision and recall of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassPr {
    /// Class name.
    pub class: String,
    /// Matched predicted boxes.
    pub tp: u64,
    /// Unmatched predicted boxes.
    pub fp: u64,
    /// Unmatched ground-truth boxes.
    pub fn_: u64,
    /// `tp / (tp + fp)`, 1 when there are no predictions.
    pub precision: f64,
    /// `tp / (tp + fn_)`, 1 when there is no ground truth.
    pub recall: f64,
}

/// Recall of the ground-truth boxes whose height lies in `[min_px, max_px)` (the last bin includes
/// `max_px`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeBin {
    /// Lower edge, pixels of box height (inclusive).
    pub min_px: f32,
    /// Upper edge, pixels of box height (exclusive, except for the last bin).
    pub max_px: f32,
    /// Ground-truth boxes in the bin.
    pub gt: u64,
    /// Of those, boxes matched by a prediction.
    pub matched: u64,
    /// `matched / gt`, 1 when the bin is empty.
    pub recall: f64,
}

/// CLEAR-MOT and identity scores of one camera (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MotScores {
    /// `1 − (fn_ + fp + id_switches) / gt`; can be negative.
    pub mota: f64,
    /// Mean IoU of matched pairs (higher is better).
    pub motp: f64,
    /// `2·IDTP / (gt boxes + predicted boxes)`.
    pub idf1: f64,
    /// `IDTP / predicted boxes`.
    pub idp: f64,
    /// `IDTP / gt boxes`.
    pub idr: f64,
    /// Identity switches.
    pub id_switches: u64,
    /// Interruptions of tracked ground-truth trajectories that resume later.
    pub fragmentations: u64,
    /// Unmatched predicted boxes.
    pub fp: u64,
    /// Unmatched ground-truth boxes.
    pub fn_: u64,
    /// Ground-truth boxes.
    pub gt: u64,
    /// Ground-truth identities matched in >= 80 % of their boxes.
    pub mostly_tracked: u64,
    /// Ground-truth identities matched in < 20 % of their boxes.
    pub mostly_lost: u64,
}

/// Multi-camera identity scores (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CrossCameraScores {
    /// MTMC IDF1 over all cameras.
    pub idf1: f64,
    /// MTMC identity precision.
    pub idp: f64,
    /// MTMC identity recall.
    pub idr: f64,
    /// Detection-weighted share of each predicted identity's matched detections that belong to
    /// its majority gt identity.
    pub purity: f64,
    /// Detection-weighted share of each gt identity's matched detections that belong to its
    /// majority predicted identity.
    pub completeness: f64,
    /// Distinct ground-truth identities.
    pub identities_gt: u64,
    /// Distinct predicted identities (fused ids, plus unfused `(camera, track)` pairs).
    pub identities_pred: u64,
}

/// Precision and recall from counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pr {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// False negatives.
    pub fn_: u64,
    /// `tp / (tp + fp)`, 1 when `tp + fp == 0`.
    pub precision: f64,
    /// `tp / (tp + fn_)`, 1 when `tp + fn_ == 0`.
    pub recall: f64,
}

/// `num / den`, or 1 when `den == 0`.
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

/// Precision and recall from counts; each is 1 when its denominator is 0 (no predictions: no wrong
/// prediction; no ground truth: nothing missed).
pub fn pr(tp: u64, fp: u64, fn_: u64) -> Pr {
    Pr {
        tp,
        fp,
        fn_,
        precision: ratio(tp, tp.saturating_add(fp)),
        recall: ratio(tp, tp.saturating_add(fn_)),
    }
}

/// Intersection over union of two `[x, y, w, h]` boxes; 0 for degenerate or non-finite boxes.
pub(crate) fn iou(a: &[f32; 4], b: &[f32; 4]) -> f64 {
    let valid = |x: &[f32; 4]| x.iter().all(|v| v.is_finite()) && x[2] > 0.0 && x[3] > 0.0;
    if !valid(a) || !valid(b) {
        return 0.0;
    }
    let [ax, ay, aw, ah] = a.map(f64::from);
    let [bx, by, bw, bh] = b.map(f64::from);
    let iw = ((ax + aw).min(bx + bw) - ax.max(bx)).max(0.0);
    let ih = ((ay + ah).min(by + bh) - ay.max(by)).max(0.0);
    let inter = iw * ih;
    let union = aw * ah + bw * bh - inter;
    if inter <= 0.0 || union <= 0.0 || !union.is_finite() {
        0.0
    } else {
        (inter / union).clamp(0.0, 1.0)
    }
}

/// IoU of a pair that may match (same class, `IoU > 0`, `IoU >= thr`), else `None`.
fn pair_iou(g: &GtBox, p: &PredBox, thr: f32) -> Option<f64> {
    if g.class != p.class {
        return None;
    }
    let s = iou(&g.bbox, &p.bbox);
    (s > 0.0 && (s as f32) >= thr).then_some(s)
}

/// Box indices of each `(camera, frame)`, in camera then frame order.
type Frames<'a> = BTreeMap<(&'a str, u64), (Vec<usize>, Vec<usize>)>;

fn group_frames<'a>(gt: &'a [GtBox], pred: &'a [PredBox]) -> Frames<'a> {
    let mut frames: Frames<'a> = BTreeMap::new();
    for (i, g) in gt.iter().enumerate() {
        frames.entry((&g.camera, g.frame)).or_default().0.push(i);
    }
    for (j, p) in pred.iter().enumerate() {
        frames.entry((&p.camera, p.frame)).or_default().1.push(j);
    }
    frames
}

/// Optimal one-to-one matching in every `(camera, frame)`: `(gt index, pred index, IoU)`.
fn frame_matches(gt: &[GtBox], pred: &[PredBox], thr: f32) -> Vec<(usize, usize, f64)> {
    let mut out = Vec::new();
    for (gi, pi) in group_frames(gt, pred).values() {
        if gi.is_empty() || pi.is_empty() {
            continue;
        }
        let m = assign::match_pairs(gi.len(), pi.len(), |a, b| {
            pair_iou(&gt[gi[a]], &pred[pi[b]], thr)
        });
        out.extend(m.into_iter().map(|(a, b, s)| (gi[a], pi[b], s)));
    }
    out
}

/// Detection precision and recall per class (sorted by class name; every class seen in the ground
/// truth or the predictions), from the optimal one-to-one matching of each `(camera, frame)` at
/// `IoU >= iou`.
pub fn detection_pr(gt: &[GtBox], pred: &[PredBox], iou: f32) -> Vec<ClassPr> {
    #[derive(Default)]
    struct Counts {
        gt: u64,
        pred: u64,
        tp: u64,
    }
    let mut by_class: BTreeMap<&str, Counts> = BTreeMap::new();
    for g in gt {
        by_class.entry(&g.class).or_default().gt += 1;
    }
    for p in pred {
        by_class.entry(&p.class).or_default().pred += 1;
    }
    for (g, _, _) in frame_matches(gt, pred, iou) {
        by_class.entry(&gt[g].class).or_default().tp += 1;
    }
    by_class
        .into_iter()
        .map(|(class, c)| {
            let p = pr(c.tp, c.pred - c.tp, c.gt - c.tp);
            ClassPr {
                class: class.to_string(),
                tp: p.tp,
                fp: p.fp,
                fn_: p.fn_,
                precision: p.precision,
                recall: p.recall,
            }
        })
        .collect()
}

/// Recall of ground-truth boxes binned by box height (`bbox[3]`), matching as in
/// [`detection_pr`] (all classes together).
///
/// `edges_px` gives the bin edges: non-finite edges are dropped, the rest sorted and deduplicated,
/// and each pair of consecutive edges is a bin `[lo, hi)`, the last one `[lo, hi]`. Boxes outside
/// `[first edge, last edge]` are not counted (pass `0.0` and `f32::MAX` to cover everything). Fewer
/// than two edges give no bins.
pub fn recall_by_size(gt: &[GtBox], pred: &[PredBox], iou: f32, edges_px: &[f32]) -> Vec<SizeBin> {
    let mut edges: Vec<f32> = edges_px.iter().copied().filter(|e| e.is_finite()).collect();
    edges.sort_by(f32::total_cmp);
    edges.dedup();
    if edges.len() < 2 {
        return Vec::new();
    }
    let mut matched = vec![false; gt.len()];
    for (g, _, _) in frame_matches(gt, pred, iou) {
        matched[g] = true;
    }
    let nbins = edges.len() - 1;
    let mut counts = vec![(0u64, 0u64); nbins];
    for (g, &m) in gt.iter().zip(&matched) {
        let h = g.bbox[3];
        if !(h >= edges[0] && h <= edges[nbins]) {
            continue;
        }
        // First edge greater than h, minus one; h == last edge goes to the last bin.
        let bin = edges
            .partition_point(|&e| e <= h)
            .saturating_sub(1)
            .min(nbins - 1);
        counts[bin].0 += 1;
        counts[bin].1 += u64::from(m);
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, (n, m))| SizeBin {
            min_px: edges[i],
            max_px: edges[i + 1],
            gt: n,
            matched: m,
            recall: ratio(m, n),
        })
        .collect()
}

/// Counts behind IDF1.
struct IdCounts {
    idtp: u64,
    gt_boxes: u64,
    pred_boxes: u64,
    gt_ids: u64,
    pred_ids: u64,
}

impl IdCounts {
    fn idp(&self) -> f64 {
        ratio(self.idtp, self.pred_boxes)
    }
    fn idr(&self) -> f64 {
        ratio(self.idtp, self.gt_boxes)
    }
    fn idf1(&self) -> f64 {
        ratio(2 * self.idtp, self.gt_boxes + self.pred_boxes)
    }
}

/// Interns keys as dense indices.
struct Interner<K> {
    map: HashMap<K, usize>,
}

impl<K: Hash + Eq> Interner<K> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
        }
    }
    fn get(&mut self, k: K) -> usize {
        let n = self.map.len();
        *self.map.entry(k).or_insert(n)
    }
}

/// Global identity matching (Ristani et al.): identities of boxes given by `gk` / `pk`.
fn id_counts<'a, GK: Hash + Eq, PK: Hash + Eq>(
    gt: &'a [GtBox],
    pred: &'a [PredBox],
    thr: f32,
    gk: impl Fn(&'a GtBox) -> GK,
    pk: impl Fn(&'a PredBox) -> PK,
) -> IdCounts {
    let mut gids = Interner::new();
    let mut pids = Interner::new();
    let g_of: Vec<usize> = gt.iter().map(|g| gids.get(gk(g))).collect();
    let p_of: Vec<usize> = pred.iter().map(|p| pids.get(pk(p))).collect();
    let mut co: HashMap<(usize, usize), u64> = HashMap::new();
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    for (gi, pi) in group_frames(gt, pred).values() {
        seen.clear();
        for &a in gi {
            for &b in pi {
                if pair_iou(&gt[a], &pred[b], thr).is_some() {
                    seen.insert((g_of[a], p_of[b]));
                }
            }
        }
        for &k in &seen {
            *co.entry(k).or_insert(0) += 1;
        }
    }
    let idtp = assign::max_weight_matching(&co).iter().map(|m| m.2).sum();
    IdCounts {
        idtp,
        gt_boxes: gt.len() as u64,
        pred_boxes: pred.len() as u64,
        gt_ids: gids.map.len() as u64,
        pred_ids: pids.map.len() as u64,
    }
}

/// CLEAR-MOT and IDF1 of one camera (see the module documentation for the definitions).
///
/// The caller passes one camera. Boxes of several cameras are accepted: each camera is then its own
/// sequence with its own identities (a gt id on two cameras counts as two trajectories) and the
/// counts are pooled; use [`cross_camera`] for identities across cameras.
pub fn mot(gt: &[GtBox], pred: &[PredBox], iou: f32) -> MotScores {
    #[derive(Default)]
    struct Traj {
        boxes: u64,
        tracked: u64,
        prev_tracked: bool,
        gap_open: bool,
        fragments: u64,
    }
    // (camera, gt id) -> (track of the last correspondence, step it was made at).
    let mut last: HashMap<(&str, u64), (u64, u64)> = HashMap::new();
    let mut trajs: HashMap<(&str, u64), Traj> = HashMap::new();
    let (mut matches, mut switches, mut iou_sum) = (0u64, 0u64, 0.0f64);
    for (step, ((cam, _), (gi, pi))) in group_frames(gt, pred).iter().enumerate() {
        let step = step as u64 + 1;
        let mut g_used = vec![false; gi.len()];
        let mut p_used = vec![false; pi.len()];
        let mut pairs: Vec<(usize, usize, f64)> = Vec::new(); // local indices
        // 1. Keep the previous frame's correspondences that are still valid.
        for (a, &g) in gi.iter().enumerate() {
            let Some(&(track, at)) = last.get(&(*cam, gt[g].id)) else {
                continue;
            };
            if at + 1 != step {
                continue;
            }
            let keep = pi.iter().enumerate().find_map(|(b, &p)| {
                if p_used[b] || pred[p].track != track {
                    return None;
                }
                pair_iou(&gt[g], &pred[p], iou).map(|s| (b, s))
            });
            if let Some((b, s)) = keep {
                g_used[a] = true;
                p_used[b] = true;
                pairs.push((a, b, s));
            }
        }
        let kept = pairs.len();
        // 2. Optimal matching of the rest.
        let rest_g: Vec<usize> = (0..gi.len()).filter(|&a| !g_used[a]).collect();
        let rest_p: Vec<usize> = (0..pi.len()).filter(|&b| !p_used[b]).collect();
        if !rest_g.is_empty() && !rest_p.is_empty() {
            let m = assign::match_pairs(rest_g.len(), rest_p.len(), |x, y| {
                pair_iou(&gt[gi[rest_g[x]]], &pred[pi[rest_p[y]]], iou)
            });
            pairs.extend(m.into_iter().map(|(x, y, s)| (rest_g[x], rest_p[y], s)));
        }
        // 3. Identity switches among the new matches; record correspondences.
        let mut tracked = vec![false; gi.len()];
        for (k, &(a, b, s)) in pairs.iter().enumerate() {
            let key = (*cam, gt[gi[a]].id);
            let track = pred[pi[b]].track;
            if k >= kept && last.get(&key).is_some_and(|&(t, _)| t != track) {
                switches += 1;
            }
            last.insert(key, (track, step));
            tracked[a] = true;
            matches += 1;
            iou_sum += s;
        }
        for (a, &g) in gi.iter().enumerate() {
            let t = trajs.entry((*cam, gt[g].id)).or_default();
            t.boxes += 1;
            if tracked[a] {
                t.tracked += 1;
                if t.gap_open {
                    t.fragments += 1;
                    t.gap_open = false;
                }
                t.prev_tracked = true;
            } else {
                if t.prev_tracked {
                    t.gap_open = true;
                }
                t.prev_tracked = false;
            }
        }
    }
    let n_gt = gt.len() as u64;
    let fp = pred.len() as u64 - matches;
    let fn_ = n_gt - matches;
    let ids = id_counts(
        gt,
        pred,
        iou,
        |g| (g.camera.as_str(), g.id),
        |p| (p.camera.as_str(), p.track),
    );
    let (mut mt, mut ml) = (0, 0);
    for t in trajs.values() {
        let share = t.tracked as f64 / t.boxes as f64;
        mt += u64::from(share >= 0.8);
        ml += u64::from(share < 0.2);
    }
    MotScores {
        mota: 1.0 - (fn_ + fp + switches) as f64 / n_gt.max(1) as f64,
        motp: if matches == 0 {
            0.0
        } else {
            iou_sum / matches as f64
        },
        idf1: ids.idf1(),
        idp: ids.idp(),
        idr: ids.idr(),
        id_switches: switches,
        fragmentations: trajs.values().map(|t| t.fragments).sum(),
        fp,
        fn_,
        gt: n_gt,
        mostly_tracked: mt,
        mostly_lost: ml,
    }
}

/// Predicted identity across cameras: a fused id, or an unfused per-camera track.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PredIdentity<'a> {
    Fused(u64),
    Track(&'a str, u64),
}

/// Multi-camera identity scores: MTMC IDF1 over all cameras with global ids, purity and
/// completeness (see the module documentation). `global_of(camera, track)` gives the fused identity
/// of a per-camera track; `None` makes that track its own predicted identity.
pub fn cross_camera(
    gt: &[GtBox],
    pred: &[PredBox],
    iou: f32,
    global_of: &dyn Fn(&str, u64) -> Option<u64>,
) -> CrossCameraScores {
    // Resolve each (camera, track) once.
    let mut resolved: HashMap<(&str, u64), PredIdentity<'_>> = HashMap::new();
    for p in pred {
        resolved
            .entry((p.camera.as_str(), p.track))
            .or_insert_with(|| match global_of(&p.camera, p.track) {
                Some(g) => PredIdentity::Fused(g),
                None => PredIdentity::Track(p.camera.as_str(), p.track),
            });
    }
    let identity_of = |p: &PredBox| resolved[&(p.camera.as_str(), p.track)].clone();
    let ids = id_counts(gt, pred, iou, |g| g.id, identity_of);

    // Purity / completeness from the per-frame matching.
    let mut by_pred: BTreeMap<PredIdentity<'_>, BTreeMap<u64, u64>> = BTreeMap::new();
    let mut by_gt: BTreeMap<u64, BTreeMap<PredIdentity<'_>, u64>> = BTreeMap::new();
    let mut matched = 0u64;
    for (g, p, _) in frame_matches(gt, pred, iou) {
        let pid = identity_of(&pred[p]);
        *by_pred
            .entry(pid.clone())
            .or_default()
            .entry(gt[g].id)
            .or_insert(0) += 1;
        *by_gt.entry(gt[g].id).or_default().entry(pid).or_insert(0) += 1;
        matched += 1;
    }
    let pure: u64 = by_pred
        .values()
        .map(|m| m.values().copied().max().unwrap_or(0))
        .sum();
    let complete: u64 = by_gt
        .values()
        .map(|m| m.values().copied().max().unwrap_or(0))
        .sum();
    CrossCameraScores {
        idf1: ids.idf1(),
        idp: ids.idp(),
        idr: ids.idr(),
        purity: ratio(pure, matched),
        completeness: ratio(complete, matched),
        identities_gt: ids.gt_ids,
        identities_pred: ids.pred_ids,
    }
}

/// The `p`-th percentile (`p` in `[0, 100]`, clamped) of `values`, by linear interpolation between
/// closest ranks: with the `n` non-NaN values sorted, rank `h = (n − 1)·p/100` and the result
/// `x[⌊h⌋] + (h − ⌊h⌋)·(x[⌈h⌉] − x[⌊h⌋])` (numpy's default). NaN values are ignored; `None` when no
/// value is left or `p` is NaN.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if p.is_nan() {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let h = (v.len() - 1) as f64 * p.clamp(0.0, 100.0) / 100.0;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    let (a, b) = (v[lo], v[hi.min(v.len() - 1)]);
    let frac = h - lo as f64;
    if a == b {
        Some(a)
    } else if !a.is_finite() || !b.is_finite() {
        // Interpolating with an infinity gives NaN; take the nearer rank instead.
        Some(if frac < 0.5 { a } else { b })
    } else {
        Some(a + frac * (b - a))
    }
}

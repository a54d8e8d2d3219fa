//! Assignment problems used by the scorers: the Hungarian (Kuhn–Munkres) algorithm on a dense
//! cost matrix, a maximum-cardinality / maximum-IoU box matching built on it, and a
//! maximum-weight bipartite matching over sparse weights (split into connected components).

use std::collections::HashMap;

/// Minimum-cost assignment on a dense `rows × cols` cost matrix (row-major).
///
/// Returns, for every row, the column assigned to it (`None` only when `rows > cols` and the row is
/// left out). Every row is assigned when `rows <= cols`, every column when `rows >= cols`; among
/// those assignments the total cost is minimal. O(r² · c) with r = min(rows, cols), c = max
/// (the potentials form of Kuhn–Munkres, Jonker–Volgenant style shortest augmenting paths).
///
/// Non-finite costs are treated as a cost larger than any finite one in the matrix, so the
/// function never loops or panics on them; callers that care use finite costs.
pub(super) fn hungarian(cost: &[f64], rows: usize, cols: usize) -> Vec<Option<usize>> {
    if rows == 0 || cols == 0 || cost.len() < rows * cols {
        return vec![None; rows];
    }
    let finite_max = cost
        .iter()
        .copied()
        .filter(|c| c.is_finite())
        .fold(0.0f64, |a, c| a.max(c.abs()));
    let big = (finite_max + 1.0) * (rows.max(cols) as f64 + 1.0);
    let at = |r: usize, c: usize| {
        let v = cost[r * cols + c];
        if v.is_finite() { v } else { big }
    };
    if rows <= cols {
        solve(rows, cols, at)
    } else {
        // Transpose: assign every column to a row, then invert.
        let by_col = solve(cols, rows, |i, j| at(j, i));
        let mut out = vec![None; rows];
        for (c, r) in by_col.into_iter().enumerate() {
            if let Some(r) = r {
                out[r] = Some(c);
            }
        }
        out
    }
}

/// Core of [`hungarian`] for `n <= m`; `a(i, j)` finite. Returns row → column.
fn solve(n: usize, m: usize, a: impl Fn(usize, usize) -> f64) -> Vec<Option<usize>> {
    // 1-based potentials formulation; p[j] = row (1-based) owning column j, 0 = free.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![f64::INFINITY; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        minv.iter_mut().for_each(|x| *x = f64::INFINITY);
        used.iter_mut().for_each(|x| *x = false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            if j1 == 0 {
                // Cannot happen with finite costs and n <= m; stop rather than loop forever.
                break;
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        // Augment along the alternating path.
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n];
    for j in 1..=m {
        if p[j] != 0 {
            out[p[j] - 1] = Some(j - 1);
        }
    }
    out
}

/// Optimal one-to-one matching between `n` left and `m` right items where `score(i, j)` gives the
/// similarity of an allowed pair (`None`: the pair may not match). The matching first maximises the
/// number of pairs, then the total similarity (similarities are expected in `[0, 1]`, e.g. IoU).
/// Returns `(i, j, similarity)` triples.
pub(super) fn match_pairs(
    n: usize,
    m: usize,
    score: impl Fn(usize, usize) -> Option<f64>,
) -> Vec<(usize, usize, f64)> {
    // Only items with at least one allowed pair take part: keeps the matrices small.
    let mut pairs: Vec<(usize, usize, f64)> = Vec::new();
    for i in 0..n {
        for j in 0..m {
            if let Some(s) = score(i, j) {
                pairs.push((i, j, s.clamp(0.0, 1.0)));
            }
        }
    }
    if pairs.is_empty() {
        return Vec::new();
    }
    let mut rows: Vec<usize> = pairs.iter().map(|p| p.0).collect();
    rows.sort_unstable();
    rows.dedup();
    let mut cols: Vec<usize> = pairs.iter().map(|p| p.1).collect();
    cols.sort_unstable();
    cols.dedup();
    let (r, c) = (rows.len(), cols.len());
    // A forbidden pair costs more than all allowed pairs together can (each costs <= 1), so the
    // minimum-cost assignment uses as few forbidden pairs as possible: maximum cardinality first.
    let forbidden = r.min(c) as f64 + 1.0;
    let mut cost = vec![forbidden; r * c];
    let mut sim = vec![f64::NAN; r * c];
    for &(i, j, s) in &pairs {
        let ri = rows.binary_search(&i).unwrap_or(0);
        let cj = cols.binary_search(&j).unwrap_or(0);
        cost[ri * c + cj] = 1.0 - s;
        sim[ri * c + cj] = s;
    }
    hungarian(&cost, r, c)
        .into_iter()
        .enumerate()
        .filter_map(|(ri, cj)| {
            let cj = cj?;
            let s = sim[ri * c + cj];
            (!s.is_nan()).then(|| (rows[ri], cols[cj], s))
        })
        .collect()
}

/// Maximum-weight one-to-one matching of left nodes to right nodes given sparse positive weights
/// `(left, right) -> weight`. Pairs without a weight have weight 0 and are never reported. The graph
/// is split into connected components and each is solved with [`hungarian`]. Returns the matched
/// pairs with their weights.
pub(super) fn max_weight_matching(
    weights: &HashMap<(usize, usize), u64>,
) -> Vec<(usize, usize, u64)> {
    if weights.is_empty() {
        return Vec::new();
    }
    // Union–find over left nodes (ids as given) and right nodes (offset into a separate space).
    let mut left_ix: HashMap<usize, usize> = HashMap::new();
    let mut right_ix: HashMap<usize, usize> = HashMap::new();
    let mut nodes: Vec<(bool, usize)> = Vec::new(); // (is_left, id)
    let mut edges: Vec<(usize, usize, u64)> = Vec::new(); // node indices
    let mut sorted: Vec<(&(usize, usize), &u64)> = weights.iter().collect();
    sorted.sort_unstable();
    for (&(l, r), &w) in sorted {
        if w == 0 {
            continue;
        }
        let li = *left_ix.entry(l).or_insert_with(|| {
            nodes.push((true, l));
            nodes.len() - 1
        });
        let ri = *right_ix.entry(r).or_insert_with(|| {
            nodes.push((false, r));
            nodes.len() - 1
        });
        edges.push((li, ri, w));
    }
    let mut parent: Vec<usize> = (0..nodes.len()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(a, b, _) in &edges {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra] = rb;
        }
    }
    let mut components: HashMap<usize, Vec<(usize, usize, u64)>> = HashMap::new();
    for &(a, b, w) in &edges {
        let root = find(&mut parent, a);
        components.entry(root).or_default().push((a, b, w));
    }
    let mut roots: Vec<usize> = components.keys().copied().collect();
    roots.sort_unstable();
    let mut out = Vec::new();
    for root in roots {
        let comp = &components[&root];
        let mut ls: Vec<usize> = comp.iter().map(|e| e.0).collect();
        ls.sort_unstable();
        ls.dedup();
        let mut rs: Vec<usize> = comp.iter().map(|e| e.1).collect();
        rs.sort_unstable();
        rs.dedup();
        let (r, c) = (ls.len(), rs.len());
        let max_w = comp.iter().map(|e| e.2).max().unwrap_or(0) as f64;
        // Cost max_w - w: a complete assignment of min(r, c) pairs minimising it maximises Σ w.
        let mut cost = vec![max_w; r * c];
        let mut wmat = vec![0u64; r * c];
        for &(a, b, w) in comp {
            let i = ls.binary_search(&a).unwrap_or(0);
            let j = rs.binary_search(&b).unwrap_or(0);
            cost[i * c + j] = max_w - w as f64;
            wmat[i * c + j] = w;
        }
        for (i, j) in hungarian(&cost, r, c).into_iter().enumerate() {
            let Some(j) = j else { continue };
            let w = wmat[i * c + j];
            if w > 0 {
                out.push((nodes[ls[i]].1, nodes[rs[j]].1, w));
            }
        }
    }
    out
}

//! Small self-contained SVG charts for the benchmark report: histogram, horizontal bars, line.
//!
//! Each function returns a complete `<svg>` document (no scripts, no external resources) with a
//! title, axes, ticks and labels; all text is XML-escaped. Non-finite values are skipped (bars show
//! them as `n/a`); empty input gives axes and a "no data" note. Nothing here panics.

use std::fmt::Write as _;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const MARGIN_TOP: f64 = 44.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_BOTTOM: f64 = 56.0;
const MARGIN_LEFT: f64 = 72.0;
const BAR_COLOR: &str = "#4e79a7";
const LINE_COLOR: &str = "#e15759";

/// Escapes text for XML content and attribute values; control characters XML forbids become spaces.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Shortens `s` to at most `max` characters (with an ellipsis).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A value for display: up to 3 decimals, trailing zeros trimmed; scientific when very large/small.
fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if !(1e-3..1e6).contains(&a) {
        format!("{v:.2e}")
    } else {
        trim(format!("{v:.3}"))
    }
}

/// A tick label with as many decimals as the tick step needs.
fn fmt_tick(v: f64, step: f64) -> String {
    let a = v.abs().max(step.abs());
    if !(1e-3..1e6).contains(&a) && v != 0.0 {
        return format!("{v:.1e}");
    }
    let decimals = if step > 0.0 && step.is_finite() {
        (-step.log10().floor()).clamp(0.0, 6.0) as usize
    } else {
        3
    };
    let v = if v.abs() < step.abs() * 1e-9 { 0.0 } else { v };
    trim(format!("{v:.decimals$}"))
}

fn trim(s: String) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.');
        if t.is_empty() || t == "-" || t == "-0" {
            "0".to_string()
        } else {
            t.to_string()
        }
    } else {
        s
    }
}

/// "Nice" ticks (steps of 1, 2 or 5 × 10^k) covering `[lo, hi]`, about `target` of them; returns
/// the ticks and the step.
fn nice_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    if !lo.is_finite() || !hi.is_finite() || hi <= lo {
        return (if lo.is_finite() { vec![lo] } else { vec![] }, 1.0);
    }
    let raw = (hi / 2.0 - lo / 2.0) * 2.0 / target.max(1) as f64;
    if !raw.is_finite() || raw <= 0.0 {
        return (vec![lo, hi], hi - lo);
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let step = mag
        * if norm <= 1.0 {
            1.0
        } else if norm <= 2.0 {
            2.0
        } else if norm <= 5.0 {
            5.0
        } else {
            10.0
        };
    let start = (lo / step).ceil() * step;
    let mut ticks = Vec::new();
    for k in 0..=100 {
        let t = start + k as f64 * step;
        if t > hi + step * 1e-9 {
            break;
        }
        ticks.push(t);
    }
    (ticks, step)
}

/// A data range made usable for an axis: finite, non-empty.
fn usable_range(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() || lo > hi {
        return (0.0, 1.0);
    }
    if hi == lo {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    (lo, hi)
}

/// `[lo, hi]` widened to the enclosing multiples of its nice tick step, so data never sits past
/// the last tick.
fn nice_range(lo: f64, hi: f64, target: usize) -> (f64, f64) {
    let (lo, hi) = usable_range(lo, hi);
    let (_, step) = nice_ticks(lo, hi, target);
    let (a, b) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    if a.is_finite() && b.is_finite() && a < b {
        (a, b)
    } else {
        (lo, hi)
    }
}

/// Plot area and the mapping of data coordinates into it.
struct Area {
    left: f64,
    top: f64,
    width: f64,
    height: f64,
    x: (f64, f64),
    y: (f64, f64),
}

impl Area {
    fn px(&self, x: f64) -> f64 {
        let t = (x / 2.0 - self.x.0 / 2.0) / (self.x.1 / 2.0 - self.x.0 / 2.0);
        self.left + t.clamp(0.0, 1.0) * self.width
    }
    fn py(&self, y: f64) -> f64 {
        let t = (y / 2.0 - self.y.0 / 2.0) / (self.y.1 / 2.0 - self.y.0 / 2.0);
        self.top + self.height - t.clamp(0.0, 1.0) * self.height
    }
    fn bottom(&self) -> f64 {
        self.top + self.height
    }
    fn right(&self) -> f64 {
        self.left + self.width
    }
}

fn open(width: f64, height: f64, title: &str) -> String {
    let t = escape(title);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <title>{t}</title>\n\
         <rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n\
         <text x=\"{cx}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{t}</text>\n",
        cx = width / 2.0
    );
    s
}

fn close(mut s: String) -> String {
    s.push_str("</svg>\n");
    s
}

/// Axes lines, ticks with labels and grid lines, axis labels.
fn axes(s: &mut String, a: &Area, x_ticks: bool, x_label: &str, y_ticks: bool, y_label: &str) {
    let _ = writeln!(
        s,
        "<g stroke=\"black\" stroke-width=\"1\"><line x1=\"{l}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>\
         <line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\"/></g>",
        l = a.left,
        r = a.right(),
        t = a.top,
        b = a.bottom()
    );
    if x_ticks {
        let (ticks, step) = nice_ticks(a.x.0, a.x.1, 6);
        for t in ticks {
            let x = a.px(t);
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" y1=\"{b}\" x2=\"{x:.1}\" y2=\"{b5}\" stroke=\"black\"/>\
                 <text x=\"{x:.1}\" y=\"{b18}\" text-anchor=\"middle\">{}</text>",
                escape(&fmt_tick(t, step)),
                b = a.bottom(),
                b5 = a.bottom() + 5.0,
                b18 = a.bottom() + 18.0
            );
        }
    }
    if y_ticks {
        let (ticks, step) = nice_ticks(a.y.0, a.y.1, 5);
        for t in ticks {
            let y = a.py(t);
            let _ = writeln!(
                s,
                "<line x1=\"{l5}\" y1=\"{y:.1}\" x2=\"{l}\" y2=\"{y:.1}\" stroke=\"black\"/>\
                 <line x1=\"{l}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>\
                 <text x=\"{l8}\" y=\"{y4:.1}\" text-anchor=\"end\">{}</text>",
                escape(&fmt_tick(t, step)),
                l = a.left,
                l5 = a.left - 5.0,
                l8 = a.left - 8.0,
                r = a.right(),
                y4 = y + 4.0
            );
        }
    }
    if !x_label.is_empty() {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            a.left + a.width / 2.0,
            a.bottom() + 40.0,
            escape(x_label)
        );
    }
    if !y_label.is_empty() {
        let (x, y) = (16.0, a.top + a.height / 2.0);
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"{y:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 {x} {y:.1})\">{}</text>",
            escape(y_label)
        );
    }
}

fn no_data(s: &mut String, a: &Area) {
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#888888\">no data</text>",
        a.left + a.width / 2.0,
        a.top + a.height / 2.0
    );
}

/// Histogram of the finite `values` in `bins` equal-width bins (at least 1, at most 10 000) spanning
/// their range; y axis is the count. The number of values plotted is shown in the top-right corner.
pub fn histogram(values: &[f64], bins: usize, title: &str, x_label: &str) -> String {
    let vals: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let bins = bins.clamp(1, 10_000);
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = usable_range(lo, hi);
    let mut counts = vec![0u64; bins];
    for &v in &vals {
        let t = (v / 2.0 - lo / 2.0) / (hi / 2.0 - lo / 2.0);
        let i = ((t * bins as f64).floor().max(0.0) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let max_count = counts.iter().copied().max().unwrap_or(0).max(1);
    let a = Area {
        left: MARGIN_LEFT,
        top: MARGIN_TOP,
        width: WIDTH - MARGIN_LEFT - MARGIN_RIGHT,
        height: HEIGHT - MARGIN_TOP - MARGIN_BOTTOM,
        x: (lo, hi),
        y: nice_range(0.0, max_count as f64, 5),
    };
    let mut s = open(WIDTH, HEIGHT, title);
    axes(&mut s, &a, true, x_label, true, "count");
    if vals.is_empty() {
        no_data(&mut s, &a);
        return close(s);
    }
    let bw = a.width / bins as f64;
    let _ = writeln!(
        s,
        "<g fill=\"{BAR_COLOR}\" stroke=\"white\" stroke-width=\"0.5\">"
    );
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let y = a.py(c as f64);
        let _ = writeln!(
            s,
            "<rect x=\"{:.2}\" y=\"{y:.2}\" width=\"{bw:.2}\" height=\"{:.2}\"><title>{c}</title></rect>",
            a.left + i as f64 * bw,
            a.bottom() - y
        );
    }
    s.push_str("</g>\n");
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555555\">n = {}</text>",
        a.right(),
        a.top - 6.0,
        vals.len()
    );
    close(s)
}

/// Horizontal bars, one per item in the given order, labelled with the item name on the left and
/// its value and `unit` at the bar's end. The value axis spans 0 and every finite value; a
/// non-finite value draws no bar and reads `n/a`.
pub fn bars(items: &[(String, f64)], title: &str, unit: &str) -> String {
    const ROW: f64 = 24.0;
    let labels: Vec<String> = items.iter().map(|(l, _)| truncate(l, 40)).collect();
    let label_chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let left = (12.0 + 7.0 * label_chars as f64).clamp(MARGIN_LEFT, 300.0);
    let rows = items.len().max(1) as f64;
    let height = MARGIN_TOP + rows * ROW + MARGIN_BOTTOM;
    let finite = items.iter().map(|i| i.1).filter(|v| v.is_finite());
    let lo = finite.clone().fold(0.0f64, f64::min);
    let hi = finite.fold(0.0f64, f64::max);
    let (lo, hi) = nice_range(lo, hi, 6);
    // Leave room on the right for the value labels.
    let a = Area {
        left,
        top: MARGIN_TOP,
        width: (WIDTH - left - MARGIN_RIGHT - 90.0).max(100.0),
        height: rows * ROW,
        x: (lo, hi),
        y: (0.0, rows),
    };
    let width = a.right() + 90.0 + MARGIN_RIGHT;
    let mut s = open(width, height, title);
    let x_label = if unit.is_empty() {
        String::new()
    } else {
        format!("({unit})")
    };
    axes(&mut s, &a, true, &x_label, false, "");
    if items.is_empty() {
        no_data(&mut s, &a);
        return close(s);
    }
    let zero = a.px(0.0);
    for (k, ((_, v), label)) in items.iter().zip(&labels).enumerate() {
        let y = a.top + k as f64 * ROW;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            a.left - 6.0,
            y + ROW / 2.0 + 4.0,
            escape(label)
        );
        let value_text = if v.is_finite() {
            escape(format!("{} {unit}", fmt_num(*v)).trim_end())
        } else {
            "n/a".to_string()
        };
        let mut end = zero;
        if v.is_finite() {
            let xv = a.px(*v);
            let (x0, x1) = if xv < zero { (xv, zero) } else { (zero, xv) };
            end = x1;
            let _ = writeln!(
                s,
                "<rect x=\"{x0:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{BAR_COLOR}\"/>",
                y + 3.0,
                (x1 - x0).max(0.5),
                ROW - 6.0
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\">{value_text}</text>",
            end + 4.0,
            y + ROW / 2.0 + 4.0
        );
    }
    close(s)
}

/// A line through the finite `points`, sorted by x, with a marker at each point.
pub fn line(points: &[(f64, f64)], title: &str, x_label: &str, y_label: &str) -> String {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fold = |f: fn(&(f64, f64)) -> f64| {
        let lo = pts.iter().map(f).fold(f64::INFINITY, f64::min);
        let hi = pts.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
        (lo, hi)
    };
    let (x0, x1) = fold(|p| p.0);
    let (y0, y1) = fold(|p| p.1);
    let (x, y) = (nice_range(x0, x1, 6), nice_range(y0, y1, 5));
    let a = Area {
        left: MARGIN_LEFT,
        top: MARGIN_TOP,
        width: WIDTH - MARGIN_LEFT - MARGIN_RIGHT,
        height: HEIGHT - MARGIN_TOP - MARGIN_BOTTOM,
        x,
        y,
    };
    let mut s = open(WIDTH, HEIGHT, title);
    axes(&mut s, &a, true, x_label, true, y_label);
    if pts.is_empty() {
        no_data(&mut s, &a);
        return close(s);
    }
    let path: Vec<String> = pts
        .iter()
        .map(|&(px, py)| format!("{:.2},{:.2}", a.px(px), a.py(py)))
        .collect();
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{LINE_COLOR}\" stroke-width=\"2\"/>",
        path.join(" ")
    );
    let _ = writeln!(s, "<g fill=\"{LINE_COLOR}\">");
    for &(px, py) in &pts {
        let _ = writeln!(
            s,
            "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"3\"><title>{}, {}</title></circle>",
            a.px(px),
            a.py(py),
            escape(&fmt_num(px)),
            escape(&fmt_num(py))
        );
    }
    s.push_str("</g>\n");
    close(s)
}

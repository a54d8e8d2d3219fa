//! Plate reading (clp_det + PP-OCRv4 rec + plate grammar) on the real plates of
//! testdata/ and on rendered plates: blue and green new-energy (small-car and large-vehicle
//! forms), 16 provinces, widths 60–300 px in 1920×1080 scenes over real photos, rotated and
//! seen at an angle, blurred, noised and JPEG-compressed. Prints accuracy by width; the
//! thresholds are below. `rendered_plates_survey` (ignored) measures more widely.

use std::collections::BTreeMap;

use edge_agent::config::PlateReaderConfig;
use edge_agent::infer::{self, BgrImage, PlateReader};
use image::RgbImage;
use sharpeyes_e2e::plate::{
    PlateStyle, Rng, add_noise, blur, jpeg_round_trip, load_font, paste_random_plate,
    random_plate_any_form,
};
use sharpeyes_e2e::{models_config, testdata_dir};

/// Plate widths in a 1920×1080 frame, px.
const WIDTHS: [u32; 6] = [60, 80, 110, 160, 220, 300];
/// Scenes per (width, style).
const PER_CELL: usize = 4;
/// Exact readings required over the whole frame for plates of at least 110 px (measured
/// 0.97: 31 of 32).
const MIN_EXACT_FRAME_FROM_110: f64 = 0.90;
/// Exact readings required inside a vehicle's region (enlarged) from 80 px (measured 0.85:
/// 34 of 40).
const MIN_EXACT_VEHICLE_FROM_80: f64 = 0.80;
/// At 60 px (≈ 19 px tall, province characters 5 px wide) plates are reported, not required:
/// see the printed table.
/// Rendered plates read as a different, grammatical plate (a wrong plate is worse than none).
const MAX_WRONG: f64 = 0.10;

/// Where the reader looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    /// The whole frame at its own resolution.
    Frame,
    /// A vehicle-sized region around the plate (enlarged when small).
    Vehicle,
}

fn reader() -> PlateReader {
    infer::plate_reader(&models_config(), &PlateReaderConfig::default())
        .expect("plate models (run scripts/setup.sh)")
}

#[test]
fn real_plates_in_testdata_are_read_exactly() {
    let dir = testdata_dir();
    let ann: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("annotations.json")).unwrap()).unwrap();
    let mut reader = reader();
    let (mut total, mut exact) = (0, 0);
    for im in ann["images"].as_array().unwrap() {
        let Some(plates) = im["plates"].as_array().filter(|p| !p.is_empty()) else {
            continue;
        };
        let file = im["file"].as_str().unwrap();
        let img = BgrImage::open(&dir.join(file)).unwrap();
        let read = reader.read(&img, &[], true).unwrap();
        for p in plates {
            total += 1;
            let want = p["text"].as_str().unwrap();
            let got: Vec<&str> = read.iter().map(|r| r.text.as_str()).collect();
            println!("{file}: want {want}, read {got:?}");
            exact += got.contains(&want) as usize;
        }
    }
    assert!(total >= 3, "testdata has {total} plates");
    assert_eq!(exact, total, "real plates read exactly");
}

#[test]
fn rendered_plates_by_width() {
    let font = load_font().unwrap();
    let backgrounds: Vec<RgbImage> = [
        "street/bus.jpg",
        "faces/2008_002079.jpg",
        "faces/2007_007763.jpg",
    ]
    .iter()
    .map(|f| image::open(testdata_dir().join(f)).unwrap().to_rgb8())
    .map(|i| image::imageops::resize(&i, 1920, 1080, image::imageops::FilterType::Triangle))
    .collect();
    let provinces: Vec<char> = "川京粤沪苏浙鲁皖藏新渝豫闽湘鄂赣".chars().collect();
    let mut rng = Rng::new(36);
    let mut reader = reader();
    // width → (plates, exact, wrong, characters right, characters)
    let mut by_width: BTreeMap<(Mode, u32), [usize; 5]> = BTreeMap::new();
    for &width in &WIDTHS {
        for style in [PlateStyle::Blue, PlateStyle::Green] {
            for k in 0..PER_CELL {
                let text = random_plate_any_form(&mut rng, &provinces, style);
                let mut scene = backgrounds[k % backgrounds.len()].clone();
                let (cx, cy) = paste_random_plate(
                    &mut scene,
                    &font,
                    &mut rng,
                    &text,
                    style,
                    width,
                    6.0,
                    (0.9, 1.1),
                )
                .unwrap();
                // Sharp or blurred, with sensor noise of 0, 4 or 8 grey levels.
                let sigma = [0.0, 4.0, 8.0][rng.below(3)];
                let scene = add_noise(&blur(&scene, (k % 2) as u32), sigma, &mut rng);
                let scene = jpeg_round_trip(&scene, 50 + rng.below(36) as u8).unwrap();
                let img = BgrImage::from_rgb(&scene);
                // The whole frame, then the region a vehicle box would give (the plate sits
                // low in a vehicle about 2.2 plate widths wide).
                let w = width as f32;
                let vehicle = [cx - 1.1 * w, cy - 1.3 * w, cx + 1.1 * w, cy + 0.4 * w];
                for (mode, regions) in [(Mode::Frame, vec![]), (Mode::Vehicle, vec![vehicle])] {
                    let read = reader.read(&img, &regions, false).unwrap();
                    // The reading whose box holds the plate's centre.
                    let hit = read.iter().find(|r| {
                        r.bbox[0] <= cx && cx <= r.bbox[2] && r.bbox[1] <= cy && cy <= r.bbox[3]
                    });
                    let cell = by_width.entry((mode, width)).or_default();
                    cell[0] += 1;
                    cell[4] += text.chars().count();
                    if let Some(r) = hit {
                        if r.text == text {
                            cell[1] += 1;
                        } else {
                            cell[2] += 1;
                            println!(
                                "{mode:?} {width:>3} px {style:?}: {text} read as {}",
                                r.text
                            );
                        }
                        if r.text.chars().count() == text.chars().count() {
                            cell[3] += r
                                .text
                                .chars()
                                .zip(text.chars())
                                .filter(|(a, b)| a == b)
                                .count();
                        }
                    } else {
                        println!("{mode:?} {width:>3} px {style:?}: {text} not read");
                    }
                }
            }
        }
    }
    println!("\nwhere    width  plates  exact  wrong  char accuracy");
    for ((mode, w), [n, e, bad, cr, ct]) in &by_width {
        println!(
            "{:<8} {w:>4}px {n:>6} {:>5.0}% {:>5.0}% {:>8.1}%",
            format!("{mode:?}"),
            100.0 * *e as f64 / *n as f64,
            100.0 * *bad as f64 / *n as f64,
            100.0 * *cr as f64 / *ct as f64
        );
    }
    let rate = |mode: Mode, widths: &dyn Fn(u32) -> bool, k: usize| {
        let (mut hit, mut all) = (0, 0);
        for ((m, w), cell) in &by_width {
            if *m == mode && widths(*w) {
                hit += cell[k];
                all += cell[0];
            }
        }
        hit as f64 / all as f64
    };
    let frame_110 = rate(Mode::Frame, &|w| w >= 110, 1);
    let vehicle_80 = rate(Mode::Vehicle, &|w| w >= 80, 1);
    let vehicle_60 = rate(Mode::Vehicle, &|w| w == 60, 1);
    let wrong = rate(Mode::Frame, &|_| true, 2).max(rate(Mode::Vehicle, &|_| true, 2));
    println!(
        "exact: whole frame from 110 px {:.0}%; vehicle region from 80 px {:.0}%, at 60 px {:.0}%; wrong at most {:.0}%",
        100.0 * frame_110,
        100.0 * vehicle_80,
        100.0 * vehicle_60,
        100.0 * wrong
    );
    assert!(
        frame_110 >= MIN_EXACT_FRAME_FROM_110,
        "whole frame from 110 px: {frame_110:.2}"
    );
    assert!(
        vehicle_80 >= MIN_EXACT_VEHICLE_FROM_80,
        "vehicle region from 80 px: {vehicle_80:.2}"
    );
    assert!(
        wrong <= MAX_WRONG,
        "wrong readings {wrong:.2} > {MAX_WRONG}"
    );
}

/// One survey scene's outcome in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Exact,
    /// Read as another grammatical plate.
    Wrong,
    /// Located, but the raw reading is not a plate (or too unsure).
    Rejected,
    /// No plate located at the plate's centre.
    NotLocated,
}

/// A wider, slower survey than `rendered_plates_by_width` for measuring (not run by default):
/// more scenes per cell, other backgrounds, every new-energy form, sensor noise, and for each
/// miss whether the plate was not located (with the best localiser score at its centre when
/// the threshold is lowered to 0.05) or located and misread (raw recogniser output).
/// `PLATES_SEED` (default 2024) and `PLATES_PER_CELL` (default 10) choose the scenes.
///
/// `cargo test --release -p sharpeyes-e2e --test plates -- --ignored --nocapture survey`
#[test]
#[ignore = "measurement: minutes of CPU"]
fn rendered_plates_survey() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let seed = env("PLATES_SEED", 2024);
    let per_cell = env("PLATES_PER_CELL", 10) as usize;
    let font = load_font().unwrap();
    let backgrounds: Vec<RgbImage> = [
        "faces/2008_001009.jpg",
        "faces/2008_001322.jpg",
        "street/astronaut.png",
        "negatives/coffee.png",
    ]
    .iter()
    .map(|f| image::open(testdata_dir().join(f)).unwrap().to_rgb8())
    .map(|i| image::imageops::resize(&i, 1920, 1080, image::imageops::FilterType::Triangle))
    .collect();
    let provinces: Vec<char> = sharpeyes_wire::plate::PROVINCES.chars().collect();
    let mut rng = Rng::new(seed);
    let mut reader = reader();
    let mut probe = infer::plate_reader(
        &models_config(),
        &PlateReaderConfig {
            locator_score: 0.05,
            ..PlateReaderConfig::default()
        },
    )
    .unwrap();
    let widths = [60u32, 80, 100, 130, 160, 220, 300];
    let mut cells: BTreeMap<(Mode, &str, u32), BTreeMap<Outcome, usize>> = BTreeMap::new();
    // Readings elsewhere than the plate (the backgrounds hold no plate), per mode.
    let mut false_readings: BTreeMap<Mode, Vec<String>> = BTreeMap::new();
    let t0 = std::time::Instant::now();
    for &width in &widths {
        for style in [PlateStyle::Blue, PlateStyle::Green] {
            for k in 0..per_cell {
                let text = random_plate_any_form(&mut rng, &provinces, style);
                let mut scene = backgrounds[rng.below(backgrounds.len())].clone();
                let (cx, cy) = paste_random_plate(
                    &mut scene,
                    &font,
                    &mut rng,
                    &text,
                    style,
                    width,
                    8.0,
                    (0.85, 1.15),
                )
                .unwrap();
                let sigma = [0.0, 4.0, 8.0, 12.0][k % 4];
                let scene = add_noise(&blur(&scene, rng.below(3) as u32), sigma, &mut rng);
                let scene = jpeg_round_trip(&scene, 40 + rng.below(51) as u8).unwrap();
                let img = BgrImage::from_rgb(&scene);
                let w = width as f32;
                let vehicle = [cx - 1.1 * w, cy - 1.3 * w, cx + 1.1 * w, cy + 0.4 * w];
                let holds = |b: &[f32; 4]| b[0] <= cx && cx <= b[2] && b[1] <= cy && cy <= b[3];
                let style_name = if style == PlateStyle::Blue {
                    "blue"
                } else {
                    "green"
                };
                for (mode, regions) in [(Mode::Frame, vec![]), (Mode::Vehicle, vec![vehicle])] {
                    let read = reader.read(&img, &regions, false).unwrap();
                    false_readings.entry(mode).or_default().extend(
                        read.iter()
                            .filter(|r| !holds(&r.bbox))
                            .map(|r| format!("{} ({:.2})", r.text, r.confidence)),
                    );
                    let outcome = match read.iter().find(|r| holds(&r.bbox)) {
                        Some(r) if r.text == text => Outcome::Exact,
                        Some(r) => {
                            println!(
                                "{mode:?} {width:>3} px {style_name} noise {sigma}: {text} read as {} (conf {:.2})",
                                r.text, r.confidence
                            );
                            Outcome::Wrong
                        }
                        None => {
                            let located = reader.locate(&img, &regions, false).unwrap();
                            let here: Vec<_> =
                                located.into_iter().filter(|p| holds(&p.bbox)).collect();
                            if here.is_empty() {
                                let best = probe
                                    .locate(&img, &regions, false)
                                    .unwrap()
                                    .into_iter()
                                    .filter(|p| holds(&p.bbox))
                                    .map(|p| p.score)
                                    .fold(0.0f32, f32::max);
                                println!(
                                    "{mode:?} {width:>3} px {style_name} noise {sigma}: {text} not located (best score {best:.2})"
                                );
                                Outcome::NotLocated
                            } else {
                                let raw = reader.recognise(&img, here).unwrap();
                                let texts: Vec<String> = raw
                                    .iter()
                                    .map(|(p, r)| {
                                        let lo = r.chars.iter().map(|c| c.1).fold(1.0, f32::min);
                                        format!("{} (min {lo:.2}, loc {:.2})", r.text(), p.score)
                                    })
                                    .collect();
                                println!(
                                    "{mode:?} {width:>3} px {style_name} noise {sigma}: {text} located, raw {texts:?}"
                                );
                                Outcome::Rejected
                            }
                        }
                    };
                    *cells
                        .entry((mode, style_name, width))
                        .or_default()
                        .entry(outcome)
                        .or_default() += 1;
                }
            }
        }
    }
    println!(
        "\nseed {seed}, {per_cell} scenes per cell, {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    println!("where    style  width  plates  exact  wrong  rejected  not located");
    for ((mode, style, w), o) in &cells {
        let n: usize = o.values().sum();
        let g = |k| o.get(&k).copied().unwrap_or(0);
        println!(
            "{:<8} {style:<6} {w:>4}px {n:>6} {:>6} {:>6} {:>9} {:>12}",
            format!("{mode:?}"),
            g(Outcome::Exact),
            g(Outcome::Wrong),
            g(Outcome::Rejected),
            g(Outcome::NotLocated)
        );
    }
    for (mode, f) in &false_readings {
        println!("{mode:?}: {} readings away from the plate {f:?}", f.len());
    }
    for mode in [Mode::Frame, Mode::Vehicle] {
        for style in ["blue", "green", "both"] {
            let (mut e, mut n) = (0, 0);
            for ((m, s, w), o) in &cells {
                if *m == mode && *w >= 80 && (style == "both" || *s == style) {
                    e += o.get(&Outcome::Exact).copied().unwrap_or(0);
                    n += o.values().sum::<usize>();
                }
            }
            println!(
                "{mode:?} {style} >= 80 px: {e} of {n} exact ({:.3})",
                e as f64 / n as f64
            );
        }
    }
}

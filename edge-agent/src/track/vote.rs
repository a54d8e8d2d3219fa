//! Plate voting over a track's frames: a distant or blurred frame misreads a character now
//! and then; the plate a track reports is the per-position vote of all its readings.
//!
//! Readings are grouped by length (7 ordinary, 8 new-energy); the length with the most
//! weight wins, and each position takes the character with the most weight among that
//! length's readings, a reading's character weighing its confidence. The result's confidence
//! is the mean over positions of the winner's share of the weight: 1.0 when every reading
//! agreed, lower when frames disagreed.

use std::collections::BTreeMap;

/// The readings of one track so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlateVote {
    /// Length → (per position: character → summed confidence, summed reading weight).
    by_len: BTreeMap<usize, (Vec<BTreeMap<char, f32>>, f32)>,
    readings: u32,
}

impl PlateVote {
    /// Adds one reading (its characters and their confidences, same length).
    pub fn add(&mut self, text: &str, char_confidences: &[f32]) {
        let chars: Vec<char> = text.chars().collect();
        if chars.is_empty() || chars.len() != char_confidences.len() {
            return;
        }
        let (positions, weight) = self
            .by_len
            .entry(chars.len())
            .or_insert_with(|| (vec![BTreeMap::new(); chars.len()], 0.0));
        for ((c, &p), pos) in chars.iter().zip(char_confidences).zip(positions.iter_mut()) {
            *pos.entry(*c).or_insert(0.0) += p.clamp(0.0, 1.0);
        }
        *weight += char_confidences.iter().sum::<f32>() / chars.len() as f32;
        self.readings += 1;
    }

    /// Number of readings added.
    pub fn readings(&self) -> u32 {
        self.readings
    }

    /// The voted plate and its confidence, once there is a reading.
    pub fn best(&self) -> Option<(String, f32)> {
        let (_, (positions, _)) = self
            .by_len
            .iter()
            .max_by(|a, b| a.1.1.total_cmp(&b.1.1).then(b.0.cmp(a.0)))?;
        let mut text = String::new();
        let mut share = 0.0;
        for pos in positions {
            let total: f32 = pos.values().sum();
            // Ties go to the smaller character, so the result does not depend on order.
            let (c, w) = pos
                .iter()
                .max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(a.0)))?;
            text.push(*c);
            share += if total > 0.0 { w / total } else { 0.0 };
        }
        Some((text, share / positions.len() as f32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_fixes_a_misread_character() {
        let mut v = PlateVote::default();
        v.add("川A12345", &[0.9; 7]);
        v.add("川A12845", &[0.6; 7]);
        v.add("川A12345", &[0.8; 7]);
        let (text, conf) = v.best().unwrap();
        assert_eq!(text, "川A12345");
        assert!(conf > 0.9 && conf < 1.0, "{conf}");
        assert_eq!(v.readings(), 3);
    }

    #[test]
    fn agreeing_readings_are_fully_confident_and_order_does_not_matter() {
        let mut a = PlateVote::default();
        let mut b = PlateVote::default();
        let r = [("粤BD12345", [0.9f32; 8]), ("粤BD12845", [0.9f32; 8])];
        a.add(r[0].0, &r[0].1);
        a.add(r[1].0, &r[1].1);
        b.add(r[1].0, &r[1].1);
        b.add(r[0].0, &r[0].1);
        assert_eq!(a.best(), b.best());
        let mut c = PlateVote::default();
        c.add("京N8M2Q7", &[0.5; 7]);
        c.add("京N8M2Q7", &[0.7; 7]);
        assert_eq!(c.best(), Some(("京N8M2Q7".into(), 1.0)));
    }

    #[test]
    fn the_heavier_length_wins_and_bad_input_is_ignored() {
        let mut v = PlateVote::default();
        assert_eq!(v.best(), None);
        v.add("沪AD12345", &[0.9; 8]);
        v.add("沪AD12345", &[0.9; 8]);
        v.add("沪A12345", &[0.5; 7]);
        v.add("沪A1", &[0.9]);
        v.add("", &[]);
        assert_eq!(v.best().unwrap().0, "沪AD12345");
        assert_eq!(v.readings(), 3);
    }
}

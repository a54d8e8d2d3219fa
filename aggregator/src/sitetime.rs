//! The site's time zone (`api.time_zone`, an IANA name such as `Asia/Shanghai`): what the
//! web page shows times in (its configuration carries the name and the current offset) and
//! what the CSV exports write local times in, with their offset
//! (`2026-12-07T22:15:03+08:00`).
//!
//! Names are looked up in the system's time zone database (`/usr/share/zoneinfo`, or
//! `$TZDIR`) and, when it is missing there (a server without the `tzdata` package), in the
//! copy of the IANA database built into the binary (`jiff`'s bundled one), so a valid name
//! always resolves.

use jiff::Timestamp;
use jiff::tz::{TimeZone, TimeZoneDatabase};
use thiserror::Error;

/// The default site zone: Beijing time.
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";

/// Why a zone name cannot be used.
#[derive(Debug, Error)]
pub enum ZoneError {
    /// No such IANA time zone.
    #[error("{name:?} is not an IANA time zone name (e.g. Asia/Shanghai, Asia/Urumqi, UTC): {why}")]
    Unknown {
        /// The name given.
        name: String,
        /// What the database said.
        why: String,
    },
}

/// A site's time zone, resolved.
#[derive(Debug, Clone)]
pub struct SiteZone {
    name: String,
    tz: TimeZone,
}

/// The bundled database (built once).
fn bundled() -> &'static TimeZoneDatabase {
    static DB: std::sync::OnceLock<TimeZoneDatabase> = std::sync::OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled)
}

impl SiteZone {
    /// The zone `name` names: from the system's database, else the bundled one.
    pub fn resolve(name: &str) -> Result<Self, ZoneError> {
        if name.trim() != name || name.is_empty() {
            return Err(ZoneError::Unknown {
                name: name.to_string(),
                why: "empty or surrounded by spaces".into(),
            });
        }
        let tz = match jiff::tz::db().get(name) {
            Ok(tz) => tz,
            Err(_) => Self::resolve_bundled_tz(name)?,
        };
        Ok(Self {
            name: name.to_string(),
            tz,
        })
    }

    /// The zone `name` names in the bundled database only (what a machine without tzdata
    /// sees).
    pub fn resolve_bundled(name: &str) -> Result<Self, ZoneError> {
        Ok(Self {
            name: name.to_string(),
            tz: Self::resolve_bundled_tz(name)?,
        })
    }

    fn resolve_bundled_tz(name: &str) -> Result<TimeZone, ZoneError> {
        bundled().get(name).map_err(|e| ZoneError::Unknown {
            name: name.to_string(),
            why: e.to_string(),
        })
    }

    /// Its name, as configured.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its offset from UTC at `ms` (UTC milliseconds), minutes (480 for Beijing time).
    pub fn offset_minutes(&self, ms: i64) -> i32 {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
        self.tz.to_offset(ts).seconds() / 60
    }

    /// `ms` (UTC milliseconds) as local RFC 3339 time with its offset, to the second:
    /// `2026-12-07T22:15:03+08:00`.
    pub fn format(&self, ms: i64) -> String {
        let ts = Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH);
        let z = ts.to_zoned(self.tz.clone());
        jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S%:z", &z)
            .unwrap_or_else(|_| crate::query::utc(ms))
    }
}

impl Default for SiteZone {
    /// Beijing time (the bundled database always has it).
    fn default() -> Self {
        Self::resolve(DEFAULT_ZONE).unwrap_or_else(|_| Self {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_without_the_system_database() {
        let z = SiteZone::resolve_bundled("Asia/Shanghai").unwrap();
        // 2026-12-07T14:15:03.456Z
        let ms = 1_796_652_903_456;
        assert_eq!(z.format(ms), "2026-12-07T22:15:03+08:00");
        assert_eq!(z.offset_minutes(ms), 480);
        assert_eq!(SiteZone::default().name(), "Asia/Shanghai");
        assert!(SiteZone::resolve_bundled("Asia/Pyongyang-ish").is_err());
    }

    #[test]
    fn names_are_checked_and_offsets_follow_summer_time() {
        for bad in ["", " Asia/Shanghai", "Beijing", "UTC+8", "Asia/Nowhere"] {
            let e = SiteZone::resolve(bad).unwrap_err().to_string();
            assert!(e.contains("IANA"), "{bad:?}: {e}");
        }
        let utc = SiteZone::resolve("UTC").unwrap();
        assert_eq!(utc.format(0), "1970-01-01T00:00:00+00:00");
        let ny = SiteZone::resolve("America/New_York").unwrap();
        // January: EST (-5 h); July: EDT (-4 h).
        assert_eq!(ny.offset_minutes(1_767_225_600_000), -300);
        assert_eq!(ny.offset_minutes(1_782_864_000_000), -240);
        assert_eq!(ny.format(1_782_864_000_000), "2026-06-30T20:00:00-04:00");
    }
}

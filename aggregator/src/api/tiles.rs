//! The offline basemap: map tiles served from one MBTiles file (`api.tiles_file`) at
//! `GET /api/v1/tiles/{z}/{x}/{y}`, so the web page has a map where no tile server can be
//! reached.
//!
//! An MBTiles file (<https://github.com/mapbox/mbtiles-spec>) is SQLite with
//! `tiles(zoom_level, tile_column, tile_row, tile_data)` (a table or a view) and
//! `metadata(name, value)`; its rows count from the south (TMS), so the URL's XYZ `y` is
//! flipped: `tile_row = 2^z - 1 - y`. The file is opened read-only; reads run on the blocking
//! pool over a few reused connections. The metadata read at start (`format`, `minzoom`,
//! `maxzoom`, `bounds`, `attribution`, `name`) is what the web configuration tells the page.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use serde::Serialize;
use thiserror::Error;

/// Deepest zoom level a tile address may have (2^30 tiles a side).
pub const MAX_ZOOM: u8 = 30;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

/// Why the tiles file cannot be used.
#[derive(Debug, Error)]
pub enum TilesError {
    /// There is no such file.
    #[error("{path}: no such file (give the path of an MBTiles file)")]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// SQLite could not open or read it (missing, unreadable, not a database).
    #[error("{path}: cannot read it as SQLite ({source}); give the path of an MBTiles file")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// It has no `tiles` or `metadata` table (or view) with MBTiles' columns.
    #[error(
        "{path}: not an MBTiles file: {what} (it needs tiles(zoom_level, tile_column, tile_row, tile_data) and metadata(name, value); make one with e.g. `gdal_translate -of MBTILES` or `mb-util`)"
    )]
    NotMbtiles {
        /// The file.
        path: PathBuf,
        /// What is missing.
        what: String,
    },
    /// The metadata's `format` is missing or one the page cannot show.
    #[error(
        "{path}: metadata format {format:?} is not one of png, jpg, jpeg, webp, pbf (set it: INSERT INTO metadata VALUES ('format', 'png'))"
    )]
    Format {
        /// The file.
        path: PathBuf,
        /// What it says (empty: missing).
        format: String,
    },
    /// Another metadata value is malformed.
    #[error("{path}: metadata {name} {value:?} {why}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// The metadata name.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Reading a tile failed.
    #[error("reading a tile: {0}")]
    Read(#[from] rusqlite::Error),
}

/// The tiles' encoding (metadata `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TileFormat {
    /// PNG images.
    Png,
    /// JPEG images (`jpg` or `jpeg`).
    Jpg,
    /// WebP images.
    Webp,
    /// Mapbox vector tiles (protobuf, often gzip-compressed).
    Pbf,
}

impl TileFormat {
    /// The format a metadata value names.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "png" => Self::Png,
            "jpg" | "jpeg" => Self::Jpg,
            "webp" => Self::Webp,
            "pbf" | "mvt" => Self::Pbf,
            _ => return None,
        })
    }

    /// Its name as the web configuration gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpg => "jpg",
            Self::Webp => "webp",
            Self::Pbf => "pbf",
        }
    }

    /// The `Content-Type` of a tile.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpg => "image/jpeg",
            Self::Webp => "image/webp",
            Self::Pbf => "application/x-protobuf",
        }
    }
}

/// What the file's metadata says, as the web configuration passes it on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TileMeta {
    /// The tiles' encoding.
    pub format: TileFormat,
    /// Lowest zoom level with tiles (metadata `minzoom`, else the tiles' own).
    pub minzoom: u8,
    /// Highest zoom level with tiles (metadata `maxzoom`, else the tiles' own).
    pub maxzoom: u8,
    /// `[west, south, east, north]`, degrees (metadata `bounds`); none when not given.
    pub bounds: Option<[f64; 4]>,
    /// Attribution to show with the map (metadata `attribution`); empty when not given.
    pub attribution: String,
    /// The tileset's name (metadata `name`); empty when not given.
    pub name: String,
}

/// An opened MBTiles file.
pub struct Tiles {
    path: PathBuf,
    meta: TileMeta,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for Tiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiles")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

/// A tile address as the URL gives it (XYZ: `y` counts from the north).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileAddr {
    /// Zoom level, 0..=30.
    pub z: u8,
    /// Column, 0..2^z.
    pub x: u32,
    /// Row from the north, 0..2^z.
    pub y: u32,
}

impl TileAddr {
    /// Parses the path's `z`, `x` and `y` (`y` may end in `.png`, `.jpg`, `.jpeg`, `.webp`,
    /// `.pbf` or `.mvt`: the suffix's format is returned too). Errors say which part is wrong.
    pub fn parse(z: &str, x: &str, y: &str) -> Result<(Self, Option<TileFormat>), String> {
        let (y, suffix) = match y.rsplit_once('.') {
            Some((n, ext)) => match TileFormat::parse(ext) {
                Some(f) => (n, Some(f)),
                None => {
                    return Err(format!(
                        "y {:?}: the suffix may be .png, .jpg, .jpeg, .webp, .pbf or .mvt",
                        super::params::excerpt(y)
                    ));
                }
            },
            None => (y, None),
        };
        let num = |name: &str, v: &str| -> Result<u32, String> {
            if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{name} {:?} is not a whole number",
                    super::params::excerpt(v)
                ));
            }
            v.parse::<u32>()
                .map_err(|_| format!("{name} {v} is out of range"))
        };
        let z = num("z", z)?;
        if z > u32::from(MAX_ZOOM) {
            return Err(format!("z {z} is outside 0..={MAX_ZOOM}"));
        }
        let (x, y) = (num("x", x)?, num("y", y)?);
        let side = 1u64 << z;
        for (name, v) in [("x", x), ("y", y)] {
            if u64::from(v) >= side {
                return Err(format!(
                    "{name} {v} is outside 0..={} at zoom {z}",
                    side - 1
                ));
            }
        }
        Ok((Self { z: z as u8, x, y }, suffix))
    }

    /// The MBTiles (TMS) row: counted from the south.
    pub fn tms_row(self) -> u32 {
        ((1u64 << self.z) - 1 - u64::from(self.y)) as u32
    }
}

fn open_conn(path: &Path) -> Result<Connection, rusqlite::Error> {
    let c = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(c)
}

impl Tiles {
    /// Opens `path` read-only and reads its metadata; checks that it is an MBTiles file the
    /// page can show (the tables, the format, well-formed zooms and bounds).
    pub fn open(path: &Path) -> Result<Self, TilesError> {
        let open_err = |source| TilesError::Open {
            path: path.to_path_buf(),
            source,
        };
        if !path.is_file() {
            return Err(TilesError::Missing {
                path: path.to_path_buf(),
            });
        }
        let c = open_conn(path).map_err(open_err)?;
        let not = |what: &str| TilesError::NotMbtiles {
            path: path.to_path_buf(),
            what: what.to_string(),
        };
        // Reading the schema is what tells a file that is not SQLite.
        let kinds: Vec<(String, String)> = c
            .prepare("SELECT name, type FROM sqlite_master WHERE name IN ('tiles', 'metadata')")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .map_err(open_err)?;
        for t in ["tiles", "metadata"] {
            if !kinds
                .iter()
                .any(|(n, k)| n == t && (k == "table" || k == "view"))
            {
                return Err(not(&format!("no {t} table")));
            }
        }
        c.prepare("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 0")
            .map_err(|e| not(&format!("tiles lacks its columns ({e})")))?;
        let meta: Vec<(String, String)> = c
            .prepare("SELECT name, value FROM metadata")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                        r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    ))
                })?
                .collect::<Result<_, _>>()
            })
            .map_err(|e| not(&format!("metadata lacks name and value ({e})")))?;
        let get = |name: &str| {
            meta.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.trim().to_string())
        };
        let format_text = get("format").unwrap_or_default();
        let format = TileFormat::parse(&format_text).ok_or_else(|| TilesError::Format {
            path: path.to_path_buf(),
            format: format_text.clone(),
        })?;
        let bad = |name: &'static str, value: &str, why: &'static str| TilesError::Metadata {
            path: path.to_path_buf(),
            name,
            value: value.to_string(),
            why,
        };
        let zoom = |name: &'static str| -> Result<Option<u8>, TilesError> {
            match get(name) {
                None => Ok(None),
                Some(v) if v.is_empty() => Ok(None),
                Some(v) => match v.parse::<u8>() {
                    Ok(z) if z <= MAX_ZOOM => Ok(Some(z)),
                    _ => Err(bad(name, &v, "must be a zoom level 0..=30")),
                },
            }
        };
        let (min_meta, max_meta) = (zoom("minzoom")?, zoom("maxzoom")?);
        let (minzoom, maxzoom) = match (min_meta, max_meta) {
            (Some(a), Some(b)) => (a, b),
            _ => {
                // The tiles' own range (MBTiles' unique index makes this cheap).
                let (lo, hi): (Option<i64>, Option<i64>) = c
                    .query_row(
                        "SELECT MIN(zoom_level), MAX(zoom_level) FROM tiles",
                        [],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(open_err)?;
                let clamp =
                    |v: Option<i64>, d: u8| v.map_or(d, |v| v.clamp(0, i64::from(MAX_ZOOM)) as u8);
                (
                    min_meta.unwrap_or(clamp(lo, 0)),
                    max_meta.unwrap_or(clamp(hi, MAX_ZOOM)),
                )
            }
        };
        if minzoom > maxzoom {
            return Err(bad("minzoom", &minzoom.to_string(), "is above maxzoom"));
        }
        let bounds = match get("bounds").filter(|b| !b.is_empty()) {
            None => None,
            Some(b) => Some(parse_bounds(&b).ok_or_else(|| {
                bad(
                    "bounds",
                    &b,
                    "must be west,south,east,north in degrees (west < east, south < north)",
                )
            })?),
        };
        Ok(Self {
            path: path.to_path_buf(),
            meta: TileMeta {
                format,
                minzoom,
                maxzoom,
                bounds,
                attribution: get("attribution").unwrap_or_default(),
                name: get("name").unwrap_or_default(),
            },
            idle: Mutex::new(vec![c]),
        })
    }

    /// What the metadata says.
    pub fn meta(&self) -> &TileMeta {
        &self.meta
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tile at `a` (none: not in the file). Blocks on SQLite: call it off the async
    /// runtime.
    pub fn get(&self, a: TileAddr) -> Result<Option<Vec<u8>>, TilesError> {
        let c = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let c = match c {
            Some(c) => c,
            None => open_conn(&self.path)?,
        };
        let tile = c
            .prepare_cached(
                "SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3",
            )
            .and_then(|mut s| {
                s.query_row([i64::from(a.z), i64::from(a.x), i64::from(a.tms_row())], |r| {
                    r.get::<_, Vec<u8>>(0)
                })
                .optional()
            });
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
        Ok(tile?)
    }
}

/// `west,south,east,north` in degrees.
fn parse_bounds(s: &str) -> Option<[f64; 4]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>().ok().filter(|f| f.is_finite()))
        .collect::<Option<_>>()?;
    let [w, so, e, n]: [f64; 4] = v.try_into().ok()?;
    let ok = (-180.0..=180.0).contains(&w)
        && (-180.0..=180.0).contains(&e)
        && (-90.0..=90.0).contains(&so)
        && (-90.0..=90.0).contains(&n)
        && w < e
        && so < n;
    ok.then_some([w, so, e, n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_flip() {
        let (a, f) = TileAddr::parse("3", "2", "1.png").unwrap();
        assert_eq!(a, TileAddr { z: 3, x: 2, y: 1 });
        assert_eq!(f, Some(TileFormat::Png));
        assert_eq!(a.tms_row(), 6);
        assert_eq!(TileAddr::parse("0", "0", "0").unwrap().0.tms_row(), 0);
        let (a, f) = TileAddr::parse("30", "1073741823", "0").unwrap();
        assert_eq!((a.tms_row(), f), ((1 << 30) - 1, None));
        for (z, x, y, says) in [
            ("31", "0", "0", "z 31"),
            ("3", "8", "0", "x 8"),
            ("3", "0", "8", "y 8"),
            ("a", "0", "0", "z \"a\""),
            ("3", "-1", "0", "x \"-1\""),
            ("3", "0", "1.gif", "suffix"),
            ("3", "0", "", "y \"\""),
            ("99999999999", "0", "0", "not a whole number"),
        ] {
            let e = TileAddr::parse(z, x, y).unwrap_err();
            assert!(e.contains(says), "{z}/{x}/{y}: {e}");
        }
    }

    #[test]
    fn bounds_and_formats() {
        assert_eq!(
            parse_bounds("103.9, 30.5,104.2,30.8"),
            Some([103.9, 30.5, 104.2, 30.8])
        );
        assert_eq!(parse_bounds("104.2,30.5,103.9,30.8"), None);
        assert_eq!(parse_bounds("1,2,3"), None);
        assert_eq!(parse_bounds("a,b,c,d"), None);
        assert_eq!(TileFormat::parse("JPEG"), Some(TileFormat::Jpg));
        assert_eq!(TileFormat::parse("gif"), None);
        assert_eq!(TileFormat::Pbf.content_type(), "application/x-protobuf");
    }
}

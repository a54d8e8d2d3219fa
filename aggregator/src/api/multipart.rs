//! A small `multipart/form-data` reader (RFC 7578) for the face enrollment form: text fields
//! and files, the whole body in memory (bounded by `api.max_body_bytes`). Fuzzed with the
//! other parsers.

use std::path::PathBuf;

use sharpeyes_wire::FaceRole;

use crate::watchlist::FaceRequest;

/// One part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The field name.
    pub name: String,
    /// The file name, for file parts.
    pub filename: Option<String>,
    /// The content.
    pub data: Vec<u8>,
}

/// A parsed form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form(pub Vec<Part>);

impl Form {
    /// Text of the first field `name` (UTF-8, trimmed).
    pub fn text(&self, name: &str) -> Result<Option<String>, String> {
        self.0
            .iter()
            .find(|p| p.name == name)
            .map(|p| {
                String::from_utf8(p.data.clone())
                    .map(|s| s.trim().to_string())
                    .map_err(|_| format!("field {name} is not UTF-8 text"))
            })
            .transpose()
    }

    /// Every field `name`'s text.
    pub fn texts(&self, name: &str) -> Result<Vec<String>, String> {
        self.0
            .iter()
            .filter(|p| p.name == name)
            .map(|p| {
                String::from_utf8(p.data.clone())
                    .map(|s| s.trim().to_string())
                    .map_err(|_| format!("field {name} is not UTF-8 text"))
            })
            .collect()
    }

    /// The contents of every part `name`.
    pub fn files(&self, name: &str) -> Vec<Vec<u8>> {
        self.0
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.data.clone())
            .collect()
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// The parameter `key` of a header value (`form-data; name="photo"; filename="a.jpg"`).
fn param(value: &str, key: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Parses a body of content type `content_type` (`multipart/form-data; boundary=…`); at
/// most 64 parts.
pub fn parse(content_type: &str, body: &[u8]) -> Result<Form, String> {
    let (mime, _) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return Err("not multipart/form-data".into());
    }
    let boundary = param(content_type, "boundary")
        .filter(|b| (1..=70).contains(&b.len()))
        .ok_or("multipart/form-data without a usable boundary")?;
    let delim = format!("--{boundary}");
    let mut pos =
        find(body, delim.as_bytes(), 0).ok_or("no multipart boundary in the body")? + delim.len();
    let next_delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            break; // the closing delimiter
        }
        if !body[pos..].starts_with(b"\r\n") {
            return Err("malformed multipart delimiter".into());
        }
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).ok_or("a multipart part has no header end")?;
        let head = std::str::from_utf8(&body[pos..head_end])
            .map_err(|_| "a multipart part header is not UTF-8")?;
        let mut name = None;
        let mut filename = None;
        for line in head.split("\r\n") {
            if let Some((k, v)) = line.split_once(':')
                && k.trim().eq_ignore_ascii_case("content-disposition")
            {
                name = param(v, "name");
                filename = param(v, "filename");
            }
        }
        let name = name.ok_or("a multipart part has no name")?;
        let data_start = head_end + 4;
        let end = find(body, next_delim.as_bytes(), data_start)
            .ok_or("a multipart part is not terminated")?;
        parts.push(Part {
            name,
            filename,
            data: body[data_start..end].to_vec(),
        });
        if parts.len() > 64 {
            return Err("more than 64 multipart parts".into());
        }
        pos = end + next_delim.len();
    }
    Ok(Form(parts))
}

/// The enrollment a form asks for: `id`, `name`, `role` (`patient` | `guardian`),
/// `consent`, `of` (repeatable: the patients a guardian accompanies), `contact`
/// (repeatable, `NAME:PHONE`); photos (`photo`, repeatable) are added by the caller.
pub fn face_request(f: &Form) -> Result<FaceRequest, String> {
    let req = |n: &str| -> Result<String, String> {
        f.text(n)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("field {n} is required"))
    };
    let id = req("id")?;
    crate::store::watchlist::check_id(&id).map_err(|e| e.to_string())?;
    let role = match req("role")?.as_str() {
        "patient" => FaceRole::Patient,
        "guardian" => FaceRole::Guardian,
        _ => return Err("role must be patient or guardian".into()),
    };
    let contacts = f
        .texts("contact")?
        .iter()
        .map(|c| crate::watchlist::parse_contact(c).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    if f.files("photo").is_empty() {
        return Err("at least one photo part is required".into());
    }
    Ok(FaceRequest {
        id,
        role,
        name: req("name")?,
        photos: Vec::<PathBuf>::new(),
        guardian_of: f.texts("of")?,
        contacts,
        consent: f.text("consent")?.filter(|s| !s.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\nP-1\r\n--XyZ\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\r\n\xff\r\n--XyZ--\r\n";
        let f = parse("multipart/form-data; boundary=XyZ", body).unwrap();
        assert_eq!(f.text("id").unwrap().as_deref(), Some("P-1"));
        assert_eq!(f.files("photo"), vec![b"\xff\xd8\r\n\xff".to_vec()]);
        assert!(parse("multipart/form-data; boundary=XyZ", b"--XyZ\r\nnothing").is_err());
        assert!(parse("text/plain", body).is_err());
        assert!(face_request(&f).unwrap_err().contains("role"));
    }
}

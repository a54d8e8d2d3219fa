//! Credentials out of what a person reads: every URI or connection string that goes into a log
//! line, an error message or a status page passes through [`uri`] first.
//!
//! Handled forms:
//! - URLs with user info: `rtsp://admin:secret@10.0.0.5/stream` → `rtsp://***@10.0.0.5/stream`
//!   (user name and password both go: the user name is half of the credential);
//! - query parameters that carry secrets (`password`, `passwd`, `pwd`, `token`, `secret`,
//!   `key`, `auth`, `sslpassword`, any case): `?token=abc` → `?token=***`;
//! - PostgreSQL `key=value` strings: `host=db user=se password=secret` → `… password=***`
//!   (a quoted value, `password='a b'`, included).
//!
//! Anything else is returned unchanged (and not copied).

use std::borrow::Cow;

const MASK: &str = "***";

/// Parameter names whose values are secrets (compared case-insensitively).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "sslpassword",
    "access_token",
    "api_key",
    "apikey",
];

fn is_secret_key(k: &str) -> bool {
    SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k.trim()))
}

/// `s` with its credentials replaced by `***` (see the module docs for the forms).
pub fn uri(s: &str) -> Cow<'_, str> {
    let redacted = if let Some(scheme_end) = s.find("://") {
        redact_url(s, scheme_end)
    } else if s.contains('=') {
        redact_key_values(s)
    } else {
        return Cow::Borrowed(s);
    };
    if redacted == s {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(redacted)
    }
}

fn redact_url(s: &str, scheme_end: usize) -> String {
    let authority_start = scheme_end + 3;
    let rest = &s[authority_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let mut out = String::with_capacity(s.len());
    out.push_str(&s[..authority_start]);
    // The last '@' ends the user info (a password may itself contain '@').
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(MASK);
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    let tail = &rest[authority_end..];
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let (query, fragment) = match tail[q + 1..].find('#') {
                Some(h) => (&tail[q + 1..q + 1 + h], &tail[q + 1 + h..]),
                None => (&tail[q + 1..], ""),
            };
            let parts: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if is_secret_key(k) => format!("{k}={MASK}"),
                    _ => p.to_string(),
                })
                .collect();
            out.push_str(&parts.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

/// `key=value key2='quoted value'` (libpq's connection string form).
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let before = &rest[..eq];
        let key = before.rsplit(char::is_whitespace).next().unwrap_or(before);
        out.push_str(before);
        out.push('=');
        let after = &rest[eq + 1..];
        let value_len = if let Some(quoted) = after.strip_prefix('\'') {
            // up to the closing quote that is not escaped by a backslash
            let mut end = quoted.len();
            let mut escaped = false;
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            (end + 2).min(after.len())
        } else {
            after.find(char::is_whitespace).unwrap_or(after.len())
        };
        if is_secret_key(key) {
            out.push_str(MASK);
        } else {
            out.push_str(&after[..value_len]);
        }
        rest = &after[value_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn user_info_goes_whole() {
        assert_eq!(
            uri("rtsp://admin:s3cr%40t@10.0.0.5:554/Streaming/Channels/101"),
            "rtsp://***@10.0.0.5:554/Streaming/Channels/101"
        );
        assert_eq!(uri("rtsp://admin@cam/x"), "rtsp://***@cam/x");
        assert_eq!(
            uri("postgres://se:p@ss@db:5432/se"),
            "postgres://***@db:5432/se"
        );
        assert_eq!(
            uri("mqtts://u:p@broker.example:8883"),
            "mqtts://***@broker.example:8883"
        );
    }

    #[test]
    fn secret_query_parameters_are_masked() {
        assert_eq!(
            uri("http://cam/video?channel=1&Token=abc&pwd=x#top"),
            "http://cam/video?channel=1&Token=***&pwd=***#top"
        );
        assert_eq!(
            uri("postgres://db/se?sslmode=disable&password=x"),
            "postgres://db/se?sslmode=disable&password=***"
        );
    }

    #[test]
    fn key_value_strings_lose_their_password() {
        assert_eq!(
            uri("host=127.0.0.1 user=se password=secret dbname=se"),
            "host=127.0.0.1 user=se password=*** dbname=se"
        );
        assert_eq!(
            uri("host=db password='a b\\' c' dbname=se"),
            "host=db password=*** dbname=se"
        );
    }

    #[test]
    fn harmless_strings_are_borrowed_unchanged() {
        for s in [
            "file:///var/lib/clips/a.mp4",
            "rtsp://10.0.0.5/live",
            "mqtt://127.0.0.1:1883",
            "/tmp/a.mp4",
            "",
            "用户:密码",
            "@@@://",
        ] {
            let r = uri(s);
            assert!(matches!(r, std::borrow::Cow::Borrowed(_)), "{s}");
            assert_eq!(r, s);
        }
        assert_eq!(uri("rtsp://用户:密码@摄像头/流"), "rtsp://***@摄像头/流");
    }
}

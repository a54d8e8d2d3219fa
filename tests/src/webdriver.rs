//! A minimal W3C WebDriver client for the browser test: Debian's `chromedriver`
//! (package `chromium-driver`) driving headless `chromium`, over plain HTTP/1.1 on
//! 127.0.0.1 with JSON bodies. Only what the test needs: sessions, navigation, finding
//! elements, clicking, typing, running a script, screenshots.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use thiserror::Error;

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Why a WebDriver call failed.
#[derive(Debug, Error)]
pub enum WebDriverError {
    /// The connection to chromedriver (or another local HTTP server) failed.
    #[error("http to 127.0.0.1:{port}: {source}")]
    Io {
        /// Port.
        port: u16,
        /// Cause.
        source: std::io::Error,
    },
    /// chromedriver answered an error.
    #[error("webdriver {command}: {error}: {message}")]
    Command {
        /// The command (method and path).
        command: String,
        /// The WebDriver error code (`no such element`, ...).
        error: String,
        /// Its message.
        message: String,
    },
    /// The answer was not what the protocol says.
    #[error("webdriver {0}: unexpected answer {1}")]
    Protocol(String, String),
    /// chromedriver or chromium is not installed or did not start.
    #[error("{0}")]
    Setup(String),
    /// A condition did not hold in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

/// A plain HTTP/1.1 exchange on 127.0.0.1 (`Connection: close`).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse, WebDriverError> {
    let io = |source| WebDriverError::Io { port, source };
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(io)?;
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(io)?;
    s.write_all(body).map_err(io)?;
    // Read the head, then exactly Content-Length bytes (chromedriver may keep the socket
    // open after its answer), or a chunked body to its end, or to EOF.
    let bad = |what: &str| WebDriverError::Protocol(format!("{method} {path}"), what.to_string());
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).map_err(io)?;
        if n == 0 {
            return Err(bad("connection closed before the end of the headers"));
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let mut body = raw[split + 4..].to_vec();
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
    if method == "HEAD" || status == 204 || status == 304 {
        body.clear();
    } else if let Some(len) = length.filter(|_| !chunked) {
        while body.len() < len {
            let n = s.read(&mut buf).map_err(io)?;
            if n == 0 {
                return Err(bad("connection closed before the end of the body"));
            }
            body.extend_from_slice(&buf[..n]);
        }
        body.truncate(len);
    } else if chunked {
        loop {
            if let Some(done) = dechunk(&body) {
                body = done;
                break;
            }
            let n = s.read(&mut buf).map_err(io)?;
            if n == 0 {
                return Err(bad("bad chunked body"));
            }
            body.extend_from_slice(&buf[..n]);
        }
    } else {
        s.read_to_end(&mut body).map_err(io)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// A running `chromedriver` on a free port of 127.0.0.1 (killed on drop).
pub struct ChromeDriver {
    child: Child,
    port: u16,
}

/// Where Debian puts them.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";

impl ChromeDriver {
    /// Starts Debian's chromedriver; fails with what to install when it or chromium is
    /// missing.
    pub fn start(log: &Path) -> Result<Self, WebDriverError> {
        for (bin, pkg) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            if !Path::new(bin).exists() {
                return Err(WebDriverError::Setup(format!(
                    "{bin} missing: install Debian's {pkg} (scripts/setup.sh installs chromium and chromium-driver)"
                )));
            }
        }
        let port = crate::free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| WebDriverError::Setup(format!("starting {CHROMEDRIVER}: {e}")))?;
        let mut d = ChromeDriver { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http(port, "GET", "/status", &[], None)
                && r.status == 200
            {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if v["value"]["ready"].as_bool() == Some(true) {
                    return Ok(d);
                }
            }
            if Instant::now() > deadline {
                let _ = d.child.kill();
                return Err(WebDriverError::Setup(
                    "chromedriver did not become ready within 20 s".into(),
                ));
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                return Err(WebDriverError::Setup(format!(
                    "chromedriver exited: {st} (log: {})",
                    log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A new headless Chromium session with a `width`×`height` window.
    pub fn session(&self, width: u32, height: u32) -> Result<Session, WebDriverError> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                    "--lang=en-US", "--force-device-scale-factor=1",
                    format!("--window-size={width},{height}"),
                ]
            }
        }}});
        let v = call(self.port, "POST", "/session", Some(&caps))?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| WebDriverError::Protocol("new session".into(), v.to_string()))?
            .to_string();
        let s = Session {
            port: self.port,
            id,
        };
        // The window includes the browser's frame: size it so the page's viewport is
        // exactly width × height.
        let inner = s.script("return [window.innerWidth, window.innerHeight]", vec![])?;
        let (iw, ih) = (
            inner[0].as_i64().unwrap_or(0),
            inner[1].as_i64().unwrap_or(0),
        );
        if iw > 0 && ih > 0 && (iw != i64::from(width) || ih != i64::from(height)) {
            let outer = s.cmd("GET", "/window/rect", None)?;
            let ow = outer["width"].as_i64().unwrap_or(i64::from(width));
            let oh = outer["height"].as_i64().unwrap_or(i64::from(height));
            s.cmd(
                "POST",
                "/window/rect",
                Some(json!({
                    "width": ow + i64::from(width) - iw,
                    "height": oh + i64::from(height) - ih,
                })),
            )?;
        }
        Ok(s)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver command; its `value`.
fn call(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, WebDriverError> {
    let payload = body.map(|b| b.to_string());
    let HttpResponse {
        status, body: resp, ..
    } = http(
        port,
        method,
        path,
        &[("Content-Type", "application/json; charset=utf-8")],
        payload.as_deref().map(str::as_bytes),
    )?;
    let v: Value = serde_json::from_slice(&resp).map_err(|_| {
        WebDriverError::Protocol(
            format!("{method} {path}"),
            String::from_utf8_lossy(&resp).chars().take(300).collect(),
        )
    })?;
    if status != 200 {
        return Err(WebDriverError::Command {
            command: format!("{method} {path}"),
            error: v["value"]["error"].as_str().unwrap_or("?").to_string(),
            message: v["value"]["message"]
                .as_str()
                .unwrap_or("")
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(v["value"].clone())
}

/// A browser session (deleted on drop, which closes the browser).
pub struct Session {
    port: u16,
    id: String,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Session {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, WebDriverError> {
        call(
            self.port,
            method,
            &format!("/session/{}{path}", self.id),
            body.as_ref(),
        )
    }

    /// Opens `url`.
    pub fn goto(&self, url: &str) -> Result<(), WebDriverError> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .map(drop)
    }

    /// The first element matching the CSS selector.
    pub fn find(&self, css: &str) -> Result<Element, WebDriverError> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        element_of(&v).ok_or_else(|| WebDriverError::Protocol(format!("find {css}"), v.to_string()))
    }

    /// Every element matching the CSS selector.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element>, WebDriverError> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element_of).collect())
            .unwrap_or_default())
    }

    /// Clicks the element.
    pub fn click(&self, e: &Element) -> Result<(), WebDriverError> {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(json!({})))
            .map(drop)
    }

    /// Types `text` into the element.
    pub fn type_into(&self, e: &Element, text: &str) -> Result<(), WebDriverError> {
        self.cmd(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": text })),
        )
        .map(drop)
    }

    /// Whether the element is displayed.
    pub fn displayed(&self, e: &Element) -> Result<bool, WebDriverError> {
        Ok(self
            .cmd("GET", &format!("/element/{}/displayed", e.0), None)?
            .as_bool()
            .unwrap_or(false))
    }

    /// The element's rendered text.
    pub fn text(&self, e: &Element) -> Result<String, WebDriverError> {
        Ok(self
            .cmd("GET", &format!("/element/{}/text", e.0), None)?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Runs `script` (a function body; `arguments` available) in the page; its result.
    pub fn script(&self, script: &str, args: Vec<Value>) -> Result<Value, WebDriverError> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls `script` every 100 ms until it returns a truthy value (returned) or `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
    ) -> Result<Value, WebDriverError> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.script(script, vec![])?;
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return Ok(v);
            }
            if Instant::now() > deadline {
                return Err(WebDriverError::Timeout(timeout, what.to_string()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the viewport, written to `path` (its folder is made).
    pub fn screenshot(&self, path: &Path) -> Result<PathBuf, WebDriverError> {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None)?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .map_err(|e| WebDriverError::Protocol("screenshot".into(), e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|source| WebDriverError::Io { port: 0, source })?;
        }
        std::fs::write(path, png).map_err(|source| WebDriverError::Io { port: 0, source })?;
        Ok(path.to_path_buf())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = call(self.port, "DELETE", &format!("/session/{}", self.id), None);
    }
}

fn element_of(v: &Value) -> Option<Element> {
    v.get(ELEMENT)
        .and_then(Value::as_str)
        .map(|s| Element(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::dechunk;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n").unwrap(),
            b"Wikipedia"
        );
        assert!(dechunk(b"9\r\nshort\r\n").is_none());
    }
}

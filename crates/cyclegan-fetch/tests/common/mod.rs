//! A tiny HTTP/1.1 file server on 127.0.0.1 for the download tests: serves byte strings by
//! path, answers `Range: bytes=N-` with 206 (unless told not to, or an `If-Range` names another
//! version), can drop the connection in the middle of a body, send a Content-Type or an ETag,
//! and logs every request (calling a hook of the test's as each arrives). Also used by xtask's
//! tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// How the server treats one path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Ignore `Range` and always send the whole file with 200.
    pub no_range: bool,
    /// For the next `drops` requests, send only this many bytes of the body, then close.
    pub drop_after: Option<usize>,
    pub drops: usize,
    /// Send this Content-Type.
    pub content_type: Option<&'static str>,
    /// Send an ETag (from the content) and honour `If-Range`.
    pub etag: bool,
    /// Announce a file of this many bytes (Content-Length of a 200) instead of its length.
    pub claimed_length: Option<u64>,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub if_range: Option<String>,
}

type Hook = Arc<dyn Fn(&Request) + Send + Sync>;

#[derive(Default)]
struct State {
    files: HashMap<String, Vec<u8>>,
    behaviour: HashMap<String, Behaviour>,
    log: Vec<Request>,
    hook: Option<Hook>,
}

pub struct TestServer {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl TestServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &state);
                });
            }
        });
        Self { base_url, state }
    }

    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.state.lock().unwrap().files.insert(path.into(), bytes);
    }

    pub fn behave(&self, path: &str, behaviour: Behaviour) {
        self.state
            .lock()
            .unwrap()
            .behaviour
            .insert(path.into(), behaviour);
    }

    /// Calls `hook` with each request as it arrives, before it is answered.
    pub fn on_request(&self, hook: impl Fn(&Request) + Send + Sync + 'static) {
        self.state.lock().unwrap().hook = Some(Arc::new(hook));
    }

    pub fn log(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut range = None;
    let mut if_range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_string());
            }
            if name.eq_ignore_ascii_case("if-range") {
                if_range = Some(value.trim().to_string());
            }
        }
    }
    let request = Request {
        method: method.clone(),
        path: path.clone(),
        range: range.clone(),
        if_range: if_range.clone(),
    };
    let hook = state.lock().unwrap().hook.clone();
    if let Some(hook) = hook {
        hook(&request);
    }
    let (file, behaviour) = {
        let mut s = state.lock().unwrap();
        s.log.push(request);
        let file = s.files.get(&path).cloned();
        let behaviour = s.behaviour.entry(path.clone()).or_default();
        let current = *behaviour;
        if behaviour.drops > 0 {
            behaviour.drops -= 1;
        }
        (file, current)
    };
    let Some(file) = file else {
        stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )?;
        return Ok(());
    };
    let len = file.len();
    // A version tag from the content: a changed file has another.
    let etag = behaviour.etag.then(|| {
        let sum = file.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x100_0000_01b3)
        });
        format!("\"{sum:016x}\"")
    });
    let mut extra = String::new();
    if let Some(etag) = &etag {
        extra.push_str(&format!("ETag: {etag}\r\n"));
    }
    if let Some(content_type) = behaviour.content_type {
        extra.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    let unchanged = if_range.is_none() || (etag.is_some() && if_range == etag);
    let start = range
        .as_deref()
        .filter(|_| !behaviour.no_range && unchanged)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    let head = match start {
        Some(start) if start >= len => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
            return Ok(());
        }
        Some(start) => format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{len}\r\n{extra}Connection: close\r\n\r\n",
            len - start,
            len - 1
        ),
        None => format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n",
            behaviour.claimed_length.unwrap_or(len as u64)
        ),
    };
    stream.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    let body = &file[start.unwrap_or(0)..];
    match behaviour.drop_after {
        Some(n) if behaviour.drops > 0 => {
            stream.write_all(&body[..n.min(body.len())])?;
            stream.flush()?;
            stream.shutdown(Shutdown::Both)?;
        }
        _ => stream.write_all(body)?,
    }
    Ok(())
}

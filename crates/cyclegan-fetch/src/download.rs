//! Resumable HTTP downloads into a temporary file, with a progress bar.

use crate::space::check_space;
use crate::FetchError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How downloads behave.
#[derive(Debug, Clone)]
pub struct DownloadOptions {
    /// Further attempts after an interrupted transfer, each resuming where the last stopped
    /// (HTTP `Range`). A partial file is kept between runs as well, so running again resumes.
    pub retries: u32,
    /// Pause before each further attempt.
    pub retry_delay: Duration,
    /// Show a progress bar (bytes, rate, ETA) on the terminal.
    pub progress: bool,
    /// Give up on a connection that sends nothing for this long.
    pub read_timeout: Duration,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        Self {
            retries: 3,
            retry_delay: Duration::from_secs(2),
            progress: true,
            read_timeout: Duration::from_secs(60),
        }
    }
}

/// The temporary file a download of `dest` goes to until it is complete.
pub fn partial_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".part")
}

/// The small file beside a download of `dest` (partial or complete) that says where its bytes
/// came from, so that bytes from another address or another version are never resumed or
/// reused.
fn origin_path(dest: &Path) -> PathBuf {
    with_suffix(dest, ".origin")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Removes a download of `dest`: the file, its partial file and the note of its origin
/// (whichever exist).
pub fn remove_download(dest: &Path) {
    for path in [dest.to_path_buf(), partial_path(dest), origin_path(dest)] {
        let _ = std::fs::remove_file(path);
    }
}

/// Checks that `url` is an address this crate can fetch (`http://` or `https://`).
pub fn check_url(url: &str) -> Result<(), FetchError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        Ok(())
    } else {
        Err(FetchError::BadUrl {
            url: url.to_string(),
        })
    }
}

/// Where a download's bytes came from: the address and what the server said of the file.
/// Written beside the partial file when its first byte arrives; a resume sends the validator
/// as `If-Range` and checks the length, so a file changed on the server starts again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Origin {
    url: String,
    etag: Option<String>,
    last_modified: Option<String>,
    length: Option<u64>,
}

impl Origin {
    /// The note beside `dest`, if there is a readable one.
    fn read(dest: &Path) -> Option<Origin> {
        let text = std::fs::read_to_string(origin_path(dest)).ok()?;
        let mut origin = Origin::default();
        for line in text.lines() {
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = value.to_string();
            match key {
                "url" => origin.url = value,
                "etag" => origin.etag = Some(value),
                "last-modified" => origin.last_modified = Some(value),
                "length" => origin.length = value.parse().ok(),
                _ => {}
            }
        }
        (!origin.url.is_empty()).then_some(origin)
    }

    fn write(&self, dest: &Path) -> Result<(), FetchError> {
        let mut text = format!("url {}\n", self.url);
        if let Some(etag) = &self.etag {
            text.push_str(&format!("etag {etag}\n"));
        }
        if let Some(modified) = &self.last_modified {
            text.push_str(&format!("last-modified {modified}\n"));
        }
        if let Some(length) = self.length {
            text.push_str(&format!("length {length}\n"));
        }
        let path = origin_path(dest);
        std::fs::write(&path, text).map_err(FetchError::io(&path))
    }

    /// What `If-Range` sends: a strong ETag, or else the modification date.
    fn validator(&self) -> Option<&str> {
        self.etag
            .as_deref()
            .filter(|e| !e.starts_with("W/"))
            .or(self.last_modified.as_deref())
    }

    /// Why bytes noted as coming from `self` (or from nowhere known) are not bytes of `url`.
    fn mismatch(origin: Option<&Origin>, url: &str) -> Option<String> {
        match origin {
            Some(o) if o.url == url => None,
            Some(o) => Some(format!("it came from {}, not {url}", o.url)),
            None => Some("where it came from is unknown (no note of its origin beside it)".into()),
        }
    }
}

fn agent(options: &DownloadOptions) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // Byte ranges must count the bytes of the file itself, never of a compressed form.
        .accept_encoding("identity")
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .user_agent(concat!("cyclegan-fetch/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Downloads `url` to `dest`. The bytes go to [`partial_path`]`(dest)`, which is renamed to
/// `dest` only once the server's `Content-Length` has been received in full. An interrupted
/// transfer is resumed with an HTTP `Range` request (up to `options.retries` times here, and
/// on the next run from the kept partial file); a server that ignores `Range` is read again
/// from the start. A note beside the file records the address (and the server's ETag,
/// Last-Modified and length): a partial file from another address, or from a file that has
/// changed since, is discarded rather than resumed, and a complete `dest` downloaded from the
/// same address by an earlier run is reused without a request. An answer that is clearly not
/// the file (a web page, an empty body) is refused without touching the partial file.
/// Returns the file's size.
pub fn download(url: &str, dest: &Path, options: &DownloadOptions) -> Result<u64, FetchError> {
    check_url(url)?;
    let part = partial_path(dest);
    let origin = Origin::read(dest);
    let mismatch = Origin::mismatch(origin.as_ref(), url);
    if let Some(meta) = std::fs::metadata(dest).ok().filter(|m| m.is_file()) {
        let length_differs = origin
            .as_ref()
            .and_then(|o| o.length)
            .is_some_and(|l| l != meta.len());
        match &mismatch {
            None if !length_differs => {
                tracing::info!(
                    "using {}, downloaded completely from {url} by an earlier run (delete it to download it again)",
                    dest.display()
                );
                return Ok(meta.len());
            }
            reason => {
                tracing::warn!(
                    "removing {}, an earlier download: {}",
                    dest.display(),
                    reason
                        .as_deref()
                        .unwrap_or("its length is not the one the server stated")
                );
                std::fs::remove_file(dest).map_err(FetchError::io(dest))?;
            }
        }
    }
    if let (true, Some(reason)) = (part.exists(), &mismatch) {
        tracing::warn!(
            "removing the partial download {}: {reason}; downloading {url} from the start",
            part.display()
        );
        std::fs::remove_file(&part).map_err(FetchError::io(&part))?;
    }
    let agent = agent(options);
    // The file the URL names, not a hidden temporary name the caller downloads it to.
    let label = url
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            dest.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        });
    let mut attempt = 0;
    loop {
        match attempt_once(&agent, url, dest, &label, options) {
            Ok(size) => {
                std::fs::rename(&part, dest).map_err(FetchError::io(dest))?;
                return Ok(size);
            }
            Err(e) if e.is_retryable() && attempt < options.retries => {
                attempt += 1;
                tracing::warn!("{}", retry_warning(&e, attempt, options.retries));
                std::thread::sleep(options.retry_delay);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The warning before a further attempt: what happened, and that it is being retried (not
/// the final error's advice to run the command again).
fn retry_warning(e: &FetchError, attempt: u32, retries: u32) -> String {
    let what = match e {
        FetchError::Truncated {
            url,
            received,
            expected,
            cause,
        } => format!(
            "download of {url} stopped at {received} of {expected} bytes{}",
            cause
                .as_ref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ),
        other => other.to_string(),
    };
    format!("{what}; retrying ({attempt} of {retries})")
}

/// `bytes START-END/TOTAL` (or `bytes */TOTAL`): the start and the total.
fn content_range(value: &str) -> Option<(Option<u64>, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim();
    let (range, total) = rest.split_once('/')?;
    let total = total.trim().parse().ok();
    let start = range
        .split_once('-')
        .and_then(|(s, _)| s.trim().parse().ok());
    Some((start, total))
}

fn attempt_once(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    label: &str,
    options: &DownloadOptions,
) -> Result<u64, FetchError> {
    let part = partial_path(dest);
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    let origin = Origin::read(dest).filter(|o| o.url == url);
    let mut request = agent.get(url);
    if have > 0 {
        tracing::info!("resuming {url} from byte {have}");
        request = request.header("Range", format!("bytes={have}-"));
        if let Some(validator) = origin.as_ref().and_then(Origin::validator) {
            // The server sends the whole file (200) instead if it changed since.
            request = request.header("If-Range", validator);
        }
    } else {
        tracing::info!("downloading {url}");
    }
    let network = |source: ureq::Error| FetchError::Network {
        url: url.to_string(),
        source: Box::new(source),
    };
    let response = request.call().map_err(network)?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string())
    };
    let content_range = header("content-range").and_then(|v| content_range(&v));
    // Read from the header: the body's own length says nothing for `Content-Length: 0`.
    let length: Option<u64> = header("content-length").and_then(|v| v.parse().ok());
    let content_type = header("content-type").unwrap_or_default();
    let fresh_origin = Origin {
        url: url.to_string(),
        etag: header("etag"),
        last_modified: header("last-modified"),
        length,
    };
    // Starts again from the first byte: the partial file is not part of this file.
    let restart = |why: &str| -> Result<u64, FetchError> {
        if have == 0 {
            // Nothing to start again from: the server answers a plain GET with a part.
            return Err(FetchError::Http {
                url: url.to_string(),
                status,
            });
        }
        tracing::warn!(
            "{url}: {why}; discarding the partial download {} and starting again",
            part.display()
        );
        std::fs::remove_file(&part).map_err(FetchError::io(&part))?;
        attempt_once(agent, url, dest, label, options)
    };
    if matches!(status, 200 | 206) {
        // An answer that is clearly not the file: refused before the partial file is touched.
        let not_the_file = if content_type.to_ascii_lowercase().starts_with("text/html") {
            Some(format!("a web page (Content-Type: {content_type})"))
        } else if status == 200 && length == Some(0) {
            Some("an empty body (Content-Length: 0)".to_string())
        } else {
            None
        };
        if let Some(found) = not_the_file {
            return Err(FetchError::NotTheFile {
                url: url.to_string(),
                found,
                partial: (have > 0).then(|| part.clone()),
            });
        }
    }
    let body = response.into_body();
    let (start, total) = match status {
        206 => {
            let noted = origin.as_ref().and_then(|o| o.length);
            match content_range {
                Some((Some(start), total)) if start == have => {
                    let total = total.or(length.map(|l| have + l));
                    match (noted, total) {
                        (Some(noted), Some(total)) if noted != total => {
                            return restart(&format!(
                                "the file is now {total} bytes long, not the {noted} it was when the partial download began"
                            ))
                        }
                        _ => (have, total),
                    }
                }
                _ => return restart("the server answered another range than the one asked for"),
            }
        }
        200 => {
            if have > 0 {
                tracing::info!(
                    "{url}: the server sent the whole file (it does not resume downloads, or the file changed); starting again"
                );
            }
            (0, length)
        }
        416 if have > 0 => {
            // The partial file already holds everything, or is not part of this file.
            match content_range.and_then(|(_, total)| total) {
                Some(total) if total == have => return Ok(have),
                _ => return restart("the server refused the range asked for (416)"),
            }
        }
        status => {
            return Err(FetchError::Http {
                url: url.to_string(),
                status,
            })
        }
    };
    match total {
        // What the disk gains: the rest after a resumed part, or the whole file in place of
        // the part (a 200 starts it again).
        Some(total) => check_space(
            part.parent().unwrap_or(Path::new("")),
            &part,
            total.saturating_sub(have),
            &if start > 0 {
                format!("the rest of {label}")
            } else {
                label.to_string()
            },
        )?,
        None => tracing::warn!("{url}: the server sent no Content-Length; the download cannot be checked for completeness"),
    }
    if start == 0 {
        fresh_origin.write(dest)?;
    }

    let mut file = if start == 0 {
        File::create(&part)
    } else {
        OpenOptions::new().append(true).open(&part)
    }
    .map_err(FetchError::io(&part))?;
    let bar = progress_bar(label, total, start, options.progress);
    let mut reader = body.into_reader();
    let mut received = start;
    let mut buffer = vec![0u8; 256 * 1024];
    let outcome = loop {
        match reader.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = file.write_all(&buffer[..n]) {
                    break Err(FetchError::Io {
                        path: part.clone(),
                        source: e,
                    });
                }
                received += n as u64;
                bar.set_position(received);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                break Err(FetchError::Truncated {
                    url: url.to_string(),
                    received,
                    expected: total.unwrap_or(received),
                    cause: Some(e.to_string()),
                })
            }
        }
    };
    bar.finish_and_clear();
    file.sync_all().map_err(FetchError::io(&part))?;
    outcome?;
    match total {
        Some(total) if received < total => Err(FetchError::Truncated {
            url: url.to_string(),
            received,
            expected: total,
            cause: None,
        }),
        Some(total) if received > total => {
            remove_download(dest);
            Err(FetchError::Overlong {
                url: url.to_string(),
                received,
                expected: total,
            })
        }
        _ => Ok(received),
    }
}

fn progress_bar(label: &str, total: Option<u64>, position: u64, visible: bool) -> ProgressBar {
    let bar = match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec}")
                .expect("valid template"),
        ),
    };
    bar.set_draw_target(if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    bar.set_message(label.to_string());
    bar.set_position(position);
    bar.reset_eta();
    bar
}

/// The size of the file at `url` (an HTTP `HEAD` request), if the server states it.
pub fn remote_size(url: &str, timeout: Duration) -> Result<Option<u64>, FetchError> {
    check_url(url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .accept_encoding("identity")
        .timeout_global(Some(timeout))
        .build()
        .into();
    let response = agent
        .head(url)
        .call()
        .map_err(|source| FetchError::Network {
            url: url.to_string(),
            source: Box::new(source),
        })?;
    match response.status().as_u16() {
        200 => Ok(response
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())),
        status => Err(FetchError::Http {
            url: url.to_string(),
            status,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_warning_says_it_retries_and_not_to_run_again() {
        let e = FetchError::Truncated {
            url: "http://a/b.zip".into(),
            received: 10,
            expected: 20,
            cause: Some("connection reset".into()),
        };
        assert!(e.to_string().contains("run the command again to resume"));
        assert_eq!(
            retry_warning(&e, 1, 3),
            "download of http://a/b.zip stopped at 10 of 20 bytes (connection reset); retrying (1 of 3)"
        );
    }

    #[test]
    fn origins_are_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.zip");
        assert_eq!(Origin::read(&dest), None);
        let origin = Origin {
            url: "http://a/x y.zip".into(),
            etag: Some("W/\"1\"".into()),
            last_modified: Some("Tue, 01 Jul 2025 10:00:00 GMT".into()),
            length: Some(12),
        };
        origin.write(&dest).unwrap();
        assert_eq!(Origin::read(&dest).as_ref(), Some(&origin));
        // A weak ETag cannot be used with If-Range; the date can.
        assert_eq!(origin.validator(), Some("Tue, 01 Jul 2025 10:00:00 GMT"));
        assert!(Origin::mismatch(Some(&origin), "http://a/x y.zip").is_none());
        assert!(Origin::mismatch(Some(&origin), "http://b/x.zip")
            .unwrap()
            .contains("came from http://a/x y.zip"));
        assert!(Origin::mismatch(None, "http://b/x.zip").is_some());
        remove_download(&dest);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn parses_content_range() {
        assert_eq!(
            content_range("bytes 100-199/1000"),
            Some((Some(100), Some(1000)))
        );
        assert_eq!(content_range("bytes */1000"), Some((None, Some(1000))));
        assert_eq!(content_range("bytes 5-9/*"), Some((Some(5), None)));
        assert_eq!(content_range("items 1-2/3"), None);
        assert_eq!(
            partial_path(Path::new("data/.x.zip")),
            Path::new("data/.x.zip.part")
        );
    }
}

//! Resumable HTTP downloads into a temporary file, with a progress bar.

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
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
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
/// from the start. Returns the file's size.
pub fn download(url: &str, dest: &Path, options: &DownloadOptions) -> Result<u64, FetchError> {
    let part = partial_path(dest);
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
        match attempt_once(&agent, url, &part, &label, options) {
            Ok(size) => {
                std::fs::rename(&part, dest).map_err(FetchError::io(dest))?;
                return Ok(size);
            }
            Err(e) if e.is_retryable() && attempt < options.retries => {
                attempt += 1;
                tracing::warn!("{e}; retrying ({attempt} of {})", options.retries);
                std::thread::sleep(options.retry_delay);
            }
            Err(e) => return Err(e),
        }
    }
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
    part: &Path,
    label: &str,
    options: &DownloadOptions,
) -> Result<u64, FetchError> {
    let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let mut request = agent.get(url);
    if have > 0 {
        tracing::info!("resuming {url} from byte {have}");
        request = request.header("Range", format!("bytes={have}-"));
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
            .map(str::to_string)
    };
    let content_range = header("content-range").and_then(|v| content_range(&v));
    let body = response.into_body();
    let length = body.content_length();
    let (start, total) = match status {
        206 => match content_range {
            Some((Some(start), total)) if start == have => {
                (have, total.or(length.map(|l| have + l)))
            }
            _ => {
                // A range other than the one asked for: start again.
                tracing::warn!("{url}: the server answered another range; starting again");
                std::fs::remove_file(part).map_err(FetchError::io(part))?;
                return Err(FetchError::Truncated {
                    url: url.to_string(),
                    received: 0,
                    expected: length.unwrap_or(0),
                    cause: Some("unexpected Content-Range".into()),
                });
            }
        },
        200 => {
            if have > 0 {
                tracing::info!("{url}: the server does not resume downloads; starting again");
            }
            (0, length)
        }
        416 if have > 0 => {
            // The partial file already holds everything (or is longer than the file).
            match content_range.and_then(|(_, total)| total) {
                Some(total) if total == have => return Ok(have),
                _ => {
                    std::fs::remove_file(part).map_err(FetchError::io(part))?;
                    return Err(FetchError::Truncated {
                        url: url.to_string(),
                        received: 0,
                        expected: 0,
                        cause: Some("the partial file did not match the server's".into()),
                    });
                }
            }
        }
        status => {
            return Err(FetchError::Http {
                url: url.to_string(),
                status,
            })
        }
    };
    if total.is_none() {
        tracing::warn!("{url}: the server sent no Content-Length; the download cannot be checked for completeness");
    }

    let mut file = if start == 0 {
        File::create(part)
    } else {
        OpenOptions::new().append(true).open(part)
    }
    .map_err(FetchError::io(part))?;
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
                        path: part.to_path_buf(),
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
    file.sync_all().map_err(FetchError::io(part))?;
    outcome?;
    match total {
        Some(total) if received < total => Err(FetchError::Truncated {
            url: url.to_string(),
            received,
            expected: total,
            cause: None,
        }),
        Some(total) if received > total => {
            std::fs::remove_file(part).map_err(FetchError::io(part))?;
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

//! `cargo xtask`: project automation, one module per subcommand. This file only parses the
//! command line, dispatches, and turns errors into a message and an exit code; the work lives
//! in the library crates (`cyclegan-fetch`, `cyclegan-checkpoint`).

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// `--quiet`: the commands' reports are left out (errors and asked-for lists still print).
static QUIET: AtomicBool = AtomicBool::new(false);

/// Prints a line of a command's report on standard output, unless `--quiet`.
macro_rules! report {
    ($($arg:tt)*) => {
        if !$crate::QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            println!($($arg)*);
        }
    };
}
pub(crate) use report;

mod convert;
mod fetch_dataset;
mod fetch_model;

/// Project automation for cyclegan-rs: fetch the reference's datasets and pretrained models,
/// and convert checkpoints between PyTorch (.pth) and safetensors.
#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    after_help = "Examples:\n  \
        cargo xtask fetch-dataset --list\n  \
        cargo xtask fetch-dataset horse2zebra              # -> data/horse2zebra/{trainA,trainB,testA,testB}\n  \
        cargo xtask fetch-model horse2zebra                # -> checkpoints/horse2zebra_pretrained/latest_net_G.{pth,safetensors}\n  \
        cargo xtask convert-checkpoint latest_net_G_A.pth latest_net_G_A.safetensors\n  \
        cargo xtask convert-checkpoint latest_net_G_A.safetensors back.pth"
)]
struct Cli {
    /// Print only errors (and the lists --list asks for), not the reports.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print debugging details.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    FetchDataset(fetch_dataset::Args),
    FetchModel(fetch_model::Args),
    ConvertCheckpoint(convert::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    QUIET.store(cli.quiet, Ordering::Relaxed);
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, true) => "debug",
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(cyclegan_layers::device::log_colours())
        .without_time()
        .with_target(false)
        .init();
    let result = match cli.command {
        Command::FetchDataset(args) => fetch_dataset::run(args),
        Command::FetchModel(args) => fetch_model::run(args),
        Command::ConvertCheckpoint(args) => convert::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cyclegan_layers::device::error_text(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// `1.5 GiB`, `75.2 MiB`, ...
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The download settings shared by the fetch commands.
#[derive(clap::Args, Debug, Clone)]
struct DownloadArgs {
    /// Fetch from this address instead of the reference's server (a mirror): BASE/NAME.zip
    /// for datasets, BASE/NAME.pth for models. It starts with http:// or https://.
    #[arg(long, value_name = "URL", value_parser = web_address)]
    base_url: Option<String>,
    /// Fetch again even if already present (what is there stays until the new copy is complete
    /// and checked).
    #[arg(long)]
    force: bool,
    /// Further attempts after an interrupted download, each resuming where the last stopped.
    #[arg(long, default_value_t = 3, value_name = "N")]
    retries: u32,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

/// `--base-url`: refused at once when it is not an http:// or https:// address.
fn web_address(url: &str) -> Result<String, String> {
    cyclegan_fetch::check_url(url)
        .map(|()| url.to_string())
        .map_err(|_| {
            if url.contains("://") {
                "it must start with http:// or https://".to_string()
            } else {
                format!("it must start with http:// or https:// (e.g. http://{url})")
            }
        })
}

impl DownloadArgs {
    fn options(&self, dest: &std::path::Path) -> cyclegan_fetch::FetchOptions {
        let mut options = cyclegan_fetch::FetchOptions::new(dest);
        options.base_url = self.base_url.clone();
        options.force = self.force;
        options.download.retries = self.retries;
        options.download.progress = !self.no_progress;
        options
    }
}

/// Keeps a second fetch of the same dataset or model out (`lock_file`: a hidden file beside
/// where it goes) while this one downloads, extracts and swaps it in: two at once would resume
/// each other's partial downloads and swap folders under each other. `None` where the file
/// system cannot lock files.
fn lock_fetch(
    lock_file: &std::path::Path,
    what: &str,
) -> anyhow::Result<Option<cyclegan_checkpoint::FolderLock>> {
    match cyclegan_checkpoint::FolderLock::acquire(lock_file, &format!("cargo xtask, fetching {what}")) {
        Ok(lock) => Ok(Some(lock)),
        Err(cyclegan_checkpoint::LockError::Busy { holder, .. }) => anyhow::bail!(
            "{what} is being fetched by another command ({}): wait for it to end, or stop it and run this again",
            holder.unwrap_or_else(|| format!("it holds {}", lock_file.display()))
        ),
        Err(cyclegan_checkpoint::LockError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::Unsupported =>
        {
            tracing::warn!("{}: this file system cannot lock files, so nothing keeps a second fetch of {what} out", lock_file.display());
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints `names` with the size the server states for each (`BASE/NAME.EXT`), or why not.
fn list_with_sizes(base: &str, ext: &str, names: &[&str], refused: &[(&str, &str)]) {
    let timeout = std::time::Duration::from_secs(10);
    let mut reachable = true;
    for name in names {
        let size = if refused.iter().any(|(n, _)| n == name) {
            "refused by the reference (licence)".to_string()
        } else if !reachable {
            "?".to_string()
        } else {
            let url = cyclegan_fetch::join_url(base, &format!("{name}.{ext}"));
            match cyclegan_fetch::remote_size(&url, timeout) {
                Ok(Some(bytes)) => human_bytes(bytes),
                Ok(None) => "size not stated".to_string(),
                Err(cyclegan_fetch::FetchError::Http { status, .. }) => {
                    format!("unavailable (HTTP {status})")
                }
                Err(e) => {
                    tracing::warn!("{e}; sizes not shown");
                    reachable = false;
                    "?".to_string()
                }
            }
        };
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(std::io::stdout(), "  {name:<26} {size}").is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_base_url_without_its_scheme_is_refused_at_once() {
        for command in ["fetch-dataset", "fetch-model"] {
            let err = Cli::try_parse_from([
                "cargo xtask",
                command,
                "horse2zebra",
                "--base-url",
                "127.0.0.1:8765/x",
            ])
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("must start with http:// or https://")
                    && err.contains("http://127.0.0.1:8765/x"),
                "{err}"
            );
            assert!(Cli::try_parse_from([
                "cargo xtask",
                command,
                "horse2zebra",
                "--base-url",
                "HTTPS://example.org/x"
            ])
            .is_ok());
        }
    }

    #[test]
    fn a_name_with_list_is_refused() {
        for command in ["fetch-dataset", "fetch-model"] {
            let err = Cli::try_parse_from(["cargo xtask", command, "horse2zebra", "--list"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("cannot be used with"), "{command}: {err}");
            assert!(Cli::try_parse_from(["cargo xtask", command, "--list"]).is_ok());
        }
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(116_867_962), "111.5 MiB");
    }
}

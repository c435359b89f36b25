//! `cargo xtask convert-checkpoint`.
//!
//! The flags' doc comments are their `--help` text, written for the terminal (`<name>`, `A[i]`),
//! not for rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use anyhow::Context;
use cyclegan_checkpoint::{convert_checkpoint, ConvertOptions};
use cyclegan_layers::{NormKind, PaddingType};
use cyclegan_models::{DiscriminatorArch, GeneratorArch};
use std::path::PathBuf;

/// Convert a checkpoint: a PyTorch .pth (zip format of PyTorch >= 1.6, or the legacy format of
/// older versions) to safetensors, or safetensors back to .pth.
///
/// To .safetensors: the architecture is detected from the keys and shapes (resnet_Nblocks,
/// unet_128/256, basic/n_layers/pixel discriminators, norm, dropout, widths, channels) and
/// recorded in the metadata; a `module.` prefix and the stale InstanceNorm statistics of old
/// checkpoints are dropped. The options below override what detection finds; the result is
/// always checked against every key and shape.
///
/// To .pth: torch.save's zip format, which torch.load(path, weights_only=True) and the
/// reference read.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The checkpoint to read (.pth in either format, or .safetensors); recognised by content.
    input: PathBuf,
    /// The file to write; its extension (.safetensors, or .pth / .pt) picks the format.
    output: PathBuf,
    /// Generator architecture: resnet_9blocks, resnet_6blocks, resnet_<N>blocks, unet_128,
    /// unet_256.
    #[arg(long = "netG", alias = "net-g", value_name = "ARCH")]
    net_g: Option<GeneratorArch>,
    /// Discriminator architecture: basic, n_layers_<N>, pixel.
    #[arg(long = "netD", alias = "net-d", value_name = "ARCH")]
    net_d: Option<DiscriminatorArch>,
    /// Normalisation: instance, instance_affine, batch, none.
    #[arg(long, value_name = "NORM")]
    norm: Option<NormKind>,
    /// Generator width (filters of the first convolution).
    #[arg(long, value_name = "N")]
    ngf: Option<usize>,
    /// Discriminator width.
    #[arg(long, value_name = "N")]
    ndf: Option<usize>,
    /// Input channels.
    #[arg(long = "input-nc", alias = "input_nc", value_name = "N")]
    input_nc: Option<usize>,
    /// Generator output channels.
    #[arg(long = "output-nc", alias = "output_nc", value_name = "N")]
    output_nc: Option<usize>,
    /// The generator has dropout (a U-Net's dropout cannot be seen in its keys).
    #[arg(long, conflicts_with = "no_dropout")]
    dropout: bool,
    /// The generator has no dropout.
    #[arg(long = "no-dropout", alias = "no_dropout")]
    no_dropout: bool,
    /// ResNet block padding: reflect, replicate, zero (reflect and replicate look the same in
    /// the keys; reflect is assumed).
    #[arg(long = "padding-type", alias = "padding_type", value_name = "TYPE")]
    padding_type: Option<PaddingType>,
    /// Replace the output file if it exists (it is kept otherwise; the new file replaces it
    /// only once complete).
    #[arg(long)]
    force: bool,
}

impl Args {
    fn options(&self) -> ConvertOptions {
        ConvertOptions {
            net_g: self.net_g,
            net_d: self.net_d,
            norm: self.norm,
            ngf: self.ngf,
            ndf: self.ndf,
            input_nc: self.input_nc,
            output_nc: self.output_nc,
            use_dropout: match (self.dropout, self.no_dropout) {
                (true, _) => Some(true),
                (_, true) => Some(false),
                _ => None,
            },
            padding_type: self.padding_type,
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if args.output.is_dir() {
        anyhow::bail!(
            "{} is a folder: name the file to write (e.g. {})",
            args.output.display(),
            args.output.join("latest_net_G.safetensors").display()
        );
    }
    if !args.force && (args.output.exists() || args.output.is_symlink()) {
        anyhow::bail!(
            "{} exists already: pass --force to replace it, or name another output file",
            args.output.display()
        );
    }
    let report =
        convert_checkpoint(&args.input, &args.output, &args.options()).with_context(|| {
            format!(
                "cannot convert {} to {}",
                args.input.display(),
                args.output.display()
            )
        })?;
    crate::report!("{}: {report}", args.input.display());
    crate::report!("{}: written", args.output.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(argv: &[&std::path::Path], force: bool) -> Args {
        let mut line = vec!["convert-checkpoint".into()];
        line.extend(argv.iter().map(|p| p.as_os_str().to_owned()));
        if force {
            line.push("--force".into());
        }
        Cli::try_parse_from(line).unwrap().args
    }

    /// An existing output is kept unless --force, which replaces it.
    #[test]
    fn an_existing_output_is_replaced_only_with_force() {
        let input = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/cyclegan-checkpoint/tests/fixtures/pixel_legacy.pth");
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.safetensors");
        std::fs::write(&output, "precious").unwrap();
        let err = format!("{:#}", run(args(&[&input, &output], false)).unwrap_err());
        assert!(
            err.contains("out.safetensors exists already") && err.contains("--force"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&output).unwrap(), "precious");

        run(args(&[&input, &output], true)).unwrap();
        let written = std::fs::read(&output).unwrap();
        assert_eq!(
            cyclegan_checkpoint::FileFormat::sniff(&written).ok(),
            Some(cyclegan_checkpoint::FileFormat::Safetensors)
        );

        let err = format!("{:#}", run(args(&[&input, dir.path()], true)).unwrap_err());
        assert!(err.contains("is a folder"), "{err}");
    }
}

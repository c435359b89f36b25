//! The run's `web/index.html`: the loss curves as an SVG plot, then the sample images
//! (real, fake, rec, idt of both directions) of each epoch, newest first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::model::{Losses, Visuals};

/// Writes the page and its images under `<run>/web`.
#[derive(Debug)]
pub struct WebPage {
    dir: PathBuf,
    /// The labels saved for each epoch.
    epochs: BTreeMap<usize, Vec<String>>,
    /// (total images seen, losses) at each print step.
    curve: Vec<(u64, Losses)>,
}

impl WebPage {
    /// A page in `run_dir/web` that knows no images or losses yet (nothing is written).
    pub fn new(run_dir: &Path) -> Self {
        Self {
            dir: run_dir.join("web"),
            epochs: BTreeMap::new(),
            curve: Vec::new(),
        }
    }

    /// Rebuilds the page's memory from the images already on disk and the loss log (resume).
    pub fn restore(&mut self, loss_log: &[(u64, Losses)]) {
        self.curve = loss_log.to_vec();
        let Ok(entries) = std::fs::read_dir(self.dir.join("images")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("epoch") else {
                continue;
            };
            let Some((epoch, label)) = rest.split_once('_') else {
                continue;
            };
            let (Ok(epoch), Some(label)) = (epoch.parse::<usize>(), label.strip_suffix(".png"))
            else {
                continue;
            };
            // The page's own images are named after visuals (real_A, fake_B...): anything else
            // in the folder is not one of them, and would need escaping in the page.
            if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            self.epochs
                .entry(epoch)
                .or_default()
                .push(label.to_string());
        }
        self.epochs.values_mut().for_each(|labels| labels.sort());
    }

    /// Adds a point to the loss curves: the losses after `images` training images in all.
    pub fn record_losses(&mut self, images: u64, losses: Losses) {
        self.curve.push((images, losses));
    }

    /// Saves the first image of each visual as `images/epoch<E>_<label>.png` and rewrites the page.
    pub fn display(&mut self, epoch: usize, visuals: &Visuals) -> Result<()> {
        let images = self.dir.join("images");
        std::fs::create_dir_all(&images).map_err(TrainError::io(format!(
            "cannot create {}",
            images.display()
        )))?;
        let mut labels = Vec::new();
        for (label, tensor) in visuals.named() {
            cyclegan_data::save_image(tensor, images.join(format!("epoch{epoch:03}_{label}.png")))?;
            labels.push(label.to_string());
        }
        self.epochs.insert(epoch, labels);
        self.write()
    }

    fn write(&self) -> Result<()> {
        let mut html = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"60\">\
             <title>CycleGAN training</title><style>body{font-family:sans-serif} td{text-align:center;padding:3px} \
             img{image-rendering:pixelated}</style></head><body>\n<h1>CycleGAN training</h1>\n",
        );
        html.push_str(&self.loss_plot());
        for (epoch, labels) in self.epochs.iter().rev() {
            let _ = write!(html, "<h3>epoch [{epoch}]</h3>\n<table><tr>");
            for label in labels {
                let src = format!("images/epoch{epoch:03}_{label}.png");
                let _ = write!(
                    html,
                    "<td><img src=\"{src}\" width=\"256\"><br>{label}</td>"
                );
            }
            html.push_str("</tr></table>\n");
        }
        html.push_str("</body></html>\n");
        let path = self.dir.join("index.html");
        cyclegan_checkpoint::write_atomic(&path, |f| f.write_all(html.as_bytes()))
            .map_err(TrainError::io(format!("cannot write {}", path.display())))
    }

    /// The loss curves against images seen, as inline SVG.
    fn loss_plot(&self) -> String {
        if self.curve.len() < 2 {
            return String::new();
        }
        const COLOURS: [&str; 8] = [
            "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
        ];
        let (w, h, margin) = (900.0, 320.0, 45.0);
        let x_max = self.curve.last().map(|c| c.0).unwrap_or(1).max(1) as f64;
        let x_min = self.curve[0].0 as f64;
        let y_max = self
            .curve
            .iter()
            .flat_map(|(_, l)| l.named().map(|(_, v)| v))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-6);
        let sx = |x: f64| margin + (x - x_min) / (x_max - x_min).max(1.0) * (w - 2.0 * margin);
        let sy = |y: f64| h - margin - y.max(0.0) / y_max * (h - 2.0 * margin);
        let mut svg = format!(
            "<h2>Losses</h2>\n<svg width=\"{w}\" height=\"{h}\" style=\"border:1px solid #ccc\">\
             <text x=\"{margin}\" y=\"20\" font-size=\"12\">max {y_max:.3}</text>\
             <text x=\"{}\" y=\"{}\" font-size=\"12\">images seen: {}</text>",
            w - 250.0,
            h - 10.0,
            x_max as u64
        );
        for (i, name) in Losses::default().named().iter().map(|(n, _)| n).enumerate() {
            let points: Vec<String> = self
                .curve
                .iter()
                .map(|(x, l)| format!("{:.1},{:.1}", sx(*x as f64), sy(l.named()[i].1)))
                .collect();
            let colour = COLOURS[i % COLOURS.len()];
            let _ = write!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.2\" points=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"{colour}\">{name}</text>",
                points.join(" "),
                w - margin - 58.0,
                30.0 + 14.0 * i as f64
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_page_takes_back_its_own_images_only() {
        let run = tempfile::tempdir().unwrap();
        let images = run.path().join("web/images");
        std::fs::create_dir_all(&images).unwrap();
        for name in [
            "epoch002_real_A.png",
            "epoch002_fake_B.png",
            "epoch002_x#\"y.png",
            "notes.png",
        ] {
            std::fs::write(images.join(name), b"").unwrap();
        }
        let mut page = WebPage::new(run.path());
        page.restore(&[]);
        assert_eq!(page.epochs.len(), 1);
        assert_eq!(page.epochs[&2], ["fake_B", "real_A"]);
    }
}

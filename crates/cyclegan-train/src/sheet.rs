//! A sample sheet: triples of (real A, translated, true B) side by side, for a person to look at.

use candle_core::Tensor;
use cyclegan_data::image::{imageops, Rgb, RgbImage};
use std::path::Path;

use crate::error::TrainError;

/// Triples per row of the sheet.
const PER_ROW: usize = 4;
/// Pixels between images of a triple, and between triples.
const GAP: u32 = 2;
const TRIPLE_GAP: u32 = 12;

/// Writes `path`: each (a, fake, b) triple as three tiles, `PER_ROW` triples per row, each tile
/// enlarged to at least 128 pixels (nearest neighbour, so pixels stay visible).
pub fn write_sample_sheet(
    path: &Path,
    a: &[Tensor],
    fake: &[Tensor],
    b: &[Tensor],
) -> crate::error::Result<()> {
    let tiles: Vec<[RgbImage; 3]> = a
        .iter()
        .zip(fake)
        .zip(b)
        .map(|((a, f), b)| {
            Ok([
                cyclegan_data::tensor_to_image(a)?,
                cyclegan_data::tensor_to_image(f)?,
                cyclegan_data::tensor_to_image(b)?,
            ])
        })
        .collect::<Result<_, cyclegan_data::DataError>>()?;
    let Some(first) = tiles.first() else {
        return Err(TrainError::Options(format!(
            "no images for the sample sheet {}",
            path.display()
        )));
    };
    let scale = (128 / first[0].width().max(1)).max(1);
    let (tw, th) = (first[0].width() * scale, first[0].height() * scale);
    let cols = PER_ROW.min(tiles.len()) as u32;
    let rows = tiles.len().div_ceil(PER_ROW) as u32;
    let triple_w = 3 * tw + 2 * GAP;
    let width = cols * triple_w + (cols - 1) * TRIPLE_GAP;
    let height = rows * th + (rows - 1) * GAP;
    let mut sheet = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));
    for (i, triple) in tiles.iter().enumerate() {
        let (col, row) = ((i % PER_ROW) as u32, (i / PER_ROW) as u32);
        for (j, tile) in triple.iter().enumerate() {
            let big = imageops::resize(tile, tw, th, imageops::FilterType::Nearest);
            let x = col * (triple_w + TRIPLE_GAP) + j as u32 * (tw + GAP);
            imageops::replace(&mut sheet, &big, x as i64, (row * (th + GAP)) as i64);
        }
    }
    sheet.save(path).map_err(|e| TrainError::Io {
        context: format!("cannot write {}", path.display()),
        source: std::io::Error::other(e),
    })?;
    Ok(())
}

//! Decoding images the way the reference sees them (`Image.open(path).convert('RGB')`, then
//! `convert('L')` for one channel), turning them into tensors in [-1, 1] and back.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use image::{DynamicImage, GrayImage, ImageDecoder, ImageReader, Rgb, RgbImage};

use crate::error::{DataError, Result};

/// Decodes an image file and converts it like the reference: to 8-bit RGB
/// ([`convert_rgb`], Pillow's `.convert('RGB')`), then to 8-bit grayscale ([`convert_luma`],
/// Pillow's `.convert('L')`) when `nc` is 1.
///
/// Returns [`DynamicImage::ImageRgb8`] for `nc` 3 and [`DynamicImage::ImageLuma8`] for `nc` 1;
/// any other `nc` is an [`DataError::InvalidOptions`]. The format is recognised from the file's
/// contents, not its name. Errors name the file; nothing panics on a corrupt file. The warning
/// about a 16-bit grayscale image clipped to 255 ([`convert_rgb`]) names the file too.
pub fn load_image(path: impl AsRef<Path>, nc: usize) -> Result<DynamicImage> {
    let path = path.as_ref();
    check_nc(nc)?;
    let rgb = convert_rgb_of(&decode(path)?, Some(path));
    Ok(if nc == 1 {
        DynamicImage::ImageLuma8(convert_luma(&rgb))
    } else {
        DynamicImage::ImageRgb8(rgb)
    })
}

pub(crate) fn check_nc(nc: usize) -> Result<()> {
    if nc == 1 || nc == 3 {
        Ok(())
    } else {
        Err(DataError::InvalidOptions(format!(
            "a number of channels must be 1 (grayscale) or 3 (RGB), not {nc}"
        )))
    }
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // JPEGs through Pillow's decoder (libjpeg-turbo's), unless of a colour space it keeps.
    if image::guess_format(&bytes).ok() == Some(image::ImageFormat::Jpeg) {
        if let Some(decoded) = crate::jpeg::decode(&bytes) {
            return decoded.map_err(|reason| DataError::Decode {
                path: path.to_path_buf(),
                reason,
            });
        }
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    // What `ImageReader::decode` does (the `image` crate's default limits, its check of the
    // decoded size), with the header's dimensions checked first.
    let decode = || -> std::result::Result<DynamicImage, String> {
        let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
        let (width, height) = decoder.dimensions();
        check_pixels(width, height)?;
        let mut limits = image::Limits::default();
        let allowed = limits.max_alloc.unwrap_or(u64::MAX);
        limits.reserve(decoder.total_bytes()).map_err(|_| {
            format!(
                "{width}x{height} pixels of {:?} take {} MiB decoded, more than the {} MiB \
                 allowed; resize the image first",
                decoder.color_type(),
                decoder.total_bytes() >> 20,
                allowed >> 20
            )
        })?;
        decoder.set_limits(limits).map_err(|e| e.to_string())?;
        DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())
    };
    // Decoders are third-party code fed untrusted bytes: a panic in one becomes an error here.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)) {
        Ok(Ok(img)) => Ok(img),
        Ok(Err(reason)) => Err(DataError::Decode {
            path: path.to_path_buf(),
            reason,
        }),
        Err(_) => Err(DataError::Decode {
            path: path.to_path_buf(),
            reason: "the decoder panicked".into(),
        }),
    }
}

/// The most pixels decoded: Pillow refuses images of more (`Image.MAX_IMAGE_PIXELS` twice,
/// its `DecompressionBombError`). A header can claim up to 65535 x 65535 (JPEG) or more, and a
/// few hundred kilobytes of PNG can hold 256 million gray pixels, which the `image` crate's
/// limit (512 MiB of decoded bytes) lets through and the RGB conversion then triples.
const MAX_PIXELS: u64 = 2 * 89_478_485;

/// Refuses an image of more than [`MAX_PIXELS`], from its header's dimensions, before decoding.
pub(crate) fn check_pixels(width: u32, height: u32) -> std::result::Result<(), String> {
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(format!(
            "{width}x{height} pixels: more than the {MAX_PIXELS} pixels that Pillow decodes \
             (its DecompressionBombError); resize the image first"
        ));
    }
    Ok(())
}

static WARNED_16BIT_GRAY: AtomicBool = AtomicBool::new(false);

/// Converts any decoded image to 8-bit RGB the way Pillow's `Image.open(p).convert('RGB')` does.
///
/// * grayscale: the level is repeated in R, G and B;
/// * an alpha channel is dropped (not composited onto a background);
/// * 16-bit RGB(A) and 16-bit gray+alpha keep the high byte (Pillow decodes them to 8 bits);
/// * 16-bit grayscale (Pillow's mode `I;16`) is **clipped** to 255, not scaled: levels above 255
///   all become white. That is what the reference does; rescale such data beforehand if it spans
///   the 16-bit range (a warning is logged for the first such image of the process; through
///   [`load_image`] it names the file);
/// * floating-point images are clamped to [0, 1] and scaled to 0..=255.
pub fn convert_rgb(img: &DynamicImage) -> RgbImage {
    convert_rgb_of(img, None)
}

/// [`convert_rgb`] of the image read from `path`, which its warning names.
fn convert_rgb_of(img: &DynamicImage, path: Option<&Path>) -> RgbImage {
    fn map<P: image::Pixel>(
        img: &image::ImageBuffer<P, Vec<P::Subpixel>>,
        f: impl Fn(&P) -> [u8; 3],
    ) -> RgbImage {
        RgbImage::from_fn(img.width(), img.height(), |x, y| {
            Rgb(f(img.get_pixel(x, y)))
        })
    }
    let hi = |v: u16| (v >> 8) as u8;
    match img {
        DynamicImage::ImageRgb8(i) => i.clone(),
        DynamicImage::ImageLuma8(i) => map(i, |p| [p[0]; 3]),
        DynamicImage::ImageLumaA8(i) => map(i, |p| [p[0]; 3]),
        DynamicImage::ImageRgba8(i) => map(i, |p| [p[0], p[1], p[2]]),
        DynamicImage::ImageLuma16(i) => {
            if i.pixels().any(|p| p[0] > 255) && !WARNED_16BIT_GRAY.swap(true, Ordering::Relaxed) {
                let image = match path {
                    Some(path) => format!("{} is a 16-bit grayscale image", path.display()),
                    None => "a 16-bit grayscale image".to_string(),
                };
                tracing::warn!(
                    "{image} with levels above 255; they are clipped to 255 as Pillow's \
                     convert('RGB') does (the reference's behaviour): rescale such images to 8 bits \
                     first (this warning is shown once; other images may be clipped too)"
                );
            }
            map(i, |p| [p[0].min(255) as u8; 3])
        }
        DynamicImage::ImageLumaA16(i) => map(i, |p| [hi(p[0]); 3]),
        DynamicImage::ImageRgb16(i) => map(i, |p| [hi(p[0]), hi(p[1]), hi(p[2])]),
        DynamicImage::ImageRgba16(i) => map(i, |p| [hi(p[0]), hi(p[1]), hi(p[2])]),
        other => other.to_rgb8(),
    }
}

/// Converts RGB to 8-bit grayscale like Pillow's `.convert('L')` (ITU-R 601-2 luma,
/// L = R * 299/1000 + G * 587/1000 + B * 114/1000, in Pillow's 16-bit fixed point with rounding).
pub fn convert_luma(img: &RgbImage) -> GrayImage {
    GrayImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b] = img.get_pixel(x, y).0.map(u32::from);
        image::Luma([((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16) as u8])
    })
}

/// The reference's `ToTensor` then `Normalize(0.5, 0.5)`: (v / 255 - 0.5) / 0.5 in f32.
fn level_to_unit(v: u8) -> f32 {
    (f32::from(v) / 255.0 - 0.5) / 0.5
}

/// Appends an 8-bit grayscale or RGB image to `out` as planar C x H x W floats in [-1, 1];
/// returns the shape.
pub(crate) fn push_planar(img: &DynamicImage, out: &mut Vec<f32>) -> [usize; 3] {
    let lut: [f32; 256] = std::array::from_fn(|v| level_to_unit(v as u8));
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (raw, c): (&[u8], usize) = match img {
        DynamicImage::ImageLuma8(i) => (i.as_raw(), 1),
        DynamicImage::ImageRgb8(i) => (i.as_raw(), 3),
        other => {
            let rgb = convert_rgb(other);
            return push_planar(&DynamicImage::ImageRgb8(rgb), out);
        }
    };
    out.reserve(c * h * w);
    for ch in 0..c {
        out.extend(raw.iter().skip(ch).step_by(c).map(|&v| lut[v as usize]));
    }
    [c, h, w]
}

/// Turns an 8-bit grayscale or RGB image into a C x H x W f32 tensor on the CPU in [-1, 1]
/// (the reference's `ToTensor()` + `Normalize(0.5, 0.5)`, bit for bit). Other kinds of image
/// are converted with [`convert_rgb`] first.
pub fn image_to_tensor(img: &DynamicImage) -> Result<Tensor> {
    let mut data = Vec::new();
    let shape = push_planar(img, &mut data);
    Ok(Tensor::from_vec(
        data,
        (shape[0], shape[1], shape[2]),
        &Device::Cpu,
    )?)
}

/// The reference's `tensor2im`: takes a C x H x W tensor, or the **first** image of an
/// N x C x H x W batch, in [-1, 1], and maps each value x to `(x + 1) / 2 * 255` truncated to
/// u8 (computed in f32; values outside [-1, 1] saturate, NaN gives 0). One channel is repeated
/// into RGB. Any device and float dtype are accepted.
pub fn tensor_to_image(tensor: &Tensor) -> Result<RgbImage> {
    let t = match tensor.rank() {
        4 => {
            if tensor.dim(0)? == 0 {
                return Err(DataError::Tensor(
                    "cannot make an image from an empty batch".into(),
                ));
            }
            tensor.get(0)?
        }
        3 => tensor.clone(),
        r => {
            return Err(DataError::Tensor(format!(
                "expected a [C, H, W] or [N, C, H, W] tensor, got rank {r} with shape {:?}",
                tensor.dims()
            )))
        }
    };
    let (c, h, w) = t.dims3()?;
    if c != 1 && c != 3 {
        return Err(DataError::Tensor(format!(
            "expected 1 or 3 channels, got shape {:?}",
            tensor.dims()
        )));
    }
    let data: Vec<f32> = t
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1()?;
    let level = |x: f32| ((x + 1.0) / 2.0 * 255.0) as u8;
    let plane = h * w;
    let mut raw = Vec::with_capacity(plane * 3);
    for i in 0..plane {
        for ch in 0..3 {
            let src = if c == 1 { i } else { ch * plane + i };
            raw.push(level(data[src]));
        }
    }
    Ok(RgbImage::from_raw(w as u32, h as u32, raw).expect("buffer sized for the image"))
}

/// Saves a tensor in [-1, 1] as an 8-bit RGB PNG file (whatever the file's extension), via
/// [`tensor_to_image`]: the reference's `save_image(tensor2im(t), path)`.
pub fn save_image(tensor: &Tensor, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let img = tensor_to_image(tensor)?;
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| DataError::Encode {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG of `width` x `height` 8-bit pixels of `color_type`, with a few bytes of data.
    fn png_header(width: u32, height: u32, color_type: u8) -> Vec<u8> {
        fn chunk(out: &mut Vec<u8>, kind_and_data: &[u8]) {
            let crc = !kind_and_data.iter().fold(!0u32, |c, &b| {
                (0..8).fold(c ^ u32::from(b), |c, _| {
                    (c >> 1) ^ (0xedb8_8320 & (c & 1).wrapping_neg())
                })
            });
            out.extend_from_slice(&(kind_and_data.len() as u32 - 4).to_be_bytes());
            out.extend_from_slice(kind_and_data);
            out.extend_from_slice(&crc.to_be_bytes());
        }
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, color_type, 0, 0, 0]);
        chunk(&mut out, &ihdr);
        chunk(&mut out, b"IDAT\x78\x9c\x63\x00\x00\x00\x01\x00\x01");
        chunk(&mut out, b"IEND");
        out
    }

    /// Decompression bombs: the `image` crate's limit (512 MiB decoded) let 16000 x 16000 gray
    /// pixels through (a 250 KB PNG of them took 1 GB to load), where Pillow refuses more than
    /// 178956970 pixels; above its limit the message was a bare "Memory limit exceeded".
    #[test]
    fn images_of_too_many_pixels_are_refused_before_decoding() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("gray.png", png_header(16000, 16000, 0)),
            ("rgb.png", png_header(60000, 60000, 2)),
            ("gray.pgm", b"P5 16000 16000 255\n\x00".to_vec()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = load_image(&path, 3).unwrap_err();
            assert!(err.is_bad_image());
            let msg = err.to_string();
            assert!(
                msg.contains(&path.display().to_string())
                    && msg.contains("more than the 178956970 pixels that Pillow decodes"),
                "{msg}"
            );
        }
        // Up to the limit, the header is read on (these have no data).
        let path = dir.path().join("wide.png");
        std::fs::write(&path, png_header(89_478_485, 2, 0)).unwrap();
        let msg = load_image(&path, 3).unwrap_err().to_string();
        assert!(!msg.contains("Pillow"), "{msg}");
    }

    #[test]
    fn luma_matches_pillow_fixed_point() {
        // Values printed by Pillow 13.0.0 for Image.fromarray(rgb).convert('L').
        let img = RgbImage::from_raw(4, 1, vec![10, 20, 30, 200, 100, 50, 255, 255, 255, 1, 2, 3])
            .unwrap();
        assert_eq!(convert_luma(&img).as_raw(), &vec![18, 124, 255, 2]);
    }

    #[test]
    fn sixteen_bit_conversion_follows_pillow() {
        let gray =
            image::ImageBuffer::<image::Luma<u16>, _>::from_raw(3, 1, vec![100u16, 256, 65535])
                .unwrap();
        let rgb = convert_rgb(&DynamicImage::ImageLuma16(gray));
        assert_eq!(
            rgb.as_raw(),
            &vec![100, 100, 100, 255, 255, 255, 255, 255, 255]
        );
        let rgb16 =
            image::ImageBuffer::<Rgb<u16>, _>::from_raw(1, 1, vec![0u16, 1000, 65535]).unwrap();
        assert_eq!(
            convert_rgb(&DynamicImage::ImageRgb16(rgb16)).as_raw(),
            &vec![0, 3, 255]
        );
    }

    #[test]
    fn tensor_round_trip_is_exact_for_8_bit_levels() {
        let img = RgbImage::from_fn(5, 3, |x, y| Rgb([(x * 50) as u8, (y * 100) as u8, 255]));
        let t = image_to_tensor(&DynamicImage::ImageRgb8(img.clone())).unwrap();
        assert_eq!(t.dims(), &[3, 3, 5]);
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
        // tensor2im truncates, so a level can come back one lower; it never comes back higher.
        let back = tensor_to_image(&t.unsqueeze(0).unwrap()).unwrap();
        for (a, b) in img.as_raw().iter().zip(back.as_raw()) {
            assert!(*a == *b || *a == *b + 1, "{a} came back as {b}");
        }
    }

    #[test]
    fn tensor_to_image_tiles_gray_and_saturates() {
        let t = Tensor::from_vec(
            vec![-1.0f32, 0.0, 1.0, 5.0, -7.0, f32::NAN],
            (1, 2, 3),
            &Device::Cpu,
        )
        .unwrap();
        let img = tensor_to_image(&t).unwrap();
        let r: Vec<u8> = img.pixels().map(|p| p[0]).collect();
        assert_eq!(r, vec![0, 127, 255, 255, 0, 0]);
        assert!(img.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn tensor_to_image_rejects_bad_shapes() {
        let t = Tensor::zeros((2, 4, 4), DType::F32, &Device::Cpu).unwrap();
        let e = tensor_to_image(&t).unwrap_err().to_string();
        assert!(e.contains("1 or 3 channels"), "{e}");
        let t = Tensor::zeros((4, 4), DType::F32, &Device::Cpu).unwrap();
        assert!(tensor_to_image(&t)
            .unwrap_err()
            .to_string()
            .contains("rank 2"));
    }
}

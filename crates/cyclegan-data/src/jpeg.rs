//! JPEG decoding as Pillow does it. Pillow decodes with libjpeg-turbo (its integer "slow"
//! inverse DCT and "fancy" chroma upsampling, the library's defaults); the `image` crate's
//! decoder computes both differently, up to 5 levels apart on photographs. mozjpeg's decoder is
//! libjpeg-turbo's, so decoding through it gives Pillow's pixels exactly (`tests/pil_parity.rs`).
//!
//! Like Pillow, it ignores libjpeg's warnings about damaged data except one: data that ends
//! before the image does is an error, as Pillow's "image file is truncated".

use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr};
use std::ffi::CStr;
use std::os::raw::c_int;

/// The most pixels decoded: Pillow refuses images of more (`Image.MAX_IMAGE_PIXELS` twice,
/// its `DecompressionBombError`), and a header can claim up to 65535 x 65535, which would not
/// fit in memory (the `image` crate, for other formats, stops at 512 MiB likewise).
const MAX_PIXELS: u64 = 2 * 89_478_485;

/// Decodes a JPEG file's bytes to 8-bit RGB, or 8-bit gray for a one-channel JPEG, as Pillow's
/// `Image.open` does. `None` for a colour space that Pillow keeps as such (CMYK, YCCK), which the
/// caller decodes otherwise; an error says why the data cannot be decoded.
pub(crate) fn decode(bytes: &[u8]) -> Option<Result<DynamicImage, String>> {
    // libjpeg reports errors by calling the error manager, which unwinds (see `error_manager`).
    let decoded = std::panic::catch_unwind(|| -> Result<Option<DynamicImage>, String> {
        let image = Decompress::with_err(error_manager())
            .from_mem(bytes)
            .map_err(|e| e.to_string())?;
        let (width, height) = (image.width() as u32, image.height() as u32);
        if u64::from(width) * u64::from(height) > MAX_PIXELS {
            return Err(format!(
                "{width}x{height} pixels: more than the {MAX_PIXELS} pixels that Pillow decodes \
                 (its DecompressionBombError); resize the image first"
            ));
        }
        let too_large = || format!("{width}x{height} pixels do not fit in memory");
        Ok(Some(match image.color_space() {
            ColorSpace::JCS_GRAYSCALE => {
                let mut started = image.grayscale().map_err(|e| e.to_string())?;
                let pixels: Vec<u8> = started.read_scanlines().map_err(|e| e.to_string())?;
                started.finish().map_err(|e| e.to_string())?;
                DynamicImage::ImageLuma8(
                    GrayImage::from_raw(width, height, pixels).ok_or_else(too_large)?,
                )
            }
            ColorSpace::JCS_YCbCr | ColorSpace::JCS_RGB => {
                let mut started = image.rgb().map_err(|e| e.to_string())?;
                let pixels: Vec<u8> = started.read_scanlines().map_err(|e| e.to_string())?;
                started.finish().map_err(|e| e.to_string())?;
                DynamicImage::ImageRgb8(
                    RgbImage::from_raw(width, height, pixels).ok_or_else(too_large)?,
                )
            }
            _ => return Ok(None),
        }))
    });
    match decoded {
        Ok(Ok(Some(image))) => Some(Ok(image)),
        Ok(Ok(None)) => None,
        Ok(Err(reason)) => Some(Err(reason)),
        Err(payload) => Some(Err(match payload.downcast::<String>() {
            Ok(reason) => *reason,
            Err(_) => "the JPEG decoder failed".into(),
        })),
    }
}

/// libjpeg's error handling for [`decode`]: an error, or data that ends early, unwinds with the
/// message (a `String`) out of the decoder to its `catch_unwind`; other warnings are ignored.
fn error_manager() -> jpeg_error_mgr {
    // SAFETY: `jpeg_std_error` initialises every field of the zeroed struct (function pointers
    // among them, which may be null until then).
    let mut manager: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { mozjpeg_sys::jpeg_std_error(&mut manager) };
    manager.error_exit = Some(stop);
    manager.emit_message = Some(warning);
    manager
}

/// The text of libjpeg's message `code`, as its table has it (printf parameters unfilled).
fn message(manager: &jpeg_error_mgr, code: c_int) -> String {
    let text = (1..=manager.last_jpeg_message)
        .contains(&code)
        .then(|| {
            // SAFETY: the table has an entry (a C string) for each code up to `last_jpeg_message`.
            unsafe {
                let entry = *manager.jpeg_message_table.add(code as usize);
                (!entry.is_null()).then(|| CStr::from_ptr(entry).to_string_lossy().into_owned())
            }
        })
        .flatten();
    text.unwrap_or_else(|| format!("libjpeg error {code}"))
}

extern "C-unwind" fn stop(cinfo: &mut jpeg_common_struct) {
    // SAFETY: libjpeg calls this with the `err` it was given, `error_manager`'s, alive.
    let manager = unsafe { &*cinfo.err };
    std::panic::resume_unwind(Box::new(message(manager, manager.msg_code)));
}

extern "C-unwind" fn warning(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: as in `stop`.
    let manager = unsafe { &*cinfo.err };
    if level < 0 && manager.msg_code == mozjpeg_sys::JWRN_JPEG_EOF as c_int {
        std::panic::resume_unwind(Box::new(
            "the image file is truncated (its data ends before the image does)".to_string(),
        ));
    }
}

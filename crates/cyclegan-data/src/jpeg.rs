//! JPEG decoding as Pillow does it. Pillow decodes with libjpeg-turbo (its integer "slow"
//! inverse DCT and "fancy" chroma upsampling, the library's defaults); the `image` crate's
//! decoder computes both differently, up to 5 levels apart on photographs. mozjpeg's decoder is
//! libjpeg-turbo's, so decoding through it gives Pillow's pixels exactly (`tests/pil_parity.rs`).
//!
//! Like Pillow, it ignores libjpeg's warnings about damaged data except one: data that ends
//! before the image does is an error, as Pillow's "image file is truncated". Unlike Pillow, it
//! refuses progressive JPEGs of more than [`MAX_SCANS`] scans.

use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{ColorSpace, Decompress};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr};
use std::ffi::CStr;
use std::os::raw::c_int;

/// The most scans read. Each scan of a progressive JPEG passes over the whole image, and a scan
/// that adds nothing takes about 100 bytes: a 300 KB file of 2000 scans of 8000x8000 pixels
/// took 9 s to decode, a few megabytes would take many minutes (what libjpeg-turbo's
/// `TJPARAM_SCANLIMIT` guards against). Encoders write about 10 scans.
const MAX_SCANS: std::os::raw::c_long = 100;

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
        crate::image_io::check_pixels(width, height)?;
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
    // SAFETY: as in `stop`; libjpeg holds no other reference to it while it reports.
    let manager = unsafe { &mut *cinfo.err };
    if level < 0 && manager.msg_code == mozjpeg_sys::JWRN_JPEG_EOF as c_int {
        std::panic::resume_unwind(Box::new(
            "the image file is truncated (its data ends before the image does)".to_string(),
        ));
    }
    // Each scan's start is traced. `num_warnings` counts them: only libjpeg's own
    // `emit_message`, replaced here, uses it.
    if level > 0 && manager.msg_code == mozjpeg_sys::JTRC_SOS as c_int {
        manager.num_warnings += 1;
        if manager.num_warnings > MAX_SCANS {
            std::panic::resume_unwind(Box::new(format!(
                "a progressive JPEG of more than {MAX_SCANS} scans (a damaged or crafted file, \
                 which would take minutes to decode); re-encode the image"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gray progressive JPEG of `width` x `height` pixels: a DC scan, then `ac_scans` AC
    /// scans that each pass over every block and add nothing (end-of-band runs of 32767).
    fn progressive(width: u16, height: u16, ac_scans: usize) -> Vec<u8> {
        fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
            out.extend_from_slice(&[0xff, marker]);
            out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
            out.extend_from_slice(payload);
        }
        let mut out = vec![0xff, 0xd8];
        let mut dqt = vec![0];
        dqt.extend_from_slice(&[1; 64]);
        segment(&mut out, 0xdb, &dqt);
        let mut sof = vec![8];
        sof.extend_from_slice(&height.to_be_bytes());
        sof.extend_from_slice(&width.to_be_bytes());
        sof.extend_from_slice(&[1, 1, 0x11, 0]);
        segment(&mut out, 0xc2, &sof);
        // One 1-bit code each: DC category 0, and AC symbol 0xe0 (an end-of-band run).
        for (class, symbol) in [(0x00, 0x00), (0x10, 0xe0)] {
            let mut dht = vec![class, 1];
            dht.extend_from_slice(&[0; 15]);
            dht.push(symbol);
            segment(&mut out, 0xc4, &dht);
        }
        let blocks = usize::from(width.div_ceil(8)) * usize::from(height.div_ceil(8));
        segment(&mut out, 0xda, &[1, 1, 0x00, 0, 0, 0]);
        out.extend(std::iter::repeat_n(0, blocks.div_ceil(8)));
        // Code 0, then 14 one bits: a run of 2^14 + 16383 blocks; padded with one bits.
        let runs = blocks.div_ceil(32767);
        let mut bits: Vec<bool> = (0..runs)
            .flat_map(|_| std::iter::once(false).chain(std::iter::repeat_n(true, 14)))
            .collect();
        bits.resize(bits.len().div_ceil(8) * 8, true);
        let mut data = Vec::new();
        for byte in bits.chunks(8) {
            let b = byte.iter().fold(0u8, |b, &bit| b << 1 | bit as u8);
            data.push(b);
            if b == 0xff {
                data.push(0);
            }
        }
        for _ in 0..ac_scans {
            segment(&mut out, 0xda, &[1, 1, 0x00, 1, 63, 0]);
            out.extend_from_slice(&data);
        }
        out.extend_from_slice(&[0xff, 0xd9]);
        out
    }

    /// Scans of no data that each pass over the whole image: 2000 of them over 8000x8000
    /// pixels (300 KB) took 9 s to decode, and a larger file minutes.
    #[test]
    fn progressive_jpegs_of_too_many_scans_are_errors() {
        let ok = decode(&progressive(64, 48, MAX_SCANS as usize - 1)).unwrap();
        assert_eq!(ok.unwrap().width(), 64);
        match decode(&progressive(64, 48, MAX_SCANS as usize)) {
            Some(Err(err)) => assert!(err.contains("more than 100 scans"), "{err}"),
            Some(Ok(_)) => panic!("decoded"),
            None => panic!("not decoded as a JPEG"),
        }
    }
}

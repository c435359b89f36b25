//! Telling checkpoint formats apart by their first bytes.

/// The kind of a checkpoint file, decided from its content (never from its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// safetensors: an 8-byte little-endian header length, then a JSON header.
    Safetensors,
    /// `torch.save` of PyTorch >= 1.6: a zip archive holding `data.pkl` and `data/N`.
    PthZip,
    /// `torch.save` of older PyTorch (or `_use_new_zipfile_serialization=False`): pickles
    /// followed by raw storages.
    PthLegacy,
}

impl FileFormat {
    /// Recognises the format of `bytes` (a whole file or at least its first 16 bytes), or
    /// describes what was found instead.
    pub fn sniff(bytes: &[u8]) -> Result<FileFormat, String> {
        if bytes.is_empty() {
            return Err("the file is empty".into());
        }
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            return Ok(FileFormat::PthZip);
        }
        // A pickle: PROTO 2..=5 then LONG1 (the legacy magic number).
        if bytes.len() >= 3 && bytes[0] == 0x80 && (2..=5).contains(&bytes[1]) {
            return Ok(FileFormat::PthLegacy);
        }
        if bytes.len() >= 9 {
            let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
            if n > 1 && bytes[8] == b'{' {
                return Ok(FileFormat::Safetensors);
            }
        }
        if bytes.len() > 262 && &bytes[257..262] == b"ustar" {
            return Err("a tar archive (the torch.save format of PyTorch before 0.1.10, not supported; re-save it with a newer PyTorch)".into());
        }
        Err(describe_start(bytes))
    }
}

fn describe_start(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(16)];
    let text = head
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if text {
        let shown: String = String::from_utf8_lossy(head).escape_default().collect();
        format!("it starts with the text \"{shown}\"")
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("it starts with the bytes {}", hex.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_each_format_and_describes_others() {
        assert_eq!(FileFormat::sniff(b"PK\x03\x04rest"), Ok(FileFormat::PthZip));
        assert_eq!(
            FileFormat::sniff(b"\x80\x02\x8a\x0al"),
            Ok(FileFormat::PthLegacy)
        );
        let mut st = 2u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{}");
        assert_eq!(FileFormat::sniff(&st), Ok(FileFormat::Safetensors));
        let err = FileFormat::sniff(b"<!DOCTYPE html><html>").unwrap_err();
        assert!(err.contains("<!DOCTYPE html>"), "{err}");
        let err = FileFormat::sniff(&[0, 1, 2, 0xff]).unwrap_err();
        assert!(err.contains("00 01 02 ff"), "{err}");
        assert!(FileFormat::sniff(b"").is_err());
    }
}

//! The reference's result page: one row per image with its labelled versions.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Escapes text for HTML.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What [`url_path`] leaves as it is: RFC 3986's unreserved characters, and `/`.
const PATH_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a relative path for an `href` or `src`: every byte of its UTF-8 but the
/// unreserved characters and `/`, so that a file name with `#`, `%`, `?` or a space still links
/// to its file.
pub(crate) fn url_path(path: &str) -> String {
    utf8_percent_encode(path, PATH_KEPT).to_string()
}

/// Writes `dir/index.html` (atomically): a title, then for each row a caption and its images
/// (`(label, path relative to dir)`), each shown `width` pixels wide. The paths are linked
/// percent-encoded (so a `#` or a space in a file name still links); the captions and labels are
/// shown as they are.
pub fn write_index(
    dir: &Path,
    title: &str,
    rows: &[(String, Vec<(String, String)>)],
    width: u32,
) -> io::Result<()> {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif}} td{{text-align:center;padding:4px}} img{{image-rendering:pixelated}}</style>\
         </head><body><h1>{t}</h1>\n",
        t = escape(title)
    );
    for (caption, images) in rows {
        let _ = write!(html, "<h3>{}</h3>\n<table><tr>", escape(caption));
        for (label, src) in images {
            let _ = write!(
                html,
                "<td><a href=\"{s}\"><img src=\"{s}\" width=\"{width}\"></a><br>{l}</td>",
                s = escape(&url_path(src)),
                l = escape(label)
            );
        }
        html.push_str("</tr></table>\n");
    }
    html.push_str("</body></html>\n");
    cyclegan_checkpoint::write_atomic(&dir.join("index.html"), |f| {
        io::Write::write_all(f, html.as_bytes())
    })
}

/// [`write_index`] into `dir`, returning the page's path; a failure names the page.
pub(crate) fn write_page(
    dir: &Path,
    title: &str,
    rows: &[(String, Vec<(String, String)>)],
    width: u32,
) -> Result<std::path::PathBuf, crate::TranslateError> {
    let index = dir.join("index.html");
    write_index(dir, title, rows, width).map_err(|source| crate::TranslateError::Write {
        path: index.clone(),
        source,
    })?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_percent_encoded_and_text_is_shown_as_is() {
        assert_eq!(url_path("images/a-b_c.1~.png"), "images/a-b_c.1~.png");
        assert_eq!(
            url_path("images/a#1 %?&\"é.png"),
            "images/a%231%20%25%3F%26%22%C3%A9.png"
        );
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![(
            "a#1 <b>".to_string(),
            vec![("fake".to_string(), "images/a#1 <b>_fake.png".to_string())],
        )];
        write_index(dir.path(), "t", &rows, 256).unwrap();
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        let link = "images/a%231%20%3Cb%3E_fake.png";
        assert!(
            html.contains(&format!("<a href=\"{link}\"><img src=\"{link}\"")),
            "{html}"
        );
        assert!(html.contains("<h3>a#1 &lt;b&gt;</h3>"), "{html}");
    }
}

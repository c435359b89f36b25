//! The reference's result page: one row per image with its labelled versions.

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

/// Writes `dir/index.html` (atomically): a title, then for each row a caption and its images
/// (`(label, path relative to dir)`), each shown `width` pixels wide.
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
                s = escape(src),
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

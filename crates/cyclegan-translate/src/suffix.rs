//! The reference's `--suffix` (its `BaseOptions.parse`, shared by `train.py` and `test.py`):
//! `opt.name + '_' + opt.suffix.format(**vars(opt))` when the suffix is not empty.

/// `template` with each `{option}` replaced by `value(option)`, written as the reference's
/// Python `str.format` writes the option's value (see [`py_float`], [`py_bool`]). Format
/// specifications (`{lr:.1e}`) are not supported, as in `cyclegan-train`. The error names the
/// template and says what to write instead; `known` lists the options `value` knows, for it.
///
/// ```
/// use cyclegan_translate::expand_suffix;
/// let value = |key: &str| (key == "netG").then(|| "resnet_6blocks".to_string());
/// assert_eq!(expand_suffix("{netG}_x", value, &["netG"]).unwrap(), "resnet_6blocks_x");
/// assert!(expand_suffix("{lr}", value, &["netG"]).unwrap_err().contains("netG"));
/// ```
pub fn expand_suffix(
    template: &str,
    value: impl Fn(&str) -> Option<String>,
    known: &[&str],
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or_else(|| {
            format!("--suffix '{template}': a '{{' without its '}}': close it, as in {{netG}}")
        })?;
        let key = &after[..close];
        out.push_str(&value(key).ok_or_else(|| {
            format!(
                "--suffix '{template}': no option '{key}' to put in its place; write one of {} in braces, without format specifications (e.g. {{netG}}_size{{load_size}})",
                known.join(", ")
            )
        })?);
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A float as Python's `str` writes it: `10.0`, `0.0002`, `1e-05`.
pub fn py_float(v: f64) -> String {
    let magnitude = v.abs();
    if v != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        let text = format!("{v:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        format!("{mantissa}e{sign}{digits:0>2}")
    } else if v.fract() == 0.0 {
        format!("{v:.1}")
    } else {
        v.to_string()
    }
}

/// A bool as Python writes it: `True`, `False`.
pub fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_python_writes_them() {
        for (value, python) in [
            (0.0002, "0.0002"),
            (0.02, "0.02"),
            (1.0, "1.0"),
            (0.5, "0.5"),
            (0.0, "0.0"),
            (1e-5, "1e-05"),
            (2e16, "2e+16"),
            (10.0, "10.0"),
            (1.5e-7, "1.5e-07"),
            (-3.0, "-3.0"),
        ] {
            assert_eq!(py_float(value), python, "{value}");
        }
    }

    #[test]
    fn options_are_put_in_place_and_unknown_ones_named() {
        let value = |key: &str| match key {
            "netG" => Some("unet_256".to_string()),
            "load_size" => Some("256".to_string()),
            _ => None,
        };
        let known = ["netG", "load_size"];
        assert_eq!(
            expand_suffix("{netG}_size{load_size}", value, &known).unwrap(),
            "unet_256_size256"
        );
        assert_eq!(expand_suffix("plain", value, &known).unwrap(), "plain");
        let err = expand_suffix("size{load_size", value, &known).unwrap_err();
        assert!(err.contains("without its"), "{err}");
        let err = expand_suffix("{lambda_A}", value, &known).unwrap_err();
        assert!(
            err.contains("no option 'lambda_A'") && err.contains("netG, load_size"),
            "{err}"
        );
    }
}

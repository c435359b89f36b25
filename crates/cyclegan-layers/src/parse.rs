//! The error of parsing an option's value by name.

/// A name that is none of an option's values (`"resnet_8".parse::<GeneratorArch>()`), from the
/// `FromStr` of this project's option types; its message names the values accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseNameError(String);

impl ParseNameError {
    /// An error with `message`, which says what was given and what is accepted.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for ParseNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseNameError {}

/// For callers whose errors are messages (clap's value parsers, option resolution).
impl From<ParseNameError> for String {
    fn from(e: ParseNameError) -> String {
        e.0
    }
}

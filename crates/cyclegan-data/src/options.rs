//! The data options of the reference (`--preprocess`, `--load_size`, ...), typed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// How images are resized and cropped (the reference's `--preprocess`).
///
/// Serialised, parsed and displayed with the reference's names (`resize_and_crop`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preprocess {
    /// Resize to `load_size` x `load_size` (aspect not kept), then a random `crop_size` crop.
    #[default]
    ResizeAndCrop,
    /// A random `crop_size` crop of the image as it is (an error for smaller images).
    Crop,
    /// Resize the width to `load_size`, the height keeping the aspect but at least `crop_size`.
    ScaleWidth,
    /// [`Preprocess::ScaleWidth`], then a random `crop_size` crop.
    ScaleWidthAndCrop,
    /// Resize each side to the nearest multiple of 4 (Python's `round`, halves to even).
    None,
}

impl Preprocess {
    /// All variants, in the order listed above.
    pub const ALL: [Preprocess; 5] = [
        Preprocess::ResizeAndCrop,
        Preprocess::Crop,
        Preprocess::ScaleWidth,
        Preprocess::ScaleWidthAndCrop,
        Preprocess::None,
    ];

    /// The reference's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Preprocess::ResizeAndCrop => "resize_and_crop",
            Preprocess::Crop => "crop",
            Preprocess::ScaleWidth => "scale_width",
            Preprocess::ScaleWidthAndCrop => "scale_width_and_crop",
            Preprocess::None => "none",
        }
    }

    /// Whether this step ends with a random crop.
    pub fn crops(self) -> bool {
        matches!(
            self,
            Preprocess::ResizeAndCrop | Preprocess::Crop | Preprocess::ScaleWidthAndCrop
        )
    }
}

impl fmt::Display for Preprocess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preprocess {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Preprocess::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            DataError::InvalidOptions(format!(
                "unknown preprocess {s:?}; expected one of resize_and_crop, crop, scale_width, scale_width_and_crop, none"
            ))
        })
    }
}

/// Which folder feeds the generator's input (the reference's `--direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Direction {
    /// Domain A (`{phase}A`) is the input.
    #[default]
    AtoB,
    /// Domain B (`{phase}B`) is the input: batches' `a` come from `{phase}B`.
    BtoA,
}

impl Direction {
    /// The folders of `phase` that hold the input domain and the output domain, in that order:
    /// `("testA", "testB")` for [`Direction::AtoB`] and phase `"test"`, swapped for `BtoA`.
    pub fn folders(self, phase: &str) -> (String, String) {
        let (a, b) = (format!("{phase}A"), format!("{phase}B"));
        match self {
            Direction::AtoB => (a, b),
            Direction::BtoA => (b, a),
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::AtoB => "AtoB",
            Direction::BtoA => "BtoA",
        })
    }
}

impl FromStr for Direction {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "AtoB" => Ok(Direction::AtoB),
            "BtoA" => Ok(Direction::BtoA),
            _ => Err(DataError::InvalidOptions(format!(
                "unknown direction {s:?}; expected AtoB or BtoA"
            ))),
        }
    }
}

/// What is read and how it is transformed; the reference's data options.
///
/// [`Default`] gives the reference's training defaults (`phase` "train", `resize_and_crop`,
/// load 286, crop 256, flips on, 3 channels each way, `AtoB`, shuffled pairing). Missing fields
/// deserialise to those defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DataOptions {
    /// Sub-folder prefix: `train` reads `trainA` and `trainB`.
    pub phase: String,
    /// Resize and crop policy.
    pub preprocess: Preprocess,
    /// Size images are resized to (width for the `scale_width` policies).
    pub load_size: u32,
    /// Side of the square random crop.
    pub crop_size: u32,
    /// Turns off random horizontal flips.
    pub no_flip: bool,
    /// Channels of the generator's input domain: 1 (grayscale) or 3 (RGB).
    pub input_nc: usize,
    /// Channels of the output domain: 1 or 3.
    pub output_nc: usize,
    /// Which folder is the input domain.
    pub direction: Direction,
    /// Pair A\[i\] with B\[i % |B|\] instead of a random B (the loader should then not
    /// shuffle either, as in the reference).
    pub serial_batches: bool,
    /// Keep at most this many images per folder (the first ones in sorted order).
    pub max_dataset_size: Option<usize>,
}

impl Default for DataOptions {
    fn default() -> Self {
        DataOptions {
            phase: "train".into(),
            preprocess: Preprocess::ResizeAndCrop,
            load_size: 286,
            crop_size: 256,
            no_flip: false,
            input_nc: 3,
            output_nc: 3,
            direction: Direction::AtoB,
            serial_batches: false,
            max_dataset_size: None,
        }
    }
}

impl DataOptions {
    /// The reference's test-time settings (`test.py`): phase "test", `load_size` equal to
    /// `crop_size` (256), no flips, serial pairing.
    pub fn reference_test() -> Self {
        DataOptions {
            phase: "test".into(),
            load_size: 256,
            crop_size: 256,
            no_flip: true,
            serial_batches: true,
            ..DataOptions::default()
        }
    }

    /// Checks the options; the dataset constructors call it.
    pub fn validate(&self) -> Result<()> {
        crate::image_io::check_nc(self.input_nc)?;
        crate::image_io::check_nc(self.output_nc)?;
        let bad = |m: String| Err(DataError::InvalidOptions(m));
        if self.phase.is_empty() {
            return bad("phase must not be empty (e.g. \"train\" or \"test\")".into());
        }
        if self.load_size == 0 {
            return bad("load_size must be positive".into());
        }
        if self.crop_size == 0 {
            return bad("crop_size must be positive".into());
        }
        if self.preprocess == Preprocess::ResizeAndCrop && self.crop_size > self.load_size {
            return bad(format!(
                "crop_size {} is larger than load_size {} with resize_and_crop: crop at most the load size, or load larger",
                self.crop_size, self.load_size
            ));
        }
        if self.max_dataset_size == Some(0) {
            return bad("max_dataset_size must be positive".into());
        }
        Ok(())
    }

    /// Channels of the images read from `{phase}A` and `{phase}B`, in that order
    /// (swapped by [`Direction::BtoA`], as in the reference).
    pub(crate) fn folder_channels(&self) -> (usize, usize) {
        match self.direction {
            Direction::AtoB => (self.input_nc, self.output_nc),
            Direction::BtoA => (self.output_nc, self.input_nc),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_strings_and_serde() {
        for p in Preprocess::ALL {
            assert_eq!(p.to_string().parse::<Preprocess>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert_eq!("BtoA".parse::<Direction>().unwrap(), Direction::BtoA);
        assert_eq!(
            Direction::AtoB.folders("test"),
            ("testA".into(), "testB".into())
        );
        assert_eq!(
            Direction::BtoA.folders("train"),
            ("trainB".into(), "trainA".into())
        );
        assert!("resize"
            .parse::<Preprocess>()
            .unwrap_err()
            .to_string()
            .contains("resize_and_crop"));
    }

    #[test]
    fn options_serialise_and_fill_missing_fields_with_defaults() {
        let o = DataOptions {
            load_size: 64,
            crop_size: 64,
            ..DataOptions::default()
        };
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<DataOptions>(&json).unwrap(), o);
        let partial: DataOptions = serde_json::from_str(r#"{"preprocess":"scale_width"}"#).unwrap();
        assert_eq!(partial.preprocess, Preprocess::ScaleWidth);
        assert_eq!(partial.load_size, 286);
    }

    #[test]
    fn validation_explains_itself() {
        let o = DataOptions {
            crop_size: 300,
            ..DataOptions::default()
        };
        assert!(o
            .validate()
            .unwrap_err()
            .to_string()
            .contains("crop_size 300"));
        let o = DataOptions {
            input_nc: 4,
            ..DataOptions::default()
        };
        assert!(o.validate().unwrap_err().to_string().contains("not 4"));
        assert!(DataOptions::default().validate().is_ok());
        assert!(DataOptions::reference_test().validate().is_ok());
    }
}

//! What the reference publishes: its datasets and pretrained generators, and where.

use crate::FetchError;

/// The reference's dataset server (`datasets/download_cyclegan_dataset.sh`); a dataset `NAME`
/// is `NAME.zip` there.
pub const DATASET_BASE_URL: &str = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets";
/// The reference's pretrained generators (`scripts/download_cyclegan_model.sh`); a model
/// `NAME` is `NAME.pth` there.
pub const MODEL_BASE_URL: &str = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models";

/// The reference's CycleGAN datasets, in the order its download script lists them.
pub const DATASETS: &[&str] = &[
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "cityscapes",
    "facades",
    "iphone2dslr_flower",
    "ae_photos",
    "mini",
    "mini_pix2pix",
    "mini_colorization",
];

/// The datasets the reference names but does not serve, and why.
pub const REFUSED_DATASETS: &[(&str, &str)] = &[(
    "cityscapes",
    "the Cityscapes dataset cannot be redistributed for licence reasons. Download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from https://cityscapes-dataset.com yourself and prepare them with the reference's datasets/prepare_cityscapes_dataset.py",
)];

/// The reference's pretrained CycleGAN generators (all resnet_9blocks, instance norm, no
/// dropout).
pub const MODELS: &[&str] = &[
    "apple2orange",
    "orange2apple",
    "summer2winter_yosemite",
    "winter2summer_yosemite",
    "horse2zebra",
    "zebra2horse",
    "monet2photo",
    "style_monet",
    "style_cezanne",
    "style_ukiyoe",
    "style_vangogh",
    "sat2map",
    "map2sat",
    "cityscapes_photo2label",
    "cityscapes_label2photo",
    "facades_photo2label",
    "facades_label2photo",
    "iphone2dslr_flower",
];

/// The folders the archive of dataset `name` must hold (each with files) for it to be
/// accepted: `trainA` and `trainB` for the CycleGAN datasets; none for the three that the
/// reference's script serves for other models and that have other layouts (`ae_photos`, test
/// photos; `mini_pix2pix` and `mini_colorization`, with `train`/`test` folders), which then
/// need only one of the usual split folders.
pub fn required_folders(name: &str) -> &'static [&'static str] {
    match name {
        "ae_photos" | "mini_pix2pix" | "mini_colorization" => &[],
        _ => &["trainA", "trainB"],
    }
}

/// Checks that `name` is a dataset the reference serves.
pub fn check_dataset(name: &str) -> Result<(), FetchError> {
    if let Some((_, reason)) = REFUSED_DATASETS.iter().find(|(n, _)| *n == name) {
        return Err(FetchError::Refused {
            name: name.to_string(),
            reason,
        });
    }
    if DATASETS.contains(&name) {
        Ok(())
    } else {
        Err(FetchError::UnknownName {
            kind: "dataset",
            name: name.to_string(),
            valid: DATASETS.to_vec(),
        })
    }
}

/// Checks that `name` is a pretrained model the reference serves.
pub fn check_model(name: &str) -> Result<(), FetchError> {
    if MODELS.contains(&name) {
        Ok(())
    } else {
        Err(FetchError::UnknownName {
            kind: "model",
            name: name.to_string(),
            valid: MODELS.to_vec(),
        })
    }
}

/// `base/file`, with or without a trailing slash on `base`.
pub fn join_url(base: &str, file: &str) -> String {
    format!("{}/{file}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_against_the_reference() {
        assert!(check_dataset("horse2zebra").is_ok());
        let msg = check_dataset("cityscapes").unwrap_err().to_string();
        assert!(msg.contains("licence"), "{msg}");
        assert!(msg.contains("prepare_cityscapes_dataset.py"), "{msg}");
        let msg = check_dataset("horse2zebr").unwrap_err().to_string();
        assert!(msg.contains("unknown dataset 'horse2zebr'"), "{msg}");
        assert!(
            msg.contains("apple2orange, summer2winter_yosemite"),
            "{msg}"
        );
        assert!(check_model("style_monet").is_ok());
        assert!(check_model("cityscapes_photo2label").is_ok());
        assert!(check_model("horse2zebra.pth").is_err());
        assert_eq!(join_url("http://a/b/", "c.zip"), "http://a/b/c.zip");
        assert_eq!(join_url("http://a/b", "c.zip"), "http://a/b/c.zip");
    }
}

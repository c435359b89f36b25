//! The reference's run folder (`checkpoints/<name>/`): each network saved as
//! `<label>_net_<name>.pth`, with `label` an epoch number, `latest` or `iter_<N>`, and `name`
//! `G_A`, `G_B`, `D_A`, `D_B` (or `G` for a pretrained generator). This project writes the same
//! names with `.safetensors`, and reads either.

use std::path::{Path, PathBuf};

/// The label of the networks a run loads (the reference's `load_suffix`): `iter_<load_iter>`
/// when `load_iter` is above 0, else `epoch` (`latest` or an epoch number).
pub fn checkpoint_label(epoch: &str, load_iter: u64) -> String {
    if load_iter > 0 {
        format!("iter_{load_iter}")
    } else {
        epoch.to_string()
    }
}

/// `<dir>/<label>_net_<name>.safetensors`, the file this project writes for a network.
pub fn network_path(dir: &Path, label: &str, name: &str) -> PathBuf {
    dir.join(format!("{label}_net_{name}.safetensors"))
}

/// The file holding network `name` under `label` in `dir`: this project's `.safetensors`, else
/// the reference's `.pth`; when neither exists, both paths, in the order they were looked for.
pub fn find_network(dir: &Path, label: &str, name: &str) -> Result<PathBuf, [PathBuf; 2]> {
    let tried = [
        network_path(dir, label, name),
        dir.join(format!("{label}_net_{name}.pth")),
    ];
    tried.iter().find(|p| p.is_file()).cloned().ok_or(tried)
}

/// A network file found in a run folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedNetwork {
    /// The part before `_net_`: `latest`, `5`, `iter_5000`...
    pub label: String,
    /// The part after it: `G_A`, `D_B`, `G`...
    pub name: String,
    /// The file.
    pub path: PathBuf,
}

/// The network files (`<label>_net_<name>.safetensors` or `.pth`) in `dir`, by label (epoch
/// numbers numerically, then the others: `2`, `10`, `iter_500`, `latest`), then name; none when
/// `dir` cannot be read.
pub fn saved_networks(dir: &Path) -> Vec<SavedNetwork> {
    let mut found: Vec<SavedNetwork> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let stem = file
                .strip_suffix(".safetensors")
                .or_else(|| file.strip_suffix(".pth"))?;
            let (label, name) = stem.split_once("_net_")?;
            Some(SavedNetwork {
                label: label.to_string(),
                name: name.to_string(),
                path: entry.path(),
            })
        })
        .collect();
    found.sort_by(|a, b| {
        crate::detect::natural_cmp(&a.label, &b.label)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.path.cmp(&b.path))
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_files_follow_the_reference_layout() {
        assert_eq!(checkpoint_label("latest", 0), "latest");
        assert_eq!(checkpoint_label("5", 0), "5");
        assert_eq!(checkpoint_label("latest", 5000), "iter_5000");

        let dir = tempfile::tempdir().unwrap();
        for file in [
            "latest_net_G_A.safetensors",
            "latest_net_G_A.pth",
            "10_net_G_A.pth",
            "2_net_D_B.safetensors",
            "iter_500_net_G.pth",
            "latest_train_state.safetensors",
            "loss_log.txt",
        ] {
            std::fs::write(dir.path().join(file), b"").unwrap();
        }
        // This project's file first, then the reference's, then neither.
        let found = find_network(dir.path(), "latest", "G_A").unwrap();
        assert!(found.ends_with("latest_net_G_A.safetensors"));
        let found = find_network(dir.path(), "10", "G_A").unwrap();
        assert!(found.ends_with("10_net_G_A.pth"));
        let [first, second] = find_network(dir.path(), "3", "G_B").unwrap_err();
        assert!(first.ends_with("3_net_G_B.safetensors") && second.ends_with("3_net_G_B.pth"));

        let saved: Vec<(String, String)> = saved_networks(dir.path())
            .into_iter()
            .map(|n| (n.label, n.name))
            .collect();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(l, n)| (l.to_string(), n.to_string()))
                .collect()
        };
        assert_eq!(
            saved,
            pairs(&[
                ("2", "D_B"),
                ("10", "G_A"),
                ("iter_500", "G"),
                ("latest", "G_A"),
                ("latest", "G_A"),
            ])
        );
        assert!(saved_networks(&dir.path().join("missing")).is_empty());
    }
}

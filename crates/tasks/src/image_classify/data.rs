//! Labelled images: a folder with one subfolder per class (`DIR/cat/1.png`), or JSON Lines of
//! `{"image": PATH, "label": NAME}` (a path relative to the JSONL file's folder; an integer
//! label is its decimal name).

use crate::{Result, TaskError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tasklm_data::DataError;

/// The file extensions read as images.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// One image and, for training and evaluation, its label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageExample {
    pub image: PathBuf,
    pub label: Option<String>,
}

/// Reads labelled images from a class folder or a JSONL file.
pub fn read_examples(path: &Path) -> Result<Vec<ImageExample>> {
    let out = if path.is_dir() {
        read_folder(path)?
    } else {
        read_jsonl(path)?
    };
    if out.is_empty() {
        return Err(TaskError::File {
            path: path.into(),
            msg: "no images: expected one subfolder of .png/.jpg images per class, or JSONL \
                  of {\"image\", \"label\"}"
                .into(),
        });
    }
    Ok(out)
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let err = |e: std::io::Error| TaskError::File {
        path: dir.into(),
        msg: e.to_string(),
    };
    let mut v = std::fs::read_dir(dir)
        .map_err(err)?
        .map(|e| e.map(|e| e.path()).map_err(err))
        .collect::<Result<Vec<_>>>()?;
    v.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'))
    });
    v.sort();
    Ok(v)
}

/// `DIR/CLASS/IMAGE`: each subfolder is a class, its images in name order.
fn read_folder(dir: &Path) -> Result<Vec<ImageExample>> {
    let mut out = Vec::new();
    for class in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let label = class
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| TaskError::File {
                path: class.clone(),
                msg: "a class folder's name must be UTF-8".into(),
            })?
            .to_string();
        for image in sorted_entries(&class)?.into_iter().filter(|p| is_image(p)) {
            out.push(ImageExample {
                image,
                label: Some(label.clone()),
            });
        }
    }
    Ok(out)
}

fn read_jsonl(path: &Path) -> Result<Vec<ImageExample>> {
    let base = path.parent().unwrap_or(Path::new(""));
    tasklm_data::jsonl::read_jsonl(path)?
        .into_iter()
        .map(|(line, v)| {
            let image = v
                .get("image")
                .and_then(Value::as_str)
                .ok_or_else(|| DataError::record(path, line, "expected a string field `image`"))?;
            let label = match v.get("label") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Some(n.to_string()),
                Some(other) => {
                    return Err(DataError::record(
                        path,
                        line,
                        format!("`label` must be a string or an integer, got {other}"),
                    )
                    .into())
                }
            };
            Ok(ImageExample {
                image: base.join(image),
                label,
            })
        })
        .collect()
}

/// The sorted label set of `examples` (numerically when every label is an integer); two at
/// least.
pub fn labels_of(examples: &[ImageExample]) -> Result<Vec<String>> {
    crate::classify::encoder::sorted_labels(
        examples.iter().filter_map(|e| e.label.clone()),
        "an image classifier",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_jsonl_give_the_same_examples() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        for (class, file) in [("dog", "b.png"), ("cat", "a.jpg"), ("dog", "a.PNG")] {
            std::fs::create_dir_all(tmp.path().join(class))?;
            std::fs::write(tmp.path().join(class).join(file), b"x")?;
        }
        std::fs::write(tmp.path().join("cat").join("notes.txt"), b"x")?;
        let ex = read_examples(tmp.path())?;
        let got: Vec<(String, String)> = ex
            .iter()
            .map(|e| {
                let rel = e.image.strip_prefix(tmp.path()).unwrap_or(&e.image);
                (
                    rel.display().to_string(),
                    e.label.clone().unwrap_or_default(),
                )
            })
            .collect();
        let want = [
            ("cat/a.jpg", "cat"),
            ("dog/a.PNG", "dog"),
            ("dog/b.png", "dog"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(labels_of(&ex)?, vec!["cat", "dog"]);

        let jsonl = tmp.path().join("d.jsonl");
        std::fs::write(
            &jsonl,
            "{\"image\": \"cat/a.jpg\", \"label\": \"cat\"}\n{\"image\": \"x.png\", \"label\": 10}\n{\"image\": \"y.png\", \"label\": 9}\n",
        )?;
        let ex = read_examples(&jsonl)?;
        assert_eq!(ex[0].image, tmp.path().join("cat/a.jpg"));
        assert_eq!(ex[1].label.as_deref(), Some("10"));
        std::fs::write(&jsonl, "{\"image\": \"x.png\", \"label\": 1}\n{\"image\": \"y.png\", \"label\": 10}\n{\"image\": \"z.png\", \"label\": 9}\n")?;
        assert_eq!(labels_of(&read_examples(&jsonl)?)?, vec!["1", "9", "10"]);
        std::fs::write(&jsonl, "{\"image\": \"x.png\", \"label\": [1]}\n")?;
        let err = read_examples(&jsonl).err().map(|e| e.to_string());
        assert!(
            err.is_some_and(|e| e.contains("d.jsonl:1: `label` must be a string or an integer"))
        );
        let empty = tempfile::tempdir()?;
        assert!(read_examples(empty.path())
            .err()
            .is_some_and(|e| e.to_string().contains("no images")));
        Ok(())
    }
}

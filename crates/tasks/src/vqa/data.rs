//! Visual question answering records, in two layouts:
//! - easy-VQA's: a JSON file of `[question, answer, image_id]` triples (`questions.json`), the
//!   images at `IMAGES/{image_id}.png` (IMAGES: `images/` beside the file unless given);
//!   a directory holding `questions.json` and `images/` is read the same way;
//! - JSON Lines of `{"image": PATH, "question": TEXT[, "answer": TEXT]}`, paths relative to
//!   the file's folder.
//!
//! Question types follow from the answer: yes/no, a colour word, a shape word, else other.

use crate::{Result, TaskError};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tasklm_data::DataError;

/// One question about one image, with its answer for training and evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VqaExample {
    pub image: PathBuf,
    pub question: String,
    pub answer: Option<String>,
}

/// What a question asks, read from its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuestionType {
    YesNo,
    Colour,
    Shape,
    Other,
}

/// Colour words (easy-VQA's and the other basic colour terms).
const COLOURS: [&str; 14] = [
    "black", "blue", "brown", "cyan", "gray", "green", "grey", "magenta", "orange", "pink",
    "purple", "red", "teal", "yellow",
];
/// Shape words.
const SHAPES: [&str; 9] = [
    "circle",
    "cross",
    "diamond",
    "hexagon",
    "oval",
    "rectangle",
    "square",
    "star",
    "triangle",
];

impl QuestionType {
    pub fn of_answer(answer: &str) -> Self {
        let a = answer.trim().to_lowercase();
        if a == "yes" || a == "no" {
            Self::YesNo
        } else if COLOURS.contains(&a.as_str()) {
            Self::Colour
        } else if SHAPES.contains(&a.as_str()) {
            Self::Shape
        } else {
            Self::Other
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::YesNo => "yes/no",
            Self::Colour => "colour",
            Self::Shape => "shape",
            Self::Other => "other",
        }
    }
}

/// Reads VQA records from `path` (see the module's text); `images` overrides easy-VQA's
/// image folder. Every image must exist: a missing one is an error naming its record.
pub fn read_vqa(path: &Path, images: Option<&Path>) -> Result<Vec<VqaExample>> {
    let (file, default_images) = if path.is_dir() {
        (path.join("questions.json"), path.join("images"))
    } else {
        let beside = path.parent().unwrap_or(Path::new("")).join("images");
        (path.to_path_buf(), beside)
    };
    let is_jsonl = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let out = if is_jsonl {
        read_jsonl(&file)?
    } else {
        read_triples(&file, images.unwrap_or(&default_images))?
    };
    if out.is_empty() {
        return Err(TaskError::File {
            path: file,
            msg: "no questions: expected [question, answer, image_id] triples or JSONL of \
                  {\"image\", \"question\", \"answer\"}"
                .into(),
        });
    }
    Ok(out)
}

fn missing_image(file: &Path, what: &str, image: &Path) -> TaskError {
    TaskError::File {
        path: file.into(),
        msg: format!("{what}: image {} does not exist", image.display()),
    }
}

fn read_triples(file: &Path, images: &Path) -> Result<Vec<VqaExample>> {
    let text = std::fs::read_to_string(file).map_err(|e| TaskError::File {
        path: file.into(),
        msg: e.to_string(),
    })?;
    let json: Value = serde_json::from_str(&text).map_err(|e| TaskError::File {
        path: file.into(),
        msg: format!("invalid JSON: {e}"),
    })?;
    let Value::Array(items) = json else {
        return Err(TaskError::File {
            path: file.into(),
            msg: "expected a list of [question, answer, image_id] triples".into(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let bad = |m: &str| TaskError::File {
                path: file.into(),
                msg: format!("entry {i}: {m}, found {item}"),
            };
            let (question, answer, id) = match item.as_array().map(Vec::as_slice) {
                Some([q, a, id]) => (q, a, id),
                _ => return Err(bad("expected [question, answer, image_id]")),
            };
            let question = question
                .as_str()
                .ok_or_else(|| bad("the question must be a string"))?;
            let answer = answer
                .as_str()
                .ok_or_else(|| bad("the answer must be a string"))?;
            let id = match id {
                Value::Number(n) if n.is_u64() => n.to_string(),
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => return Err(bad("the image id must be a non-negative integer or a name")),
            };
            let image = images.join(format!("{id}.png"));
            if !image.is_file() {
                return Err(missing_image(file, &format!("entry {i}"), &image));
            }
            Ok(VqaExample {
                image,
                question: question.to_string(),
                answer: Some(answer.to_string()),
            })
        })
        .collect()
}

fn read_jsonl(file: &Path) -> Result<Vec<VqaExample>> {
    let base = file.parent().unwrap_or(Path::new(""));
    tasklm_data::jsonl::read_jsonl(file)?
        .into_iter()
        .map(|(line, v)| {
            let text = |key: &str| -> Result<String> {
                match v.get(key) {
                    Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                    _ => Err(DataError::record(
                        file,
                        line,
                        format!("expected a non-empty string field `{key}`"),
                    )
                    .into()),
                }
            };
            let image = base.join(text("image")?);
            if !image.is_file() {
                return Err(missing_image(file, &format!("line {line}"), &image));
            }
            let answer = match v.get("answer") {
                None | Some(Value::Null) => None,
                Some(_) => Some(text("answer")?),
            };
            Ok(VqaExample {
                image,
                question: text("question")?,
                answer,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(dir: &Path, name: &str) {
        let img = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 10, 10]));
        img.save(dir.join(name)).unwrap();
    }

    #[test]
    fn easy_vqa_triples_and_jsonl_read_alike() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("images")).unwrap();
        png(&d.path().join("images"), "0.png");
        png(&d.path().join("images"), "7.png");
        std::fs::write(
            d.path().join("questions.json"),
            r#"[["what color is the shape?", "red", 0], ["is there a circle?", "no", 7]]"#,
        )
        .unwrap();
        let by_dir = read_vqa(d.path(), None).unwrap();
        let by_file = read_vqa(&d.path().join("questions.json"), None).unwrap();
        assert_eq!(by_dir, by_file);
        assert_eq!(by_dir.len(), 2);
        assert_eq!(by_dir[1].image, d.path().join("images/7.png"));
        assert_eq!(by_dir[0].answer.as_deref(), Some("red"));

        std::fs::write(
            d.path().join("q.jsonl"),
            "{\"image\": \"images/0.png\", \"question\": \"what shape?\", \"answer\": \"circle\"}\n\
             {\"image\": \"images/7.png\", \"question\": \"what color?\"}\n",
        )
        .unwrap();
        let j = read_vqa(&d.path().join("q.jsonl"), None).unwrap();
        assert_eq!(j[0].image, d.path().join("images/0.png"));
        assert_eq!(j[1].answer, None);
    }

    #[test]
    fn bad_records_name_their_place() {
        let d = tempfile::tempdir().unwrap();
        let q = d.path().join("questions.json");
        std::fs::write(&q, r#"[["what color?", "red", 3]]"#).unwrap();
        let e = read_vqa(&q, None).unwrap_err().to_string();
        assert!(
            e.contains("questions.json") && e.contains("entry 0") && e.contains("3.png"),
            "{e}"
        );
        std::fs::write(&q, r#"[["what color?", "red"]]"#).unwrap();
        let e = read_vqa(&q, None).unwrap_err().to_string();
        assert!(
            e.contains("entry 0: expected [question, answer, image_id]"),
            "{e}"
        );
        std::fs::write(&q, "[]").unwrap();
        let e = read_vqa(&q, None).unwrap_err().to_string();
        assert!(e.contains("no questions"), "{e}");
        let j = d.path().join("q.jsonl");
        std::fs::write(&j, "{\"image\": \"x.png\"}\n").unwrap();
        png(d.path(), "x.png");
        let e = read_vqa(&j, None).unwrap_err().to_string();
        assert!(e.contains("q.jsonl") && e.contains("`question`"), "{e}");
    }

    #[test]
    fn question_types_follow_from_the_answer() {
        assert_eq!(QuestionType::of_answer("Yes"), QuestionType::YesNo);
        assert_eq!(QuestionType::of_answer("teal"), QuestionType::Colour);
        assert_eq!(QuestionType::of_answer("triangle"), QuestionType::Shape);
        assert_eq!(QuestionType::of_answer("three"), QuestionType::Other);
        assert_eq!(QuestionType::Colour.name(), "colour");
    }
}

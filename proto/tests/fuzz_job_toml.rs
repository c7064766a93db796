//! job.toml comes from users and, through SubmitJob, from the network: no text may panic the
//! parser, an error always names its origin, a bad value or unknown key names the key, and a job
//! that is accepted survives the TOML round trip it takes to reach the workers.

#[path = "../../fuzz/proptest_support.rs"]
mod fuzz_support;

use facetrain_proto::job::JobSpec;
use proptest::prelude::*;
use toml::Value;

const ORIGIN: &str = "job.toml";

/// Up to a dozen `key = value`-shaped lines from TOML's punctuation: reaches the parser's corners
/// far more often than arbitrary text.
const TOMLISH_LINES: &str = "([a-z_.\\[\\]]{0,12} ?= ?[-+0-9a-z_\"'.\\[\\]{},: ]{0,16}\n){0,12}";

/// A valid job that spells out every key, each name once, so a key names its line and "not one
/// of these" means "unknown". One worker and two conv layers keep cross-key rules
/// (`workers.count <= batch_size`, `image_size >> layers > 0`) from blaming another key.
const VALID_JOB: &str = r#"
name = "fuzz"
priority = 3

[dataset]
train = "data/train.csv"
validate = "s3://bucket/data/validate.csv"
num_classes = 5
on_bad_row = "skip"
allow_outside_paths = false

[model]
image_size = 32
conv_channels = [8, 16]
kernel_size = 3
fc_units = [32]
keep_prob = 0.7
init = "he_normal"

[training]
batch_size = 20
learning_rate = 1e-4
max_steps = 20
target_accuracy = 0.9
eval_every = 5
seed = 7

[augment]
flip = true
brightness = false
contrast = true
hue = false
saturation = true

[workers]
count = 1
min_count = 1
backend = "flex"
device = "cpu"
reduction = "ring"
gradient_dtype = "bf16"

[checkpoint]
dir = "checkpoints"
every = 10
keep = 2
"#;

fn keys() -> Vec<&'static str> {
    VALID_JOB.lines().filter_map(|line| line.split_once(" = ").map(|(key, _)| key)).collect()
}

/// The line index after which a key goes in each section; `None` for the top level.
fn sections() -> Vec<(Option<&'static str>, usize)> {
    let headers = VALID_JOB.lines().enumerate().filter(|(_, line)| line.starts_with('['));
    std::iter::once((None, 0)).chain(headers.map(|(index, line)| (Some(line), index))).collect()
}

/// The valid job with the line of `key` replaced by `key = value` (TOML's inline form, as a
/// user writes it).
fn with_value(key: &str, value: &Value) -> String {
    let prefix = format!("{key} = ");
    let lines =
        VALID_JOB.lines().map(|line| if line.starts_with(&prefix) { format!("{prefix}{value}") } else { line.into() });
    lines.collect::<Vec<_>>().join("\n")
}

/// Parses, checks the properties every outcome must have, and returns the error text if any.
fn parse_checked(text: &str) -> Result<Option<String>, TestCaseError> {
    match JobSpec::parse(text, ORIGIN) {
        Ok(spec) => {
            let again = JobSpec::parse(&spec.to_toml(), "round trip");
            prop_assert_eq!(again.as_ref().ok(), Some(&spec), "accepted job does not round-trip: {:?}", again);
            Ok(None)
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(message.starts_with("invalid job: job.toml: "), "error without origin: {message}");
            Ok(Some(message))
        }
    }
}

/// Values a user might plausibly write, so that mutations are often accepted too.
fn plausible_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..2000).prop_map(Value::Integer),
        prop::sample::select(vec![0.0, 0.5, 1.0, 1.5, -1.0, 1e-3, f64::NAN, f64::INFINITY]).prop_map(Value::Float),
        prop::sample::select(vec![
            "",
            "cpu",
            "cuda:1",
            "cuda:x",
            "tch",
            "coordinator",
            "f32",
            "fail",
            "truncated_normal"
        ])
        .prop_map(|s| Value::String(s.into())),
        proptest::collection::vec((0i64..64).prop_map(Value::Integer), 0..12).prop_map(Value::Array),
        any::<bool>().prop_map(Value::Boolean),
    ]
}

/// Any TOML value, nested a little.
fn arbitrary_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Integer),
        any::<f64>().prop_map(Value::Float),
        any::<String>().prop_map(Value::String),
        any::<bool>().prop_map(Value::Boolean),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|map| Value::Table(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(fuzz_support::config(256))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        parse_checked(&text)?;
    }

    #[test]
    fn arbitrary_tomlish_text_never_panics(text in TOMLISH_LINES) {
        parse_checked(&text)?;
    }

    #[test]
    fn a_changed_value_is_accepted_or_its_key_is_named(
        key in prop::sample::select(keys()),
        value in prop_oneof![plausible_value(), arbitrary_value()],
    ) {
        if let Some(message) = parse_checked(&with_value(key, &value))? {
            prop_assert!(message.contains(key), "`{key} = {value}` refused without naming the key: {message}");
        }
    }

    #[test]
    fn an_unknown_key_is_named(
        (section, after) in prop::sample::select(sections()),
        key in "[a-z][a-z_]{0,11}",
        value in plausible_value(),
    ) {
        prop_assume!(!keys().contains(&key.as_str()) && !VALID_JOB.contains(&format!("[{key}]")));
        let mut lines: Vec<String> = VALID_JOB.lines().map(str::to_string).collect();
        lines.insert(after + 1, format!("{key} = {value}"));
        let message = parse_checked(&lines.join("\n"))?;
        let named = message.as_deref().is_some_and(|m| m.contains(&format!("unknown field `{key}`")));
        prop_assert!(named, "`{key}` in {section:?}: {message:?}");
    }

    /// Line-level damage of the kind an editor or a bad merge does: drop, repeat or replace a line.
    #[test]
    fn damaged_valid_files_never_panic(
        line in 0usize..64,
        action in 0u8..3,
        replacement in "[ -~]{0,40}",
    ) {
        let mut lines: Vec<String> = VALID_JOB.lines().map(str::to_string).collect();
        let line = line % lines.len();
        match action {
            0 => { lines.remove(line); }
            1 => lines.insert(line, lines[line].clone()),
            _ => lines[line] = replacement,
        }
        parse_checked(&lines.join("\n"))?;
    }
}

#[test]
fn the_valid_job_is_valid() {
    JobSpec::parse(VALID_JOB, ORIGIN).unwrap();
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let text = format!("name = {}1{}", open.repeat(100_000), close.repeat(100_000));
        let message = parse_checked(&text).unwrap().expect("refused");
        assert!(message.contains("name") || message.contains("line 1"), "{message}");
    }
}

#[test]
fn corpus_replays_without_panics() {
    for (name, bytes) in fuzz_support::corpus("job_toml") {
        let text = String::from_utf8_lossy(&bytes);
        parse_checked(&text).unwrap_or_else(|e| panic!("corpus file {name}: {e}"));
    }
}

proptest! {
    /// Model sizes come from job files and checkpoints: any sizes that parse can be sized without
    /// overflow or panic, the estimate grows with every dimension, and the check refuses exactly
    /// what is over the limit, naming the parameter count.
    #[test]
    fn any_model_spec_is_sized_without_overflow(
        image_size in 8usize..=1024,
        conv_channels in proptest::collection::vec(1usize..usize::MAX / 4, 1..4),
        fc_units in proptest::collection::vec(1usize..usize::MAX / 4, 0..4),
        kernel_size in (0usize..6).prop_map(|k| 2 * k + 1),
        classes in 2usize..2_000_000,
        batch in 1usize..65536,
        limit in 1u64..u64::MAX,
    ) {
        let model = facetrain_proto::job::ModelSpec { image_size, conv_channels, kernel_size, fc_units, ..Default::default() };
        let size = model.size(classes, batch);
        prop_assert!(size.parameters > 0 && size.training_bytes >= size.parameters);
        prop_assert!(model.size(classes + 1, batch).parameters >= size.parameters);
        prop_assert!(model.size(classes, batch + 1).training_bytes >= size.training_bytes);
        match facetrain_proto::job::check_model_fits(&model, classes, batch, limit) {
            Ok(fits) => prop_assert!(fits.training_bytes <= limit),
            Err(e) => {
                prop_assert!(size.training_bytes > limit);
                prop_assert!(e.to_string().contains(&size.parameters.to_string()), "{e}");
            }
        }
    }
}

/// The tutorial's model: the estimate's parameter count is the model's (checked against burn's
/// count in worker/tests), and its training memory is well inside a small machine.
#[test]
fn the_tutorial_model_is_sized_as_expected() {
    let size = facetrain_proto::job::ModelSpec::default().size(5, 100);
    assert_eq!(size.parameters, 2_987_685);
    assert!(size.training_bytes < 1 << 30, "{size:?}");
}

/// Found by the property above: channel counts near `usize::MAX / 4` with a kernel of 11
/// overflowed even u128 arithmetic (a panic in debug builds, a wrapped small size in release).
#[test]
fn sizes_beyond_u128_saturate_instead_of_overflowing() {
    let model = facetrain_proto::job::ModelSpec {
        conv_channels: vec![usize::MAX / 4, usize::MAX / 4],
        kernel_size: 11,
        ..Default::default()
    };
    let size = model.size(5, 100);
    assert_eq!((size.parameters, size.training_bytes), (u64::MAX, u64::MAX));
    assert!(facetrain_proto::job::check_model_fits(&model, 5, 100, u64::MAX - 1).is_err());
}

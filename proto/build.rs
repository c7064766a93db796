//! Compiles the protos with protox (pure Rust), so no `protoc` is needed anywhere.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/facetrain/v1/jobs.proto", "proto/facetrain/internal/v1/workers.proto"];
    let descriptors = protox::compile(files, ["proto"])?;
    let descriptor_path = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("facetrain_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    Ok(())
}

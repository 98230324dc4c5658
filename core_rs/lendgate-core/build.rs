//! Compiles the public contract (`proto/lendgate/v1/*.proto`) into a descriptor set that
//! is embedded in the crate, so the core decodes requests and encodes responses itself.
//! protox is a pure-Rust protobuf compiler: no `protoc` is needed to build.

use prost::Message;
use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../../proto");
    let package_dir = proto_root.join("lendgate/v1");
    println!("cargo:rerun-if-changed={}", package_dir.display());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&package_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    let descriptors = protox::compile(&files, [&proto_root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("lendgate_v1_descriptors.bin");
    std::fs::write(out, descriptors.encode_to_vec())?;
    Ok(())
}

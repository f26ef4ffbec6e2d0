//! The README's example crate is `examples/readme.rs`, which `cargo test` builds and whose suite's
//! tests it runs (against the embedded demo server): this keeps the two the same, so that the
//! README's example is known to compile and pass as written.

#[test]
fn the_readme_example_is_examples_readme_rs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let start = readme
        .find("`src/main.rs`:\n\n```rust\n")
        .expect("the README's src/main.rs block")
        + "`src/main.rs`:\n\n```rust\n".len();
    let end = start + readme[start..].find("```\n").expect("end of the block");
    let block = &readme[start..end];
    let example = std::fs::read_to_string(root.join("examples/readme.rs")).expect("example");
    assert!(
        example.ends_with(block),
        "examples/readme.rs no longer holds the README's example: copy the README's src/main.rs block into it"
    );
}

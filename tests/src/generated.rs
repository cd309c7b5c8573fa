//! A generated repository shaped like a large project's, for the tool tests and the search
//! bench: `tracked` source files under `src/`, `ignored` files under `node_modules/` (in
//! `.gitignore`, with needles of their own that must not be found), a 5 MB one-line minified
//! file, a binary, and a symlink out of the tree.

use std::path::Path;

/// Five needles and the one file each stands in (the first, a quarter, half, three quarters
/// and the last of the tracked files), once each.
pub struct Needles(pub Vec<(String, String)>);

/// The tracked files' paths in the order they were made (sorted order too).
fn source_path(i: usize) -> String {
    format!("src/m{:04}/f{:03}.rs", i / 100, i % 100)
}

/// Writes the tree under `root` (an empty directory): `tracked` files are what `list_files`
/// must count (plus `.gitignore`, `assets/app.min.js`, `assets/logo.bin`).
pub fn write_tree(root: &Path, tracked: usize, ignored: usize) -> Needles {
    let positions = [0, tracked / 4, tracked / 2, 3 * tracked / 4, tracked - 1];
    let needles: Vec<(String, String)> = positions
        .iter()
        .enumerate()
        .map(|(k, i)| (format!("NEEDLE_{k}_x7q"), source_path(*i)))
        .collect();
    let write = |rel: &str, content: &[u8]| {
        let path = root.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("dir");
        }
        std::fs::write(path, content).expect("write");
    };
    for i in 0..tracked {
        let path = source_path(i);
        let mut text = format!("// module {i}\npub fn f{i}(x: u32) -> u32 {{\n    x + {i}\n}}\n");
        for (needle, file) in &needles {
            if *file == path {
                text.push_str(&format!("// {needle}\n"));
            }
        }
        write(&path, text.as_bytes());
    }
    write(".gitignore", b"node_modules/\ntarget/\n");
    for j in 0..ignored {
        write(
            &format!("node_modules/p{:04}/index{:02}.js", j / 100, j % 100),
            format!("module.exports = '{}';\n", needles[j % 5].0).as_bytes(),
        );
    }
    // One line of 5 MB with one match far inside it, tracked.
    let mut minified = "var a=1;".repeat(5 * 1024 * 1024 / 8);
    minified.insert_str(minified.len() / 2, "/*MINIFIED_NEEDLE*/");
    write("assets/app.min.js", minified.as_bytes());
    write("target/app.min.js", minified.as_bytes());
    write("assets/logo.bin", b"\x89PNG\x00\x01BINARY_NEEDLE\x00");
    std::os::unix::fs::symlink("/etc", root.join("outside")).expect("symlink");
    Needles(needles)
}

/// How many files [`write_tree`] makes that a walk as git sees it lists.
pub fn listed_files(tracked: usize) -> usize {
    tracked + 3
}

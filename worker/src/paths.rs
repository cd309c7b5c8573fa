//! The path rules every tool and command argument is judged by: relative to the checkout,
//! judged on the real path (links resolved), never outside it and never in a git directory.
//! A leaf: the tools, the commands and the argument policy all use it.

use std::path::{Component, Path, PathBuf};

/// Resolves a model-given relative path inside `root` (canonical), or says why not. Judged on the
/// real path: the deepest part that exists with its links resolved, plus the rest. That
/// real path must be under the root and not in any `.git` (the worker keeps its git
/// directory outside the checkout, so this is a second wall: a nested repository's `.git`,
/// or a checkout laid out by other means). The real path is what the tool then uses.
pub fn confine(root: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = Path::new(rel);
    if path.is_absolute() {
        return Err(format!(
            "{rel:?}: absolute paths are not allowed; use a path relative to the repository root"
        ));
    }
    for component in path.components() {
        match component {
            Component::Normal(c) if c.eq_ignore_ascii_case(".git") => {
                return Err(format!("{rel:?}: the .git directory is off limits"));
            }
            Component::Normal(_) | Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{rel:?}: '..' is not allowed; stay inside the repository"
                ));
            }
        }
    }
    let joined = root.join(path);
    // The deepest part that exists (a dangling symlink counts) must resolve inside root.
    let mut existing = joined.clone();
    while existing.symlink_metadata().is_err() {
        if !existing.pop() {
            break;
        }
    }
    let resolved = existing
        .canonicalize()
        .map_err(|_| format!("{rel:?}: cannot be resolved (a broken link?)"))?;
    // (Joining an empty rest would add a trailing '/', which a file's path must not have.)
    let real = match joined.strip_prefix(&existing) {
        Ok(rest) if !rest.as_os_str().is_empty() => resolved.join(rest),
        _ => resolved,
    };
    let Ok(inside) = real.strip_prefix(root) else {
        return Err(format!("{rel:?}: leads outside the repository (symlink)"));
    };
    if inside
        .components()
        .any(|c| c.as_os_str().eq_ignore_ascii_case(".git"))
    {
        return Err(format!(
            "{rel:?}: leads into a .git directory (symlink), which is off limits"
        ));
    }
    Ok(real)
}

/// No argument may name a path outside the checkout: the whole argument, every part between
/// `=` signs, and the path of a `file://`/`fileb://` value are each checked; a part that exists
/// is judged on its real path (links resolved), as the file tools judge theirs.
pub fn check_argument(arg: &str, root: &Path) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "argument {arg:?} names a path outside the working directory{why}; use paths relative to it"
        ))
    };
    for piece in arg.split('=') {
        let piece = piece
            .strip_prefix("fileb://")
            .or_else(|| piece.strip_prefix("file://"))
            .unwrap_or(piece);
        if piece.starts_with('/') || piece.starts_with('~') {
            return refuse("");
        }
        let path = Path::new(piece);
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return refuse("");
        }
        if path
            .components()
            .any(|c| c.as_os_str().eq_ignore_ascii_case(".git"))
        {
            return refuse(" (a git directory)");
        }
        // An existing relative path (a committed symlink, say) must stay inside.
        if !piece.is_empty()
            && root.join(path).symlink_metadata().is_ok()
            && confine(root, piece).is_err()
        {
            return refuse(" (through a link)");
        }
    }
    Ok(())
}

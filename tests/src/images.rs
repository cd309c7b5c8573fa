//! The release artifacts of `bash scripts/images.sh`: the static binaries in `target/dist` and
//! the OCI archives in `target/images`, and podman set up the way that script set it up (its
//! storage in `target/containers`, the runtime flags that work on this machine kind).
//! Everything fails loudly, saying how to make what is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The platforms the images and binaries are built for, as OCI names them.
pub const PLATFORMS: [&str; 2] = ["amd64", "arm64"];

/// The images, by their short name.
pub const IMAGES: [&str; 4] = ["bridge", "worker", "worker-devops", "worker-coder"];

/// The images held to the size goal (the devops worker carries Python and the AWS CLI).
pub const SMALL_IMAGES: [&str; 2] = ["bridge", "worker"];

const HOW: &str = "run `bash scripts/images.sh` first (it builds the binaries and images)";

/// A file `scripts/images.sh` makes, asserting it is there.
fn artifact(relative: &str) -> PathBuf {
    let path = crate::workspace_root().join(relative);
    assert!(path.exists(), "{} is missing: {HOW}", path.display());
    path
}

/// A static binary for `platform` (`amd64` or `arm64`).
pub fn dist_binary(platform: &str, name: &str) -> PathBuf {
    artifact(&format!("target/dist/linux-{platform}/{name}"))
}

/// The OCI archive of `image` (`bridge` or `worker`) for `platform`.
pub fn archive(image: &str, platform: &str) -> PathBuf {
    artifact(&format!(
        "target/images/openclaw-{image}-{platform}.oci.tar"
    ))
}

/// A program the image tests need, found or failed on with the package to install.
pub fn program(name: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} is not installed: `apt-get install {package}` (scripts/tools.sh does it with \
             OPENCLAW_IMAGE_TOOLS=1)"
        )
    })
}

/// `podman` with the storage and engine settings `scripts/images.sh` wrote.
pub fn podman() -> Command {
    let conf = artifact("target/containers/containers.conf");
    let storage = artifact("target/containers/storage.conf");
    let mut cmd = Command::new(program("podman", "podman"));
    cmd.env("CONTAINERS_CONF", conf)
        .env("CONTAINERS_STORAGE_CONF", storage);
    cmd
}

pub use crate::run;

/// Loads the archive of `image` for `platform` into podman's storage and names it
/// `localhost/openclaw-test-<image>:<platform>`, so a test runs exactly what the archive holds
/// (both platforms' archives carry the same reference, hence the name by image id); returns
/// that name.
pub fn load(image: &str, platform: &str) -> String {
    let name = format!("localhost/openclaw-test-{image}:{platform}");
    let source = format!("oci-archive:{}", archive(image, platform).display());
    let id = run(podman().args(["pull", "--quiet", &source]));
    run(podman().args(["tag", id.trim(), &name]));
    name
}

/// `qemu-aarch64-static`, which runs the arm64 binaries here (no binfmt_misc: invoked by name).
pub fn qemu_aarch64() -> PathBuf {
    program("qemu-aarch64-static", "qemu-user-static")
}

/// The ELF machine of a binary (`e_machine`): 62 is x86-64, 183 is AArch64.
pub fn elf_machine(binary: &Path) -> u16 {
    let bytes = std::fs::read(binary).expect("read the binary");
    assert_eq!(
        &bytes[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        binary.display()
    );
    u16::from_le_bytes([bytes[18], bytes[19]])
}

/// Whether a binary has a program interpreter (`PT_INTERP`, i.e. it is dynamically linked).
pub fn has_interpreter(binary: &Path) -> bool {
    let bytes = std::fs::read(binary).expect("read the binary");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let u32_at =
        |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    assert_eq!(bytes[4], 2, "{} is not a 64-bit ELF", binary.display());
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    (0..phnum).any(|i| u32_at(phoff + i * phentsize) == 3)
}

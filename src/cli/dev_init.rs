//! `cloudca dev-init --dir DIR`: a complete development instance in one folder.

use std::path::Path;

/// Creates the instance and prints how to start it.
pub fn run(dir: &Path) -> anyhow::Result<()> {
    let runtime = super::runtime()?;
    let instance = runtime.block_on(crate::devinit::create(dir, &crate::devinit::Options::default()))?;
    for (name, fingerprint) in &instance.fingerprints {
        println!("{name:<16} SHA256 {}", super::ceremony::colon_hex(fingerprint));
    }
    println!("development instance ready: {}", instance.config_path.display());
    println!("start it with: cloudca --config {} serve", instance.config_path.display());
    Ok(())
}

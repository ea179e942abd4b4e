//! The hardened units in `systemd/`: they parse (`systemd-analyze verify`, which needs no running
//! systemd, on copies whose commands point at the built binary), and `systemd-analyze security
//! --offline=yes` keeps rating them within the bound systemd/README.md states. Each check is
//! first shown to fail on a unit that deserves it, so a tool that quietly accepts everything
//! cannot make these tests pass.

use std::path::{Path, PathBuf};

use crate::common::{run, Output};

/// The bound for the daemon's unit: "2.0 or better".
const DAEMON_MAX_EXPOSURE: f64 = 2.0;
/// The web front is sandboxed at least as tightly.
const WEB_MAX_EXPOSURE: f64 = 2.0;

/// The units as shipped.
fn shipped(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("systemd").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A copy of `text` as `dir/name`, its commands pointing at the binary under test (the shipped
/// units name /usr/bin/cloudca, which `verify` requires to exist).
fn install(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text.replace("/usr/bin/cloudca", env!("CARGO_BIN_EXE_cloudca"))).unwrap();
    path
}

/// `systemd-analyze` with these arguments; a missing tool fails the test (scripts/install-deps.sh
/// installs it), it never skips.
fn analyze(args: &[&str]) -> Output {
    let probe = std::process::Command::new("systemd-analyze").arg("--version").output();
    assert!(probe.is_ok(), "systemd-analyze must be installed (Debian package systemd; scripts/install-deps.sh)");
    run("systemd-analyze", args)
}

/// `systemd-analyze verify` on the units; Ok when it exits 0 and prints nothing at all.
fn verify(units: &[&Path]) -> Result<(), String> {
    let mut args = vec!["verify", "--man=no"];
    args.extend(units.iter().map(|p| p.to_str().unwrap()));
    let out = analyze(&args);
    if out.ok && out.text.trim().is_empty() {
        Ok(())
    } else {
        Err(out.text)
    }
}

/// The overall exposure `systemd-analyze security --offline=yes` gives the unit, and its report.
fn exposure(unit: &Path) -> (f64, String) {
    let out = analyze(&["security", "--offline=yes", "--no-pager", unit.to_str().unwrap()]);
    let line = out
        .text
        .lines()
        .find(|l| l.contains("Overall exposure level for"))
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{}", out.text));
    let score = line
        .rsplit_once(": ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure level from {line:?}"));
    // Only the findings, for failure messages.
    let findings = out.text.lines().filter(|l| l.starts_with('✗')).collect::<Vec<_>>().join("\n");
    (score, findings)
}

#[test]
fn the_units_parse_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = install(dir.path(), "cloudca.service", &shipped("cloudca.service"));
    let web = install(dir.path(), "cloudca-web.service", &shipped("cloudca-web.service"));

    // The check itself: a misspelt setting and a missing program are reported.
    let typo =
        install(dir.path(), "typo.service", &shipped("cloudca.service").replace("NoNewPrivileges=", "NoNewPrivilege="));
    let err = verify(&[&typo]).expect_err("a misspelt setting must be reported");
    assert!(err.contains("NoNewPrivilege"), "{err}");
    let missing = dir.path().join("missing.service");
    std::fs::write(&missing, shipped("cloudca.service").replace("/usr/bin/cloudca", "/nonexistent/cloudca")).unwrap();
    let err = verify(&[&missing]).expect_err("a missing binary must be reported");
    assert!(err.contains("/nonexistent/cloudca"), "{err}");

    verify(&[&daemon, &web]).unwrap_or_else(|e| panic!("the shipped units do not verify cleanly:\n{e}"));
}

#[test]
fn the_daemon_unit_is_rated_2_0_or_better_and_the_web_front_as_well() {
    let dir = tempfile::tempdir().unwrap();
    let daemon_text = shipped("cloudca.service");

    // The check itself: the same unit without its sandbox (everything from the first sandboxing
    // section on) is rated far worse than the bound.
    let cut = daemon_text.find("# ---- File system").expect("the unit has a file system section");
    let bare = install(
        dir.path(),
        "bare.service",
        &(daemon_text[..cut].to_string() + "\n[Install]\nWantedBy=multi-user.target\n"),
    );
    let (bare_score, _) = exposure(&bare);
    assert!(bare_score > DAEMON_MAX_EXPOSURE, "an unsandboxed unit rated {bare_score}: the check cannot fail");

    let daemon = install(dir.path(), "cloudca.service", &daemon_text);
    let (score, findings) = exposure(&daemon);
    println!("cloudca.service: exposure {score} (unsandboxed: {bare_score})\n{findings}");
    assert!(score <= DAEMON_MAX_EXPOSURE, "cloudca.service rated {score} (> {DAEMON_MAX_EXPOSURE}):\n{findings}");

    let web = install(dir.path(), "cloudca-web.service", &shipped("cloudca-web.service"));
    let (score, findings) = exposure(&web);
    println!("cloudca-web.service: exposure {score}\n{findings}");
    assert!(score <= WEB_MAX_EXPOSURE, "cloudca-web.service rated {score} (> {WEB_MAX_EXPOSURE}):\n{findings}");
}

/// What systemd/README.md promises about secrets holds in the units: the HSM PIN and the TLS
/// keys arrive as credentials, and no secret is passed through the environment.
#[test]
fn secrets_reach_the_units_as_credentials_only() {
    let daemon = shipped("cloudca.service");
    let web = shipped("cloudca-web.service");
    let active = |text: &str, key: &str| -> Vec<String> {
        text.lines().filter(|l| l.starts_with(key)).map(str::to_string).collect()
    };
    let credentials = active(&daemon, "LoadCredentialEncrypted=");
    assert!(credentials.iter().any(|l| l.starts_with("LoadCredentialEncrypted=hsm.pin:")), "{credentials:?}");
    assert!(credentials.iter().any(|l| l.starts_with("LoadCredentialEncrypted=tls.key:")), "{credentials:?}");
    let credentials = active(&web, "LoadCredentialEncrypted=");
    assert!(credentials.iter().any(|l| l.starts_with("LoadCredentialEncrypted=web-front.key:")), "{credentials:?}");
    for text in [&daemon, &web] {
        for line in active(text, "Environment=") {
            let upper = line.to_uppercase();
            assert!(
                !["PIN", "PASSWORD", "KEY", "SECRET", "TOKEN"].iter().any(|w| upper.contains(w)),
                "a secret in the environment (readable through systemctl show): {line}"
            );
        }
    }
}

//! Policies that change without a restart: roles (`roles.toml`), certificate profiles
//! (`profiles/*.toml`) and RA channels (`channels/*.toml`). SIGHUP (`systemctl reload`)
//! re-reads all three; they are checked like at start-up and swapped together, or, if any is
//! wrong, none is: the daemon keeps running on the old set and says why (log and audit).
//! Requests already running finish on the set they started with; connections stay open.

use std::sync::{Arc, RwLock};

/// A value readers take a snapshot of, replaced whole at reload.
pub struct Swappable<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Swappable<T> {
    fn clone(&self) -> Self {
        Swappable(self.0.clone())
    }
}

impl<T> Swappable<T> {
    /// Starts with `value`.
    pub fn new(value: T) -> Self {
        Swappable::from(Arc::new(value))
    }

    /// The current value; a request keeps using the snapshot it took.
    pub fn current(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the value for every later reader.
    pub fn replace(&self, value: impl Into<Arc<T>>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = value.into();
    }
}

impl<T> From<Arc<T>> for Swappable<T> {
    fn from(value: Arc<T>) -> Self {
        Swappable(Arc::new(RwLock::new(value)))
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Swappable<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

/// Loads the profiles and checks each names an issuing CA of the hierarchy (deny by default:
/// never the root or an OCSP responder key).
pub fn load_profiles(
    dir: &std::path::Path,
    hierarchy: &crate::ca::Hierarchy,
) -> Result<std::collections::BTreeMap<String, crate::ca::Profile>, String> {
    let profiles = crate::ca::profile::load_all(dir)?;
    for p in profiles.values() {
        if !hierarchy.get(&p.issuer).is_ok_and(|a| a.record.role == "issuing") {
            return Err(format!(
                "profile {} names {:?}, which is not an issuing CA of the hierarchy",
                p.name, p.issuer
            ));
        }
    }
    Ok(profiles)
}

/// Loads the RA channels.
pub fn load_channels(
    dir: &std::path::Path,
) -> Result<std::collections::BTreeMap<String, Arc<crate::ra::channels::Channel>>, String> {
    Ok(crate::ra::channels::load_all(dir)?.into_iter().map(|(k, v)| (k, Arc::new(v))).collect())
}

/// Reloads every policy on SIGHUP until shutdown.
pub async fn watch(
    instance: crate::daemon::Instance,
    roles: Swappable<crate::roles::Roles>,
    mut shutdown: tokio::sync::broadcast::Receiver<()>,
) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; policies load at start-up only");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&instance, &roles).await,
            _ = shutdown.recv() => return,
        }
    }
}

/// Loads all three sets, then swaps them together; on any error keeps the old ones. Either
/// way the audit log says what happened (`policies.reloaded` with the new digest, or
/// `policies.reload_failed` with the reason).
pub async fn reload(instance: &crate::daemon::Instance, roles: &Swappable<crate::roles::Roles>) {
    let dir = &instance.config.policies_dir;
    let loaded = crate::roles::Roles::load(dir).and_then(|r| {
        let profiles = load_profiles(dir, &instance.issuance.hierarchy)?;
        Ok((r, profiles, load_channels(dir)?))
    });
    let (kind, detail) = match loaded {
        Ok((r, profiles, channels)) => {
            let names: Vec<String> = profiles.keys().cloned().collect();
            roles.replace(r);
            instance.issuance.profiles.replace(profiles);
            instance.ra.replace_channels(channels);
            tracing::info!(profiles = ?names, "policies reloaded");
            (
                "policies.reloaded",
                serde_json::json!({ "policies_sha256": crate::config::policies_digest(dir), "profiles": names }),
            )
        }
        Err(reason) => {
            tracing::error!(%reason, "policies not reloaded; keeping the ones in force");
            ("policies.reload_failed", serde_json::json!({ "reason": reason }))
        }
    };
    let record = crate::store::AuditRecord::new(instance.issuance.clock.as_ref(), kind, "daemon", None, detail);
    if let Err(e) = instance.store.audit(&record).await {
        tracing::warn!(error = %e, "cannot audit the policy reload");
    }
}

//! Where a sandbox provider keeps what a real provider keeps on its side (payment intents,
//! micro-deposits, face sessions): in the database in a running deployment, so several
//! daemons and a restart see one sandbox (issue 15, point 5); in memory for unit tests.
//! Every change is a compare-and-swap on the whole JSON value, retried a few times.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ProviderError;
use crate::store::Store;

/// How many times a change is retried when another daemon changed the row meanwhile.
const RETRIES: usize = 8;

enum Backing {
    Memory(Mutex<HashMap<String, String>>),
    Database(Store),
}

/// One kind of sandbox record, by id.
pub struct SandboxTable<T> {
    kind: &'static str,
    backing: Backing,
    _record: PhantomData<fn() -> T>,
}

/// A failure of the sandbox's own storage: the provider is "unavailable", as a real one whose
/// back end failed would be.
fn unavailable(kind: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Unavailable(format!("sandbox state ({kind}): {e}"))
}

impl<T: Serialize + DeserializeOwned> SandboxTable<T> {
    /// In memory (unit tests).
    pub fn memory(kind: &'static str) -> Self {
        SandboxTable { kind, backing: Backing::Memory(Mutex::new(HashMap::new())), _record: PhantomData }
    }

    /// In the database (a daemon).
    pub fn database(kind: &'static str, store: Store) -> Self {
        SandboxTable { kind, backing: Backing::Database(store), _record: PhantomData }
    }

    fn encode(&self, value: &T) -> Result<String, ProviderError> {
        serde_json::to_string(value).map_err(|e| unavailable(self.kind, e))
    }

    fn decode(&self, text: &str) -> Result<T, ProviderError> {
        serde_json::from_str(text).map_err(|e| unavailable(self.kind, e))
    }

    /// Stores a new record.
    pub async fn insert(&self, id: &str, value: &T) -> Result<(), ProviderError> {
        let text = self.encode(value)?;
        match &self.backing {
            Backing::Memory(map) => {
                lock(map).insert(id.to_string(), text);
                Ok(())
            }
            Backing::Database(store) => store
                .sandbox_insert(self.kind, id, &text, crate::clock::unix_now())
                .await
                .map_err(|e| unavailable(self.kind, e)),
        }
    }

    /// A record, if there is one.
    pub async fn get(&self, id: &str) -> Result<Option<T>, ProviderError> {
        self.raw(id).await?.map(|t| self.decode(&t)).transpose()
    }

    async fn raw(&self, id: &str) -> Result<Option<String>, ProviderError> {
        match &self.backing {
            Backing::Memory(map) => Ok(lock(map).get(id).cloned()),
            Backing::Database(store) => store.sandbox_get(self.kind, id).await.map_err(|e| unavailable(self.kind, e)),
        }
    }

    /// Changes a record atomically: `change` gets the current value and returns its answer
    /// and the new value (None removes the record). None when there is no such record; an
    /// error from `change` leaves the record as it was.
    pub async fn update<R>(
        &self,
        id: &str,
        change: impl Fn(T) -> Result<(R, Option<T>), ProviderError>,
    ) -> Result<Option<R>, ProviderError> {
        for _ in 0..RETRIES {
            let Some(old) = self.raw(id).await? else { return Ok(None) };
            let (answer, new) = change(self.decode(&old)?)?;
            let new = new.map(|v| self.encode(&v)).transpose()?;
            if self.swap(id, &old, new.as_deref()).await? {
                return Ok(Some(answer));
            }
        }
        Err(unavailable(self.kind, "changed concurrently too often"))
    }

    /// Whether an in-memory table holds nothing (unit tests).
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        match &self.backing {
            Backing::Memory(map) => lock(map).is_empty(),
            Backing::Database(_) => false,
        }
    }

    async fn swap(&self, id: &str, old: &str, new: Option<&str>) -> Result<bool, ProviderError> {
        match &self.backing {
            Backing::Memory(map) => {
                let mut map = lock(map);
                if map.get(id).map(String::as_str) != Some(old) {
                    return Ok(false);
                }
                match new {
                    Some(v) => map.insert(id.to_string(), v.to_string()),
                    None => map.remove(id),
                };
                Ok(true)
            }
            Backing::Database(store) => store
                .sandbox_swap(self.kind, id, old, new, crate::clock::unix_now())
                .await
                .map_err(|e| unavailable(self.kind, e)),
        }
    }
}

/// Locks the in-memory map; a poisoned lock still holds consistent values.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

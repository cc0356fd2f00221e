//! Staff, PINs, sessions and roles.
//!
//! PINs are hashed with argon2 (never stored in clear). A login yields a
//! random bearer token; only its SHA-256 is stored, so a copied database
//! does not hand out sessions. Five wrong PINs in a row lock a name for a
//! minute, which makes guessing a 4–8 digit PIN over the LAN impractical.
//! Cashiers sell, receive goods and hand over pickups; stock corrections,
//! refunds and cancellations need a manager.

use std::collections::HashMap;
use std::sync::Mutex;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{App, AppError, invalid, parse_ts, ts};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Cashier,
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Cashier => "cashier",
            Role::Manager => "manager",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "cashier" => Some(Role::Cashier),
            "manager" => Some(Role::Manager),
            _ => None,
        }
    }
}

/// Who is doing something: recorded with every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: Role,
}

impl Actor {
    /// Refuses unless the actor is a manager.
    pub fn require_manager(&self, action: &'static str) -> Result<(), AppError> {
        match self.role {
            Role::Manager => Ok(()),
            Role::Cashier => Err(AppError::Forbidden { action }),
        }
    }
}

const MAX_FAILURES: u32 = 5;
const LOCKOUT: chrono::Duration = chrono::Duration::seconds(60);

/// In-memory view of sessions (the table is the truth) and of failed logins.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_hash: Mutex<HashMap<String, (Actor, DateTime<Utc>)>>,
    failures: Mutex<HashMap<String, (u32, DateTime<Utc>)>>,
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_pin(pin: &str) -> Result<(), AppError> {
    if (4..=8).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid("pin", "must be 4-8 digits"))
    }
}

fn valid_name(name: &str) -> Result<String, AppError> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 64 || n.chars().any(char::is_control) {
        return Err(invalid("name", "must be 1-64 printable characters"));
    }
    Ok(n.to_owned())
}

/// Adds a staff member directly to a database connection (used by the
/// `staff add` command, which runs without a server).
pub fn add_staff(conn: &Connection, name: &str, role: Role, pin: &str) -> Result<(), AppError> {
    let name = valid_name(name)?;
    valid_pin(pin)?;
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let hash = Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map_err(|e| invalid("pin", e.to_string()))?
        .to_string();
    let inserted = conn.execute(
        "INSERT OR IGNORE INTO staff(name, role, pin_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, role.as_str(), hash, ts(Utc::now())],
    )?;
    if inserted == 0 {
        return Err(AppError::StaffExists(name));
    }
    Ok(())
}

pub(crate) async fn load_or_create_member_key(store: &Store) -> Result<[u8; 32], AppError> {
    store
        .write(|c| {
            let existing: Option<String> = c
                .query_row("SELECT value FROM meta WHERE key = 'member_key'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            let mut key = [0u8; 32];
            match existing.and_then(|h| hex::decode(h).ok()) {
                Some(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
                _ => {
                    rand::rngs::OsRng.fill_bytes(&mut key);
                    c.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('member_key', ?1)",
                        [hex::encode(key)],
                    )?;
                }
            }
            Ok::<_, AppError>(key)
        })
        .await
}

impl App {
    /// Checks a PIN and opens a session; returns the bearer token.
    pub async fn login(&self, name: &str, pin: &str) -> Result<(String, Actor), AppError> {
        let now = self.now();
        let name = name.trim().to_owned();
        if let Ok(f) = self.sessions.failures.lock()
            && let Some((n, until)) = f.get(&name)
            && *n >= MAX_FAILURES
            && now < *until
        {
            return Err(AppError::LockedOut(name));
        }
        let lookup = name.clone();
        let row: Option<(String, String)> = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT role, pin_hash FROM staff WHERE name = ?1",
                    [lookup],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?;
        // verify on the blocking pool: argon2 is deliberately slow
        let pin = pin.to_owned();
        let verified = tokio::task::spawn_blocking(move || {
            let (role, hash) = row?;
            let parsed = PasswordHash::new(&hash).ok()?;
            Argon2::default()
                .verify_password(pin.as_bytes(), &parsed)
                .ok()?;
            Role::parse(&role)
        })
        .await
        .map_err(|_| StoreError::Panicked)?;
        let Some(role) = verified else {
            if let Ok(mut f) = self.sessions.failures.lock() {
                let e = f.entry(name).or_insert((0, now));
                e.0 += 1;
                e.1 = now + LOCKOUT;
            }
            return Err(AppError::BadCredentials);
        };
        if let Ok(mut f) = self.sessions.failures.lock() {
            f.remove(&name);
        }
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let token = hex::encode(raw);
        let hash = token_hash(&token);
        let expires = now + self.settings.session_ttl;
        let actor = Actor { name, role };
        let (n, h) = (actor.name.clone(), hash.clone());
        self.store
            .write(move |c| {
                c.execute(
                    "INSERT INTO sessions(token_hash, staff, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![h, n, ts(now), ts(expires)],
                )?;
                Ok::<_, AppError>(())
            })
            .await?;
        if let Ok(mut s) = self.sessions.by_hash.lock() {
            s.insert(hash, (actor.clone(), expires));
        }
        Ok((token, actor))
    }

    /// Resolves a bearer token to the staff member it was issued to.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, AppError> {
        let now = self.now();
        let hash = token_hash(token);
        if let Ok(s) = self.sessions.by_hash.lock()
            && let Some((actor, expires)) = s.get(&hash)
        {
            return if now < *expires {
                Ok(actor.clone())
            } else {
                Err(AppError::Unauthenticated)
            };
        }
        // a session from before a restart: the table is the truth
        let h = hash.clone();
        let row: Option<(String, String, String)> = self
            .store
            .read(move |c| {
                c.query_row(
                    "SELECT s.staff, st.role, s.expires_at FROM sessions s JOIN staff st ON st.name = s.staff WHERE s.token_hash = ?1",
                    [h],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(StoreError::from)
            })
            .await?;
        let (name, role, expires) = row.ok_or(AppError::Unauthenticated)?;
        let role = Role::parse(&role).ok_or(AppError::Unauthenticated)?;
        let expires = parse_ts(&expires);
        if now >= expires {
            return Err(AppError::Unauthenticated);
        }
        let actor = Actor { name, role };
        if let Ok(mut s) = self.sessions.by_hash.lock() {
            s.insert(hash, (actor.clone(), expires));
        }
        Ok(actor)
    }

    /// The keyed hash under which a member's phone is kept at the store.
    pub(crate) fn member_hash(&self, phone: &str) -> String {
        use hmac::{Mac, SimpleHmac};
        // a 32-byte key is always accepted by HMAC
        match <SimpleHmac<Sha256> as Mac>::new_from_slice(&self.member_key[..]) {
            Ok(mut mac) => {
                mac.update(phone.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => hex::encode(Sha256::digest(phone.as_bytes())),
        }
    }
}

//! Passwords (argon2id, a length floor and a short list of common ones), random tokens
//! (session ids, CSRF tokens, person handles) and the login throttle.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The shortest password accepted (spec/web.md).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Passwords people choose first; refused whatever their length. Compared lower-cased.
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "azertyuiopqs",
    "azertyuiop123",
    "qwertyuiop123",
    "motdepasse123",
    "motdepasse1234",
    "motdepassesecret",
    "passerelle123",
    "passerelle2026",
    "password1234",
    "password12345",
    "passwordpassword",
    "bonjour123456",
    "soleil123456",
    "missionlocale",
    "missionlocale1",
    "conseiller123",
    "administrateur",
    "changezmoi123",
    "changeme1234",
    "aaaaaaaaaaaa",
    "000000000000",
    "111111111111",
];

/// Why a new password is refused (the message is shown to the person, in French).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("le mot de passe doit compter au moins {MIN_PASSWORD_CHARS} caractères")]
    TooShort,
    #[error("ce mot de passe est trop courant : choisissez-en un autre")]
    Common,
    #[error("le mot de passe n'a pas pu être chiffré")]
    Hash,
}

fn hasher() -> Argon2<'static> {
    // OWASP's argon2id floor (19 MiB, 2 passes, 1 lane): ~30 ms here, fine for a login.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Checks a new password against the rules.
pub fn check_password(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    let lower = password.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(PasswordError::Common);
    }
    Ok(())
}

/// The argon2id PHC string of a new password, after [`check_password`].
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| PasswordError::Hash)?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PasswordError::Hash)
}

/// Whether `password` matches the stored hash (false for a malformed hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => hasher().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the login is unknown, so that the answer takes as
/// long as for a known one (the time says nothing about which was wrong).
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("aucun compte ne porte ce mot de passe").unwrap_or_default())
}

/// 256 random bits as lowercase hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// How a session id is stored: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Failed logins counted per account and per address over a sliding window; past the
/// limit, logins are refused for the rest of the window, whatever the password.
#[derive(Debug)]
pub struct Throttle {
    limit: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Throttle {
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(login: &str, addr: &str) -> [String; 2] {
        [
            format!("compte:{}", login.to_lowercase()),
            format!("adresse:{addr}"),
        ]
    }

    /// Whether a login attempt for this account from this address may be tried.
    pub fn allowed(&self, login: &str, addr: &str) -> bool {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(login, addr).iter().all(|k| {
            let list = f.entry(k.clone()).or_default();
            list.retain(|t| now.duration_since(*t) < self.window);
            (list.len() as u32) < self.limit
        })
    }

    pub fn failed(&self, login: &str, addr: &str) {
        let now = Instant::now();
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: a flood of made-up logins must not grow the map without end.
        if f.len() > 100_000 {
            f.retain(|_, l| l.iter().any(|t| now.duration_since(*t) < self.window));
        }
        for k in Self::keys(login, addr) {
            f.entry(k).or_default().push(now);
        }
    }

    /// A successful login clears the account's failures (not the address's).
    pub fn succeeded(&self, login: &str) {
        let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        f.remove(&format!("compte:{}", login.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords() {
        assert_eq!(check_password("court"), Err(PasswordError::TooShort));
        assert_eq!(check_password("MotDePasse123"), Err(PasswordError::Common));
        let h = hash_password("cheval agrafe batterie").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("cheval agrafe batterie", &h));
        assert!(!verify_password("cheval agrafe batteri", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(
            h,
            hash_password("cheval agrafe batterie").unwrap(),
            "salted"
        );
    }

    #[test]
    fn throttle_per_account_and_per_address() {
        let t = Throttle::new(3, Duration::from_secs(60));
        for _ in 0..3 {
            assert!(t.allowed("alice", "10.0.0.1"));
            t.failed("alice", "10.0.0.1");
        }
        assert!(!t.allowed("alice", "10.0.0.2"), "the account is throttled");
        assert!(!t.allowed("bob", "10.0.0.1"), "the address is throttled");
        assert!(t.allowed("bob", "10.0.0.2"));
    }

    #[test]
    fn tokens() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token());
        assert!(same_token(&a, &a.clone()));
        assert!(!same_token(&a, &random_token()));
        assert_ne!(token_hash(&a), a);
    }
}

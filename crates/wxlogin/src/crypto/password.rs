//! Administrator passwords: Argon2id (RFC 9106) with OWASP's recommended minimum, m = 19456 KiB,
//! t = 2, p = 1, a 16-byte random salt, stored as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
//! Verification reads the parameters from the stored string, so raising them later keeps old
//! hashes working; the crate compares the digests in constant time.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::domain::AdminPassword;

/// Memory in KiB, iterations and lanes (OWASP Password Storage Cheat Sheet, Argon2id option 1).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_PARALLELISM: u32 = 1;

fn argon2() -> Argon2<'static> {
    #[allow(clippy::expect_used)]
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The PHC string of `password` under a fresh salt. About 20 MiB of memory and tens of
/// milliseconds: call it off the async runtime.
pub fn hash_password(password: &AdminPassword) -> String {
    let salt = SaltString::generate(&mut OsRng);
    #[allow(clippy::expect_used)]
    argon2()
        .hash_password(password.expose().as_bytes(), &salt)
        .expect("hashing fails only for out-of-range inputs, which AdminPassword excludes")
        .to_string()
}

/// Whether `password` matches the stored PHC string; a string that does not parse, or names
/// another algorithm than Argon2id, matches nothing.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let Ok(hash) = PasswordHash::new(stored) else {
        return false;
    };
    if hash.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    argon2().verify_password(password.as_bytes(), &hash).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_with_the_documented_parameters_and_verifies_only_its_password() {
        let password = AdminPassword::parse("correct horse battery".into()).unwrap();
        let stored = hash_password(&password);
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(verify_password(&stored, "correct horse battery"));
        assert!(!verify_password(&stored, "correct horse batterY"));
        assert_ne!(stored, hash_password(&password), "a fresh salt each time");
        assert!(!verify_password("not a hash", "correct horse battery"));
    }
}

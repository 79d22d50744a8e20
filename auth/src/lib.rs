//! Who is asking and what they may do.
//!
//! - [`Verifier`] checks bearer tokens (JWTs: HS256 with a shared secret, RS256/ES256 with a PEM
//!   public key or a JWKS document) and turns them into an [`Identity`].
//! - [`Permission`] and [`Grants`] say what an identity may do in a room.
//! - [`Minter`] signs Dojo's own HS256 tokens (workers, services, the dev identity).
//!
//! No I/O: loading key files and looking up workflow records is the server's job.

mod permission;
mod token;

pub use permission::{Grants, Permission, UnknownPermission};
pub use token::{
    Claims, Identity, KeyError, MintError, Minter, TokenError, Verifier, VerifierConfig, unix_now,
};

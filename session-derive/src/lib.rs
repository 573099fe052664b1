//! The `#[derive(SessionData)]` macro of the [`session`](https://docs.rs/session) crate.
//!
//! This crate only parses, validates and expands; every piece of behaviour lives in
//! generic helpers of the runtime crate, reached through its hidden `__private` module.
//! Use it through `session::SessionData`, never directly.

mod ast;
mod attr;
mod check;
mod errors;
mod expand;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `session::SessionData` for a struct with named fields.
///
/// See the runtime crate's documentation of `SessionData` for the attributes and the
/// generated accessors.
#[proc_macro_derive(SessionData, attributes(session))]
pub fn derive_session_data(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}

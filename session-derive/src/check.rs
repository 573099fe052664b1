//! Cross-field and cross-attribute rules, all in one place.

use std::collections::HashMap;

use crate::{ast::Container, errors::Errors};

/// How many persisted fields the runtime's dirty set can track.
pub const MAX_FIELDS: usize = 64;

/// FNV-1a, 32 bits: the stable tag of a stored field name.
pub fn field_tag(stored_name: &str) -> u32 {
    stored_name.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

pub fn check(container: &Container, errors: &mut Errors) {
    let mut names: HashMap<String, &syn::Ident> = HashMap::new();
    let mut tags: HashMap<u32, String> = HashMap::new();
    let mut persisted = 0;
    for field in &container.fields {
        let attrs = &field.attrs;
        if let Some(skip) = &attrs.skip {
            if let Some(flash) = &attrs.flash {
                errors.at(
                    flash.keyword,
                    "`flash` conflicts with `skip`: a flash value must be stored to reach the next request",
                );
                let _ = skip;
            }
            if let Some(rename) = &attrs.rename {
                errors.at(
                    rename.keyword,
                    "`rename` has no effect on a `skip` field, which is never stored",
                );
            }
            continue;
        }
        if let (Some(default), Some(_)) = (&attrs.default, &attrs.flash) {
            errors.at(
                default.keyword,
                "`default` does not apply to a flash field: a flash slot starts empty",
            );
        }
        persisted += 1;
        let name = field.stored_name();
        let at = attrs
            .rename
            .as_ref()
            .map_or(field.ident.span(), |rename| rename.value.span());
        if let Some(first) = names.get(&name) {
            errors.at(
                at,
                format!("stored name `{name}` is already used by field `{first}`; give one of them another `rename`"),
            );
            continue;
        }
        let tag = field_tag(&name);
        if let Some(other) = tags.get(&tag) {
            errors.at(
                at,
                format!("stored names `{name}` and `{other}` have the same field tag; `rename` one of them"),
            );
        }
        names.insert(name.clone(), field.ident);
        tags.insert(tag, name);
    }
    if persisted > MAX_FIELDS {
        errors.spanned(
            container.ident,
            format!(
                "`{}` has {persisted} persisted fields, but a session tracks at most {MAX_FIELDS}; \
                 mark transient fields `#[session(skip)]` or group related fields into a struct",
                container.ident
            ),
        );
    }
}
